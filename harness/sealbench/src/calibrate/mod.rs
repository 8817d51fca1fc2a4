//! This machine's floors: the cost of one loopback TCP hop (unbatched and batched), of a
//! timer wake-up, of X25519 and of one AEAD seal, measured in a few seconds and cached
//! per machine with the date.
//!
//! Microseconds per message do not compare between machines; a multiple of the
//! machine's own floor does. A relayed message makes two hops (sender → relay →
//! recipient), and neither the driver nor the relay can do with fewer system calls than
//! one hop each per message unless they batch: so "driver CPU per message ÷ one hop" and
//! "relay CPU per message ÷ one hop" say how far each is from the floor, on any machine.
//!
//! # Layout
//! - [`hop`] — the loopback hop.
//! - [`wake`] — the timer wake-up.
//! - this module — the [`Calibration`] record, its cache and its comparison.

pub mod hop;
pub mod wake;

use crate::crypto::measure::{summarize, timed};
use anyhow::{Context, Result};
use sealcore::backend::Backend;
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
}

/// The machine a calibration describes.
pub fn machine_fingerprint() -> String {
    let p = crate::provenance::Provenance::collect_without_calibration();
    format!("{} · {} CPUs · {}", p.cpu_model, p.cores, p.os)
}

/// Measures this machine's floors: `quick` takes about a second, the full form a few.
///
/// # Errors
/// When sockets, epoll, a timerfd or randomness are not available.
pub fn measure(quick: bool, progress: &mut dyn FnMut(&str)) -> Result<Calibration> {
    let rounds = if quick { 3 } else { 7 };
    let scale = if quick { 1 } else { 3 };
    progress(&format!("loopback hop: {HOP_CONNECTIONS} connections, {HOP_BYTES} B, one thread"));
    let mut lb = hop::Loopback::new(HOP_CONNECTIONS)?;
    let one = hop::HopShape { connections: HOP_CONNECTIONS, bytes: HOP_BYTES, batch: 1, rounds: 6_000 * scale };
    let batched = hop::HopShape { batch: HOP_BATCH, rounds: 1_000 * scale, ..one };
    // Warm the caches and the socket buffers once, then alternate the two shapes.
    lb.measure(hop::HopShape { rounds: HOP_CONNECTIONS, ..one })?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(lb.measure(one)?);
        b.push(lb.measure(batched)?);
    }
    drop(lb);
    progress("timer wake-up");
    let mut w = Vec::new();
    for _ in 0..rounds {
        w.push(wake::measure(if quick { 500 } else { 2_000 })?);
    }
    progress("X25519 and one seal, per backend");
    let (mut x25519, mut seal) = (BTreeMap::new(), BTreeMap::new());
    for backend in Backend::compiled() {
        let (mut x, mut s) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            x.push(x25519_ns(backend, if quick { 50 } else { 200 }));
            s.push(seal_ns(backend, if quick { 2_000 } else { 20_000 })?);
        }
        x25519.insert(backend.name().to_owned(), median(x));
        seal.insert(backend.name().to_owned(), median(s));
    }
    let hop = summarize(a, 0);
    Ok(Calibration {
        measured_at: crate::timefmt::rfc3339_now(),
        machine: machine_fingerprint(),
        sealbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        kind: if quick { "quick" } else { "full" }.to_owned(),
        hop_ns: hop.ns_median,
        hop_batched_ns: median(b),
        timer_wake_ns: median(w),
        x25519_ns: x25519,
        seal_256_ns: seal,
        hop_spread: hop.spread,
        rounds,
    })
}

/// The median of samples (the crypto sweep's summary: the same statistics everywhere).
fn median(v: Vec<f64>) -> f64 {
    summarize(v, 0).ns_median
}

fn x25519_ns(backend: Backend, n: u32) -> f64 {
    let mut k = [9u8; 32];
    let mut i = 0u8;
    let cpu = timed(u64::from(n), || {
        k[0] = i;
        i = i.wrapping_add(1);
        k = sealcore::backend::x25519(backend, &k, &[9; 32]).unwrap_or(k);
    });
    std::hint::black_box(k);
    cpu.as_nanos() as f64 / f64::from(n)
}

fn seal_ns(backend: Backend, n: u32) -> Result<f64> {
    let key = sealcore::AeadKey::with_backend(backend, sealcore::AeadKind::ChaCha20Poly1305, &[7; 32])?;
    let mut buf = [0u8; 256];
    let mut nonce = [0u8; 12];
    let mut i = 0u32;
    let mut failed = None;
    let cpu = timed(u64::from(n), || {
        nonce[..4].copy_from_slice(&i.to_le_bytes());
        i += 1;
        if let Err(e) = std::hint::black_box(key.seal(&nonce, &[], &mut buf)) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(cpu.as_nanos() as f64 / f64::from(n))
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

/// Writes `c` to the cache (through a temporary file and a rename, so a reader never
/// sees half of it). Returns where.
///
/// # Errors
/// When there is no cache directory or it cannot be written.
pub fn store(c: &Calibration) -> Result<PathBuf> {
    let path = cache_path().context("no cache directory: set SEALBENCH_CACHE_DIR or HOME")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(c)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The cached calibration, or a quick one measured now and cached (a run that finds none
/// takes about a second for it, once per machine). `None` (with the reason logged) when
/// it cannot be measured: the run goes on without floor multiples.
pub fn cached_or_quick() -> Option<Calibration> {
    if let Some(c) = cached() {
        return Some(c);
    }
    eprintln!("calibrating this machine's floors (once; `sealbench calibrate` measures them fully)…");
    match measure(true, &mut |_| {}) {
        Ok(c) => {
            if let Err(e) = store(&c) {
                tracing::warn!("calibration not cached: {e:#}");
            }
            Some(c)
        }
        Err(e) => {
            tracing::warn!("no calibration: {e:#}");
            None
        }
    }
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
