//! The relay's side of message franking (`docs/PROTOCOL.md` §6.1): it stamps each franked
//! message it forwards with a MAC under its own secret over (commitment, sender,
//! recipient, time) and keeps nothing; later it verifies a recipient's REPORT of such a
//! message by recomputing both MACs (`sealcore::franking`), though it never read it.
//!
//! Only a SEND / GROUP_SEND with the FRANKED flag costs anything here: the unfranked path
//! pays one flag test. Stamping is timed one message in [`STAMP_SAMPLE`] (as the scan
//! is); every report is timed (reports are rare, a share of messages).

use super::scan::ScanTime;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sealcore::frame::{REPORT_REFUSED_COMMITMENT, REPORT_REFUSED_STAMP, REPORT_VERIFIED};
use sealcore::franking::{Context, RelayKey, ReportRefusal};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One stamped message in this many is timed (two clock reads are ~50 ns beside a stamp of
/// ~1 µs: timing every one would show in what is measured).
pub const STAMP_SAMPLE: u32 = 8;

/// Label of a report's result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `verified`, `commitment` (refused: the message and key do not give the
    /// commitment) or `stamp` (refused: the relay did not stamp it in this context).
    pub result: &'static str,
}

/// The relay's franking metrics (a part of [`super::metrics::RelayMetrics`]).
#[derive(Debug)]
pub struct FrankingMetrics {
    /// Franked messages stamped (a group message once, whatever its members).
    pub stamped: Counter,
    /// REPORTs answered, by result.
    pub reports: Family<ResultLabel, Counter>,
    /// Stamp time of sampled franked messages, seconds.
    pub stamp_seconds: Histogram,
    /// Verification time of every REPORT, seconds.
    pub report_verify_seconds: Histogram,
    /// The same samples as `stamp_seconds`, ns (for `summary.json`; skipped, not waited
    /// for, when another thread holds it).
    stamp_time: Mutex<hdrhistogram::Histogram<u64>>,
    /// The same samples as `report_verify_seconds`, ns.
    verify_time: Mutex<hdrhistogram::Histogram<u64>>,
}

/// What the relay's franking did in a run (`relay_stats.franking` in `summary.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrankingStats {
    /// Franked messages stamped.
    pub stamped: u64,
    /// Reports verified…
    pub reports_verified: u64,
    /// …refused because the message and franking key do not give the commitment…
    pub reports_refused_commitment: u64,
    /// …and refused because the stamp does not verify for the commitment and context.
    pub reports_refused_stamp: u64,
    /// Stamp time per message (sampled), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp_us: Option<ScanTime>,
    /// Verification time per report, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_verify_us: Option<ScanTime>,
}

fn time_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("static histogram bounds")
}

impl Default for FrankingMetrics {
    fn default() -> Self {
        FrankingMetrics {
            stamped: Counter::default(),
            reports: Family::default(),
            stamp_seconds: Histogram::new(exponential_buckets(50e-9, 2.0, 20)),
            report_verify_seconds: Histogram::new(exponential_buckets(50e-9, 2.0, 20)),
            stamp_time: Mutex::new(time_histogram()),
            verify_time: Mutex::new(time_histogram()),
        }
    }
}

impl FrankingMetrics {
    /// Registers them (the three report results present from the start).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("franked_stamped", "Franked messages the relay stamped", self.stamped.clone());
        registry.register("reports", "REPORTs answered, by result", self.reports.clone());
        registry.register("stamp_seconds", "Stamp time of sampled franked messages", self.stamp_seconds.clone());
        registry.register("report_verify_seconds", "Verification time of REPORTs", self.report_verify_seconds.clone());
        for result in ["verified", "commitment", "stamp"] {
            drop(self.reports.get_or_create(&ResultLabel { result }));
        }
    }

    fn observe(h: &Histogram, hdr: &Mutex<hdrhistogram::Histogram<u64>>, took: Duration) {
        h.observe(took.as_secs_f64());
        if let Ok(mut h) = hdr.try_lock() {
            h.saturating_record((took.as_nanos() as u64).max(1));
        }
    }

    fn count(&self, result: &'static str) -> u64 {
        self.reports.get_or_create(&ResultLabel { result }).get()
    }

    /// What it counted so far (None when the relay neither stamped nor verified anything).
    pub fn stats(&self) -> Option<FrankingStats> {
        let time = |m: &Mutex<hdrhistogram::Histogram<u64>>| m.lock().ok().and_then(|h| ScanTime::of(&h));
        let s = FrankingStats {
            stamped: self.stamped.get(),
            reports_verified: self.count("verified"),
            reports_refused_commitment: self.count("commitment"),
            reports_refused_stamp: self.count("stamp"),
            stamp_us: time(&self.stamp_time),
            report_verify_us: time(&self.verify_time),
        };
        let any = s.stamped + s.reports_verified + s.reports_refused_commitment + s.reports_refused_stamp;
        (any > 0).then_some(s)
    }
}

/// The relay's clock for a stamp's context: ns since the Unix epoch (0 if the system clock
/// is before it).
#[inline]
fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Stamps the trailer that ends `franked` (a DELIVER being made of a franked SEND or
/// GROUP_SEND) for `sender` → `recipient` (a group id for a group message), timing it when
/// `timed`. False when `franked` cannot hold a trailer (the caller checked it can).
#[inline]
pub(super) fn stamp(
    key: &RelayKey,
    m: &FrankingMetrics,
    franked: &mut [u8],
    sender: u64,
    recipient: u64,
    timed: bool,
) -> bool {
    let t0 = timed.then(Instant::now);
    let ok = key.stamp_trailer(franked, sender, recipient, now_ns());
    if let Some(t0) = t0 {
        FrankingMetrics::observe(&m.stamp_seconds, &m.stamp_time, t0.elapsed());
    }
    ok
}

/// A REPORT, verified: its REPORT_RESULT code, counted and timed.
#[allow(clippy::too_many_arguments)]
pub(super) fn verify(
    key: &RelayKey,
    m: &FrankingMetrics,
    message: &[u8],
    fk: &[u8; 32],
    c: &[u8; 32],
    ctx: Context,
    stamp: &[u8; 32],
) -> u8 {
    let t0 = Instant::now();
    let result = key.verify_report(message, fk, c, ctx, stamp);
    FrankingMetrics::observe(&m.report_verify_seconds, &m.verify_time, t0.elapsed());
    let (code, name) = match result {
        Ok(()) => (REPORT_VERIFIED, "verified"),
        Err(ReportRefusal::Commitment) => (REPORT_REFUSED_COMMITMENT, "commitment"),
        Err(_) => (REPORT_REFUSED_STAMP, "stamp"),
    };
    m.reports.get_or_create(&ResultLabel { result: name }).inc();
    code
}
