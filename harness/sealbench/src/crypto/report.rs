//! The crypto sweep's result (`crypto.json`) and its console table.

use super::measure::Timing;
use crate::results::header::Header;
use sealcore::{AeadKind, Backend, Suite};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// Version of the `crypto.json` layout; bumped on any incompatible change. Version 2 adds
/// backends (a `backend` on every row, `x25519` a list, `kem`) and renames the `ratchet`
/// fields of `transport_modes` to `chain` (version 1 files still load).
pub const SCHEMA_VERSION: u32 = 2;

/// The clock of files written before the sweep counted CPU time.
fn wall() -> String {
    "wall".to_owned()
}

/// The backend of rows written before backends were a dimension.
fn rustcrypto() -> String {
    Backend::RustCrypto.name().to_owned()
}

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
    /// Backends measured.
    #[serde(default)]
    pub backends: Vec<String>,
    /// What the figures count: `thread-cpu` (the measuring thread's CPU time; files
    /// before schema 2: `wall`).
    #[serde(default = "wall")]
    pub clock: String,
    /// Combinations left out because a backend lacks them, with why.
    #[serde(default)]
    pub skipped: Vec<String>,
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

/// One AEAD on one backend at one message size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AeadRow {
    /// Which library (`rustcrypto`, `ring`, `aws-lc-rs`).
    #[serde(default = "rustcrypto")]
    pub backend: String,
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
    pub fn new(backend: Backend, aead: AeadKind, size: usize, seal: Timing, open: Timing) -> Self {
        AeadRow {
            backend: backend.name().into(),
            aead: aead.name().into(),
            encrypted: aead.is_encrypted(),
            size,
            seal: OpFigures::new(seal, size),
            open: OpFigures::new(open, size),
        }
    }
}

/// Complete handshakes of one suite on one backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandshakeRow {
    /// Which library.
    #[serde(default = "rustcrypto")]
    pub backend: String,
    /// Pattern (`XX`, `IK`, `XX-pq`, ...).
    pub pattern: String,
    /// Standard Noise protocol name, `+MLKEM768` for a hybrid pattern.
    pub suite: String,
    /// Bytes of all the handshake's messages (both directions, empty payloads).
    #[serde(default)]
    pub bytes: usize,
    /// X25519 implementation (says FALLBACK where the backend's own is not used).
    #[serde(default)]
    pub x25519: String,
    /// ML-KEM-768 implementation of a hybrid pattern (empty for a classical one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kem: String,
    /// Complete handshakes per second, both sides' work on one core.
    pub handshakes_per_s: f64,
    /// Median µs per complete handshake.
    pub us_per_handshake: f64,
    /// The timing samples behind the figure.
    pub timing: Timing,
}

impl HandshakeRow {
    /// A row.
    pub fn new(suite: Suite, t: Timing, bytes: usize) -> Self {
        let b = suite.backend;
        HandshakeRow {
            backend: b.name().into(),
            pattern: suite.pattern.name().into(),
            suite: suite.protocol_name(),
            bytes,
            x25519: b.x25519_impl().into(),
            kem: if suite.pattern.is_hybrid() { b.kem_impl().into() } else { String::new() },
            handshakes_per_s: t.per_second(),
            us_per_handshake: t.ns_median / 1e3,
            timing: t,
        }
    }
}

/// Noise transport against the per-message KDF chain (`kdf-chain`, formerly `ratchet`)
/// for one AEAD on one backend: what a message costs when each has a new key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModeRow {
    /// Which library.
    #[serde(default = "rustcrypto")]
    pub backend: String,
    /// AEAD short name.
    pub aead: String,
    /// Plaintext bytes per message.
    pub size: usize,
    /// noise mode seal, ns/msg.
    pub noise_seal_ns: f64,
    /// noise mode open, ns/msg.
    pub noise_open_ns: f64,
    /// kdf-chain seal, ns/msg: KDF step + AEAD key set-up + seal.
    #[serde(alias = "ratchet_seal_ns")]
    pub chain_seal_ns: f64,
    /// kdf-chain open, ns/msg.
    #[serde(alias = "ratchet_open_ns")]
    pub chain_open_ns: f64,
    /// What the chain adds per message (seal + open), ns.
    #[serde(alias = "ratchet_extra_ns")]
    pub chain_extra_ns: f64,
    /// One HKDF-SHA256 chain step alone on this backend's HMAC, ns.
    #[serde(default)]
    pub kdf_step_ns: f64,
    /// Keying the AEAD alone (its key schedule on this backend), ns.
    #[serde(default)]
    pub key_setup_ns: f64,
    /// Timing samples: noise seal, noise open, chain seal, chain open.
    pub timings: [Timing; 4],
}

impl ModeRow {
    /// A row from noise seal/open, chain seal/open, the KDF step and the key set-up.
    pub fn new(backend: Backend, aead: AeadKind, size: usize, t: [Timing; 4], step: Timing, setup: Timing) -> Self {
        let [ns, no, cs, co] = t;
        ModeRow {
            backend: backend.name().into(),
            aead: aead.name().into(),
            size,
            noise_seal_ns: ns.ns_median,
            noise_open_ns: no.ns_median,
            chain_seal_ns: cs.ns_median,
            chain_open_ns: co.ns_median,
            chain_extra_ns: (cs.ns_median + co.ns_median) - (ns.ns_median + no.ns_median),
            kdf_step_ns: step.ns_median,
            key_setup_ns: setup.ns_median,
            timings: t,
        }
    }
}

/// Raw X25519 figures of one backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct X25519Row {
    /// Which backend.
    #[serde(default = "rustcrypto")]
    pub backend: String,
    /// Which implementation ran (says FALLBACK where the backend's own is not used).
    #[serde(default)]
    pub implementation: String,
    /// Variable-base scalar multiplications per second.
    pub ops_per_s: f64,
    /// Median µs per operation.
    pub us_per_op: f64,
    /// The timing samples behind the figure.
    pub timing: Timing,
}

impl X25519Row {
    /// A row.
    pub fn new(backend: Backend, t: Timing) -> Self {
        X25519Row {
            backend: backend.name().into(),
            implementation: backend.x25519_impl().into(),
            ops_per_s: t.per_second(),
            us_per_op: t.ns_median / 1e3,
            timing: t,
        }
    }
}

/// ML-KEM-768 figures with one backend's KEM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KemRow {
    /// Which backend.
    pub backend: String,
    /// Which implementation ran (says FALLBACK where the backend has none).
    pub implementation: String,
    /// Key generation, µs.
    pub keygen_us: f64,
    /// Encapsulation, µs.
    pub encaps_us: f64,
    /// Decapsulation, µs.
    pub decaps_us: f64,
    /// Timing samples: keygen, encaps, decaps.
    pub timings: [Timing; 3],
}

impl KemRow {
    /// A row.
    pub fn new(backend: Backend, keygen: Timing, encaps: Timing, decaps: Timing) -> Self {
        KemRow {
            backend: backend.name().into(),
            implementation: backend.kem_impl().into(),
            keygen_us: keygen.ns_median / 1e3,
            encaps_us: encaps.ns_median / 1e3,
            decaps_us: decaps.ns_median / 1e3,
            timings: [keygen, encaps, decaps],
        }
    }
}

/// Reads `x25519` as a list, or as the one object of a version 1 file.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<X25519Row>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(X25519Row),
        Many(Vec<X25519Row>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(r) => vec![r],
        OneOrMany::Many(v) => v,
    })
}

/// Everything `sealbench crypto` measured (`crypto.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CryptoReport {
    /// Layout version ([`SCHEMA_VERSION`]), kind (always `crypto`) and provenance.
    #[serde(flatten)]
    pub header: Header,
    /// How the sweep ran.
    pub settings: SweepSettings,
    /// Per AEAD × size.
    pub aead: Vec<AeadRow>,
    /// Per handshake suite.
    pub handshakes: Vec<HandshakeRow>,
    /// Raw X25519, per backend.
    #[serde(deserialize_with = "one_or_many")]
    pub x25519: Vec<X25519Row>,
    /// ML-KEM-768, per backend.
    #[serde(default)]
    pub kem: Vec<KemRow>,
    /// noise vs kdf-chain.
    pub transport_modes: Vec<ModeRow>,
    /// The protocol section: per-operation costs of Noise, Olm, Megolm and MLS against
    /// group size (absent from reports written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<super::protocols::ProtocolRow>,
    /// Message franking per message, at the AEAD sizes (absent from reports written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub franking: Vec<super::franking::FrankingRow>,
    /// The key-committing mode beside the AEADs alone, at the AEAD sizes (absent from
    /// reports written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committing: Vec<super::committing::CommittingRow>,
}

impl CryptoReport {
    pub(super) fn finished(mut self, took: Duration) -> Self {
        self.settings.duration_s = took.as_secs_f64();
        self
    }

    /// The console table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let p = &self.header.provenance;
        let _ = writeln!(s, "sealbench crypto — {} ({} cores; {})", p.cpu_model, p.cores, p.flags_line());
        let _ = writeln!(
            s,
            "one core, this thread's CPU time, median of {} samples; MB = 10^6 bytes of plaintext\n",
            self.settings.samples
        );
        self.aead_table(&mut s);
        self.handshake_table(&mut s);
        self.primitive_lines(&mut s);
        self.transport_table(&mut s);
        self.franking_table(&mut s);
        self.committing_table(&mut s);
        s.push_str(&super::protocols::table(&self.protocols));
        s
    }

    /// Message franking per size, beside the AEADs of the same size.
    fn franking_table(&self, s: &mut String) {
        if self.franking.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n{:<22} {:>7} {:>14} {:>14} {:>18} {:>8}",
            "franking (HMAC-SHA256)", "size B", "frank ns/msg", "stamp ns/msg", "report verify ns", "+bytes"
        );
        for r in &self.franking {
            let _ = writeln!(
                s,
                "{:<22} {:>7} {:>14.0} {:>14.0} {:>18.0} {:>8}",
                "", r.size, r.frank.ns_median, r.stamp.ns_median, r.report_verify.ns_median, r.bytes_added
            );
        }
        let _ = writeln!(
            s,
            "(frank: a fresh {}-byte key from the OS + the commitment, at the sender; stamp and report verify: at the relay; \
             +bytes: the key inside and the trailer beside, on the SEND and the DELIVER alike)",
            sealcore::franking::KEY_LEN
        );
    }

    /// The key-committing mode per AEAD and size, beside the AEAD alone.
    fn committing_table(&self, s: &mut String) {
        let Some(first) = self.committing.first() else { return };
        let _ = writeln!(
            s,
            "\n{:<22} {:>7} {:>11} {:>11} {:>11} {:>11} {:>8}",
            "committing mode", "size B", "AEAD seal", "+commit", "AEAD open", "+commit", "+bytes"
        );
        let mut last = "";
        for r in &self.committing {
            let label = if r.aead == last { "" } else { r.aead.as_str() };
            last = &r.aead;
            let _ = writeln!(
                s,
                "{:<22} {:>7} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>8}",
                label,
                r.size,
                r.plain_seal.ns_median,
                r.seal.ns_median,
                r.plain_open.ns_median,
                r.open.ns_median,
                r.bytes_added
            );
        }
        let _ = writeln!(
            s,
            "(ns/msg; key commitment of Albertini et al., USENIX Security 2022: derived once per key in {:.0} ns, checked before opening)",
            first.key_setup.ns_median
        );
    }

    /// The AEADs per backend and size, and what the sweep skipped.
    fn aead_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "{:<22} {:<11} {:>7} {:>11} {:>10} {:>11} {:>10} {:>7}",
            "AEAD", "backend", "size B", "seal ns/msg", "seal MB/s", "open ns/msg", "open MB/s", "spread"
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
                "{:<22} {:<11} {:>7} {:>11.0} {:>10.1} {:>11.0} {:>10.1} {:>6.1}%",
                label,
                r.backend,
                r.size,
                r.seal.ns_per_msg,
                r.seal.mb_per_s,
                r.open.ns_per_msg,
                r.open.mb_per_s,
                spread
            );
        }
        for skipped in &self.settings.skipped {
            let _ = writeln!(s, "skipped: {skipped}");
        }
    }

    /// The handshakes per suite and backend.
    fn handshake_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<47} {:<11} {:>7} {:>13} {:>14} {:>7}",
            "handshake (both sides)", "backend", "bytes", "handshakes/s", "µs/handshake", "spread"
        );
        for h in &self.handshakes {
            let _ = writeln!(
                s,
                "{:<47} {:<11} {:>7} {:>13.0} {:>14.1} {:>6.1}%",
                h.suite,
                h.backend,
                h.bytes,
                h.handshakes_per_s,
                h.us_per_handshake,
                h.timing.spread * 100.0
            );
        }
    }

    /// X25519 and ML-KEM-768 per backend.
    fn primitive_lines(&self, s: &mut String) {
        let _ = writeln!(s);
        for x in &self.x25519 {
            let _ = writeln!(
                s,
                "X25519 on {:<10} {:>7.0} ops/s ({:.1} µs/op, spread {:.1}%): {}",
                x.backend,
                x.ops_per_s,
                x.us_per_op,
                x.timing.spread * 100.0,
                x.implementation
            );
        }
        for k in &self.kem {
            let _ = writeln!(
                s,
                "ML-KEM-768 with {:<10} keygen {:.1} µs, encaps {:.1} µs, decaps {:.1} µs: {}",
                k.backend, k.keygen_us, k.encaps_us, k.decaps_us, k.implementation
            );
        }
    }

    /// Noise transport against the KDF chain, per AEAD and backend.
    fn transport_table(&self, s: &mut String) {
        if let Some(first) = self.transport_modes.first() {
            let _ = writeln!(
                s,
                "\n{:<22} {:<11} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>11}",
                format!("transport @ {} B", first.size),
                "backend",
                "noise seal",
                "noise open",
                "chain seal",
                "chain open",
                "KDF step",
                "key set",
                "chain extra"
            );
            for m in &self.transport_modes {
                let _ = writeln!(
                    s,
                    "{:<22} {:<11} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>9.0} {:>9.0} {:>8.0} ns",
                    m.aead,
                    m.backend,
                    m.noise_seal_ns,
                    m.noise_open_ns,
                    m.chain_seal_ns,
                    m.chain_open_ns,
                    m.kdf_step_ns,
                    m.key_setup_ns,
                    m.chain_extra_ns
                );
            }
            let _ = writeln!(
                s,
                "(kdf-chain: a new key per message = KDF step + key set-up + seal; a symmetric KDF chain, not a Double Ratchet)"
            );
        }
    }
}
