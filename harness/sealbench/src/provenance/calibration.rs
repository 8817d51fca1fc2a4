//! This machine's floors as results carry them: the [`Calibration`] record, its cache
//! (read here; written by [`crate::calibrate`], which measures it) and its comparison.
//! Reading a provenance reads the cache and never measures: a measurement takes about a
//! second and is [`crate::calibrate`]'s.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Connections of the hop measurement (as in the figures the floor is compared with).
pub const HOP_CONNECTIONS: usize = 1000;
/// Bytes per message of the hop measurement: a 256 B sealed message in its relay frame
/// and WebSocket header.
pub const HOP_BYTES: usize = 300;
/// Messages per write of the batched hop.
pub const HOP_BATCH: usize = 16;

/// This machine's floors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// When it was measured, UTC, RFC 3339.
    pub measured_at: String,
    /// The machine it describes (CPU model, logical CPUs, kernel): a cached calibration
    /// is used only on a machine that reads the same.
    pub machine: String,
    /// sealbench's version that measured it.
    pub sealbench_version: String,
    /// `full` (`sealbench calibrate`) or `quick` (taken by a run that found no cache).
    pub kind: String,
    /// CPU ns per message of one unbatched loopback TCP hop: write, epoll_wait, read,
    /// [`HOP_BYTES`] bytes, [`HOP_CONNECTIONS`] connections, one thread. Median of the rounds.
    pub hop_ns: f64,
    /// The same with [`HOP_BATCH`] messages in one write, per message.
    pub hop_batched_ns: f64,
    /// CPU ns of one timer wake-up (a timerfd armed, waited for in the runtime, read).
    pub timer_wake_ns: f64,
    /// CPU ns of one X25519 (scalar multiplication), per backend.
    pub x25519_ns: BTreeMap<String, f64>,
    /// CPU ns to seal 256 B with ChaCha20-Poly1305, per backend.
    pub seal_256_ns: BTreeMap<String, f64>,
    /// Relative spread (max − min) / median of the unbatched hop over the rounds: the
    /// noise below which two calibrations do not differ.
    pub hop_spread: f64,
    /// Rounds each figure is the median of.
    pub rounds: usize,
    /// Floors of whole traffic shapes (a minimal generator and relay moving a run's
    /// traffic: `calibrate::shape`), each at the connections and rate it was asked for;
    /// a run's multiples are taken against the one of its shape. Absent in older caches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<crate::calibrate::shape::ShapeFloor>,
}

/// The machine a calibration describes.
pub fn machine_fingerprint() -> String {
    let p = crate::provenance::Provenance::collect_without_calibration();
    format!("{} · {} CPUs · {}", p.cpu_model, p.cores, p.os)
}

/// Where the calibration is cached: `$SEALBENCH_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sealbench`, else `~/.cache/sealbench`; `calibration.json` in it
/// (`calibration-debug.json` for a debug build).
pub fn cache_path() -> Option<PathBuf> {
    let dir = std::env::var_os("SEALBENCH_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("sealbench")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("sealbench")))?;
    // A debug build measures its own loops slower: it keeps a calibration of its own, so
    // that tests run in debug never leave their figures for release runs.
    let file = if cfg!(debug_assertions) { "calibration-debug.json" } else { "calibration.json" };
    Some(dir.join(file))
}

/// The cached calibration, if there is one for this machine.
pub fn cached() -> Option<Calibration> {
    let text = std::fs::read_to_string(cache_path()?).ok()?;
    let c: Calibration = serde_json::from_str(&text).ok()?;
    (c.machine == machine_fingerprint()).then_some(c)
}

/// CPU per message as a multiple of one hop.
pub fn multiple(cpu_ns_per_msg: f64, c: &Calibration) -> Option<f64> {
    (c.hop_ns > 0.0 && cpu_ns_per_msg > 0.0).then(|| cpu_ns_per_msg / c.hop_ns)
}

/// Why two calibrations do not describe the same floor, if they do not: their hops differ
/// by more than the larger of their spreads (and at least 10 %).
pub fn differ(a: &Calibration, b: &Calibration) -> Option<String> {
    let noise = a.hop_spread.max(b.hop_spread).max(0.10);
    let change = (b.hop_ns - a.hop_ns) / a.hop_ns;
    (change.abs() > noise).then(|| {
        format!(
            "the machines' floors differ: one loopback hop {:.1} µs (calibrated {}) vs {:.1} µs \
             (calibrated {}), {:+.0} % (noise {:.0} %); compare CPU per message as multiples of the floor",
            a.hop_ns / 1e3,
            a.measured_at,
            b.hop_ns / 1e3,
            b.measured_at,
            change * 100.0,
            noise * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(hop: f64, spread: f64) -> Calibration {
        Calibration {
            measured_at: "2026-11-27T00:00:00Z".into(),
            machine: "m".into(),
            sealbench_version: "0".into(),
            kind: "full".into(),
            hop_ns: hop,
            hop_batched_ns: hop / 10.0,
            timer_wake_ns: 1000.0,
            x25519_ns: BTreeMap::new(),
            seal_256_ns: BTreeMap::new(),
            hop_spread: spread,
            rounds: 7,
            shapes: Vec::new(),
        }
    }

    #[test]
    fn calibrations_differ_only_beyond_their_noise() {
        assert!(differ(&cal(12_000.0, 0.05), &cal(12_500.0, 0.05)).is_none());
        assert!(differ(&cal(12_000.0, 0.05), &cal(20_000.0, 0.05)).is_some());
        assert!(differ(&cal(12_000.0, 0.5), &cal(15_000.0, 0.05)).is_none(), "the wider spread counts");
        assert_eq!(multiple(24_000.0, &cal(12_000.0, 0.0)), Some(2.0));
        assert_eq!(multiple(0.0, &cal(12_000.0, 0.0)), None);
    }
}
