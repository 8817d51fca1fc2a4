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
//! - [`shape`] — the floor of a whole traffic shape (a minimal generator and relay).
//! - this module — the measurement, and the cache written.
//! - the [`Calibration`] record, its cache read and its comparison live in
//!   [`crate::provenance::calibration`] (every result's provenance carries one; reading it
//!   never measures) and are re-exported here.

pub mod hop;
pub mod shape;
pub mod wake;

use crate::crypto::measure::{summarize, timed};
use crate::provenance::Provenance;
pub use crate::provenance::calibration::{
    Calibration, HOP_BATCH, HOP_BYTES, HOP_CONNECTIONS, cache_path, cached, differ, machine_fingerprint, multiple,
};
use anyhow::{Context, Result};
use sealcore::backend::Backend;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The shapes a full calibration measures when none are asked for: the quickstart's
/// (1,000 connections at 5,000 msgs/s) and the same at 10,000 msgs/s, at the default tick.
pub const DEFAULT_SHAPES: [(usize, f64); 2] = [(1000, 5000.0), (1000, 10_000.0)];

/// Measures this machine's floors: `quick` takes about a second, the full form a few;
/// then the floor of each of `shapes` (connections, msgs/s in all), 3 s each.
///
/// # Errors
/// When sockets, epoll, a timerfd or randomness are not available.
pub fn measure_with_shapes(
    quick: bool,
    shapes: &[(usize, f64)],
    progress: &mut dyn FnMut(&str),
) -> Result<Calibration> {
    let mut c = measure(quick, progress)?;
    for &(connections, rate) in shapes {
        progress(&format!("the floor of {connections} connections at {rate} msgs/s (3 s)"));
        let tick_ns = 200_000;
        c.shapes.push(shape::measure(shape::Shape { connections, rate, tick_ns, bytes: HOP_BYTES, seconds: 3.0 })?);
    }
    Ok(c)
}

/// Carries into the new calibration `c` the shape floors of `earlier` (this machine's
/// previous one) that `c` did not measure again, each with its own time: measuring one
/// more shape must not lose the others. A shape measured again (or one within 25 % of its
/// rate, which a run would take for it) replaces the earlier floor. Returns how many were
/// kept.
pub fn keep_earlier_shapes(c: &mut Calibration, earlier: Option<Calibration>) -> usize {
    let Some(earlier) = earlier.filter(|e| e.machine == c.machine) else { return 0 };
    let before = c.shapes.len();
    for mut old in earlier.shapes {
        if c.shapes.iter().any(|new| new.fits(old.connections, old.rate, old.tick_us)) {
            continue;
        }
        old.measured_at.get_or_insert_with(|| earlier.measured_at.clone());
        c.shapes.push(old);
    }
    c.shapes.sort_by(|a, b| a.connections.cmp(&b.connections).then(a.rate.total_cmp(&b.rate)));
    c.shapes.len() - before
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
        shapes: Vec::new(),
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

impl Provenance {
    /// [`Provenance::collect`], and when this machine has no cached calibration yet, a
    /// quick one measured now (about a second, once per machine) and cached.
    pub fn with_calibration() -> Self {
        let mut p = Self::collect_without_calibration();
        p.calibration = cached_or_quick();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shape::ShapeFloor;

    fn floor(rate: f64, generator_ns: f64) -> ShapeFloor {
        ShapeFloor { connections: 1000, rate, tick_us: 200.0, generator_ns, relay_ns: 1.0, measured_at: None }
    }

    fn calibration(at: &str, machine: &str, shapes: Vec<ShapeFloor>) -> Calibration {
        Calibration {
            measured_at: at.into(),
            machine: machine.into(),
            sealbench_version: "0".into(),
            kind: "full".into(),
            hop_ns: 3000.0,
            hop_batched_ns: 200.0,
            timer_wake_ns: 1000.0,
            x25519_ns: BTreeMap::new(),
            seal_256_ns: BTreeMap::new(),
            hop_spread: 0.01,
            rounds: 7,
            shapes,
        }
    }

    #[test]
    fn a_new_calibration_keeps_the_shapes_it_did_not_measure_again_with_their_own_time() {
        let earlier = calibration("t0", "m", vec![floor(5000.0, 1.0), floor(10_000.0, 2.0), floor(60_000.0, 3.0)]);
        let mut c = calibration("t1", "m", vec![floor(11_000.0, 9.0)]);
        assert_eq!(keep_earlier_shapes(&mut c, Some(earlier.clone())), 2);
        let rates: Vec<(f64, f64, Option<&str>)> =
            c.shapes.iter().map(|f| (f.rate, f.generator_ns, f.measured_at.as_deref())).collect();
        assert_eq!(
            rates,
            [(5000.0, 1.0, Some("t0")), (11_000.0, 9.0, None), (60_000.0, 3.0, Some("t0"))],
            "10,000 is within 25 % of the new 11,000: replaced; the others kept, dated"
        );
        let mut elsewhere = calibration("t1", "another machine", Vec::new());
        assert_eq!(
            keep_earlier_shapes(&mut elsewhere, Some(earlier)),
            0,
            "another machine's floors are not this one's"
        );
    }
}
