//! The relay's stance in a matrix cell — a relay that reads and scans (`plaintext` + a
//! scan), one that carries ciphertext it cannot read (E2EE), or one that also stamps
//! franked messages and verifies reports (E2EE + franking) — and what the stance costs on
//! the same seeded workload: relay CPU per message, bytes on the wire per message, what a
//! report costs, and what the relay could see. Read from the cells' summaries; the
//! stances table of `matrix.md` / `report.html` shows it.

use super::matrix::Spread;
use super::summary::Summary;
use serde::{Deserialize, Serialize};

/// A cell's stance and its figures (median and spread over the repeats).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stance {
    /// `plaintext + scan (10000 words)`, `E2EE`, `E2EE + franking (1 % reported)`…
    pub name: String,
    /// The embedded relay's CPU per message sent, µs (steady window).
    pub relay_cpu_us_per_msg: Option<Spread>,
    /// Bytes clients sent per message sent (WebSocket payloads: headers, E2E body,
    /// franking), handshakes and reports included.
    pub wire_bytes_per_msg: Option<Spread>,
    /// The relay's keyword scan of one readable body, p50 µs.
    pub scan_us: Option<Spread>,
    /// The sender's franking of one message (commitment), mean ns.
    pub frank_ns: Option<Spread>,
    /// The relay's stamp of one franked message, p50 µs.
    pub stamp_us: Option<Spread>,
    /// The relay's verification of one report, p50 µs.
    pub report_verify_us: Option<Spread>,
    /// Reports sent and verified over all repeats.
    pub reports: (u64, u64),
    /// What the relay could read of the messages it carried.
    pub sees: String,
}

impl Stance {
    /// The stance of a cell of `protocol` from its repeats' summaries.
    pub fn from_runs(protocol: &str, runs: &[(String, Summary)]) -> Stance {
        let get = |f: &dyn Fn(&Summary) -> Option<f64>| Spread::of(runs.iter().filter_map(|(_, s)| f(s)).collect());
        let first = runs.first().map(|(_, s)| s);
        let scan = first.and_then(|s| s.relay_stats.as_ref()).and_then(|r| r.scan.as_ref());
        let franked = first.is_some_and(|s| s.scenario.crypto.franking);
        let share = first.map_or(0.0, |s| s.scenario.traffic.report_share);
        let clear = protocol.parse::<sealproto::Protocol>().is_ok_and(|p| !p.encrypts());
        let mut name = if clear { "plaintext".to_owned() } else { "E2EE".to_owned() };
        if let Some(scan) = scan.filter(|_| clear) {
            name.push_str(&format!(" + scan ({} words)", scan.words));
        }
        if franked {
            name.push_str(&format!(" + franking ({:.3}% reported)", share * 100.0));
        }
        let sees = match (clear, scan) {
            (true, Some(s)) => format!("every message, scanned ({} matched of {})", s.matched, s.scanned),
            (true, None) => "every message (not scanned)".to_owned(),
            (false, _) if franked => "nothing; a reported message, once reported".to_owned(),
            (false, _) => "nothing (ciphertext)".to_owned(),
        };
        let franking = |s: &Summary| s.relay_stats.as_ref().and_then(|r| r.franking.clone());
        Stance {
            name,
            relay_cpu_us_per_msg: get(&|s| s.generator.relay_cpu_us_per_msg),
            wire_bytes_per_msg: get(&|s| {
                (s.messages.sent > 0).then(|| s.messages.bytes_sent as f64 / s.messages.sent as f64)
            }),
            scan_us: get(&|s| s.relay_stats.as_ref()?.scan.as_ref()?.time_us.as_ref().map(|t| t.p50_us)),
            frank_ns: get(&|s| s.latency.get("frank").map(|l| l.mean_us * 1e3)),
            stamp_us: get(&|s| franking(s)?.stamp_us.map(|t| t.p50_us)),
            report_verify_us: get(&|s| franking(s)?.report_verify_us.map(|t| t.p50_us)),
            reports: runs
                .iter()
                .map(|(_, s)| (s.messages.reports_sent, s.messages.reports_verified))
                .fold((0, 0), |(a, b), (c, d)| (a + c, b + d)),
            sees,
        }
    }

    /// Whether a matrix needs the stances table: some cell reads (a scan, or no
    /// encryption) or franks.
    pub fn telling(&self) -> bool {
        self.name != "E2EE"
    }
}
