//! The crypto sweep's result (`crypto.json`) and its console table.

use super::measure::Timing;
use crate::provenance::Provenance;
use sealcore::{AeadKind, Suite};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// Version of the `crypto.json` layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How the sweep was run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepSettings {
    /// `--quick` was given.
    pub quick: bool,
    /// Wall time of one sample, ms.
    pub sample_ms: f64,
    /// Samples per figure.
    pub samples: usize,
    /// Bytes of the buffer ring messages are sealed into.
    pub ring_bytes: usize,
    /// Wall time of the whole sweep, s.
    pub duration_s: f64,
}

/// Seal or open figures of one AEAD at one size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpFigures {
    /// Median ns per message.
    pub ns_per_msg: f64,
    /// Plaintext megabytes (10^6 B) per second at the median.
    pub mb_per_s: f64,
    /// The timing samples behind the figure.
    pub timing: Timing,
}

impl OpFigures {
    fn new(t: Timing, size: usize) -> Self {
        OpFigures { ns_per_msg: t.ns_median, mb_per_s: t.mb_per_s(size), timing: t }
    }
}

/// One AEAD at one message size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AeadRow {
    /// AEAD short name (`none` is the UNENCRYPTED baseline).
    pub aead: String,
    /// Whether the AEAD encrypts (false only for `none`).
    pub encrypted: bool,
    /// Plaintext bytes per message.
    pub size: usize,
    /// Sealing.
    pub seal: OpFigures,
    /// Opening.
    pub open: OpFigures,
}

impl AeadRow {
    /// A row.
    pub fn new(aead: AeadKind, size: usize, seal: Timing, open: Timing) -> Self {
        AeadRow {
            aead: aead.name().into(),
            encrypted: aead.is_encrypted(),
            size,
            seal: OpFigures::new(seal, size),
            open: OpFigures::new(open, size),
        }
    }
}

/// Complete handshakes of one suite.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandshakeRow {
    /// Pattern (`XX`, `IK`, ...).
    pub pattern: String,
    /// Standard Noise protocol name.
    pub suite: String,
    /// Complete handshakes per second, both sides' work on one core.
    pub handshakes_per_s: f64,
    /// Median µs per complete handshake.
    pub us_per_handshake: f64,
    /// The timing samples behind the figure.
    pub timing: Timing,
}

impl HandshakeRow {
    /// A row.
    pub fn new(suite: Suite, t: Timing) -> Self {
        HandshakeRow {
            pattern: suite.pattern.name().into(),
            suite: suite.noise_name(),
            handshakes_per_s: t.per_second(),
            us_per_handshake: t.ns_median / 1e3,
            timing: t,
        }
    }
}

/// Noise transport against the per-message ratchet for one AEAD.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModeRow {
    /// AEAD short name.
    pub aead: String,
    /// Plaintext bytes per message.
    pub size: usize,
    /// noise mode seal, ns/msg.
    pub noise_seal_ns: f64,
    /// noise mode open, ns/msg.
    pub noise_open_ns: f64,
    /// ratchet mode seal, ns/msg.
    pub ratchet_seal_ns: f64,
    /// ratchet mode open, ns/msg.
    pub ratchet_open_ns: f64,
    /// What the ratchet adds per message (seal + open), ns.
    pub ratchet_extra_ns: f64,
    /// Timing samples: noise seal, noise open, ratchet seal, ratchet open.
    pub timings: [Timing; 4],
}

impl ModeRow {
    /// A row.
    pub fn new(aead: AeadKind, size: usize, ns: Timing, no: Timing, rs: Timing, ro: Timing) -> Self {
        ModeRow {
            aead: aead.name().into(),
            size,
            noise_seal_ns: ns.ns_median,
            noise_open_ns: no.ns_median,
            ratchet_seal_ns: rs.ns_median,
            ratchet_open_ns: ro.ns_median,
            ratchet_extra_ns: (rs.ns_median + ro.ns_median) - (ns.ns_median + no.ns_median),
            timings: [ns, no, rs, ro],
        }
    }
}

/// Raw X25519 figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct X25519Row {
    /// Variable-base scalar multiplications per second.
    pub ops_per_s: f64,
    /// Median µs per operation.
    pub us_per_op: f64,
    /// The timing samples behind the figure.
    pub timing: Timing,
}

/// Everything `sealbench crypto` measured (`crypto.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CryptoReport {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Always `crypto` (lets `compare` tell result kinds apart).
    pub kind: String,
    /// Machine and software.
    pub provenance: Provenance,
    /// How the sweep ran.
    pub settings: SweepSettings,
    /// Per AEAD × size.
    pub aead: Vec<AeadRow>,
    /// Per handshake suite.
    pub handshakes: Vec<HandshakeRow>,
    /// Raw X25519.
    pub x25519: X25519Row,
    /// noise vs ratchet.
    pub transport_modes: Vec<ModeRow>,
    /// The protocol section: per-operation costs of Noise, Olm, Megolm and MLS against
    /// group size (absent from reports written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<super::protocols::ProtocolRow>,
}

impl CryptoReport {
    pub(super) fn finished(mut self, took: Duration) -> Self {
        self.settings.duration_s = took.as_secs_f64();
        self
    }

    /// The console table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let p = &self.provenance;
        let _ = writeln!(s, "sealbench crypto — {} ({} cores; {})", p.cpu_model, p.cores, p.flags_line());
        let _ = writeln!(s, "one core, median of {} samples; MB = 10^6 bytes of plaintext\n", self.settings.samples);
        let _ = writeln!(
            s,
            "{:<22} {:>7} {:>11} {:>10} {:>11} {:>10} {:>7}",
            "AEAD", "size B", "seal ns/msg", "seal MB/s", "open ns/msg", "open MB/s", "spread"
        );
        let mut last = "";
        for r in &self.aead {
            let label = if r.aead == last {
                String::new()
            } else {
                r.aead.parse::<AeadKind>().map(|a| a.label().to_owned()).unwrap_or_else(|_| r.aead.clone())
            };
            last = &r.aead;
            let spread = r.seal.timing.spread.max(r.open.timing.spread) * 100.0;
            let _ = writeln!(
                s,
                "{:<22} {:>7} {:>11.0} {:>10.1} {:>11.0} {:>10.1} {:>6.1}%",
                label, r.size, r.seal.ns_per_msg, r.seal.mb_per_s, r.open.ns_per_msg, r.open.mb_per_s, spread
            );
        }
        let _ = writeln!(
            s,
            "\n{:<38} {:>13} {:>14} {:>7}",
            "handshake (both sides)", "handshakes/s", "µs/handshake", "spread"
        );
        for h in &self.handshakes {
            let _ = writeln!(
                s,
                "{:<38} {:>13.0} {:>14.1} {:>6.1}%",
                h.suite,
                h.handshakes_per_s,
                h.us_per_handshake,
                h.timing.spread * 100.0
            );
        }
        let _ = writeln!(
            s,
            "\nX25519: {:.0} ops/s ({:.1} µs/op, spread {:.1}%)",
            self.x25519.ops_per_s,
            self.x25519.us_per_op,
            self.x25519.timing.spread * 100.0
        );
        if let Some(first) = self.transport_modes.first() {
            let _ = writeln!(
                s,
                "\n{:<22} {:>10} {:>10} {:>12} {:>12} {:>15}",
                format!("transport @ {} B", first.size),
                "noise seal",
                "noise open",
                "ratchet seal",
                "ratchet open",
                "ratchet extra"
            );
            for m in &self.transport_modes {
                let _ = writeln!(
                    s,
                    "{:<22} {:>10.0} {:>10.0} {:>12.0} {:>12.0} {:>12.0} ns",
                    m.aead, m.noise_seal_ns, m.noise_open_ns, m.ratchet_seal_ns, m.ratchet_open_ns, m.ratchet_extra_ns
                );
            }
        }
        s.push_str(&super::protocols::table(&self.protocols));
        s
    }
}
