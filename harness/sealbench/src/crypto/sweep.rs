//! What the crypto sweep measures, on one core: per-message seal/open of every AEAD over
//! message sizes, complete handshakes per pattern × suite, raw X25519, and the per-message
//! cost of the ratchet over plain Noise transport.
//!
//! Seal and open go through the real transport ([`sealcore::TransportSender::seal`] /
//! [`sealcore::TransportReceiver::open`]): counter header, nonce, tag and replay window included —
//! exactly the per-message work of a load run.

use super::measure::{Budget, Timing, measure, timed};
use super::report::{AeadRow, CryptoReport, HandshakeRow, ModeRow, SweepSettings, X25519Row};
use crate::provenance::Provenance;
use anyhow::{Context, Result};
use sealcore::handshake::complete_in_memory;
use sealcore::transport::{HEADER_LEN, OVERHEAD};
use sealcore::{AeadKind, Handshake, HandshakeKeys, HashKind, Pattern, StaticKeypair, Suite, Transport, TransportMode};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Message sizes of the full sweep: powers of two from 16 B to 64 KiB, plus 1350 B (a
/// typical MTU-sized payload).
pub const FULL_SIZES: &[usize] = &[16, 32, 64, 128, 256, 512, 1024, 1350, 2048, 4096, 8192, 16384, 32768, 65536];
/// Message sizes of `--quick`.
pub const QUICK_SIZES: &[usize] = &[64, 1024, 16384];
/// Working set per figure: messages are spread over a ring of buffers this large (so that
/// small messages are not all one hot cache line, and large ones still fit in L2).
const RING_BYTES: usize = 256 * 1024;
/// Message size of the transport-mode comparison.
pub const MODE_SIZE: usize = 256;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// AEADs to measure.
    pub aeads: Vec<AeadKind>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Handshake suites to measure.
    pub handshakes: Vec<Suite>,
    /// AEADs for the noise-vs-ratchet comparison.
    pub mode_aeads: Vec<AeadKind>,
    /// Time per figure.
    pub budget: Budget,
    /// Whether this is the quick plan.
    pub quick: bool,
    /// The protocol section (None: left out).
    pub protocols: Option<super::protocols::ProtocolPlan>,
}

impl SweepPlan {
    /// The full sweep (about two minutes on a 2-core EPYC).
    pub fn full() -> Self {
        let mut handshakes = Vec::new();
        for p in Pattern::ALL {
            for a in [AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm] {
                for h in HashKind::ALL {
                    handshakes.push(Suite::new(p, a, h));
                }
            }
        }
        SweepPlan {
            aeads: AeadKind::ALL.to_vec(),
            sizes: FULL_SIZES.to_vec(),
            handshakes,
            mode_aeads: AeadKind::ALL.to_vec(),
            budget: Budget { sample: Duration::from_millis(70), samples: 5 },
            quick: false,
            protocols: Some(super::protocols::ProtocolPlan::full()),
        }
    }

    /// The quick sweep: every AEAD at 64 B, 1 KiB and 16 KiB, every pattern once per
    /// Noise cipher with SHA-256 (about 13 s, 19 s with the protocol section: `docs/PERFORMANCE.md`).
    pub fn quick() -> Self {
        let mut handshakes = Vec::new();
        for p in Pattern::ALL {
            for a in [AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm] {
                handshakes.push(Suite::new(p, a, HashKind::Sha256));
            }
        }
        SweepPlan {
            aeads: AeadKind::ALL.to_vec(),
            sizes: QUICK_SIZES.to_vec(),
            handshakes,
            mode_aeads: vec![AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm],
            budget: Budget { sample: Duration::from_millis(30), samples: 5 },
            quick: true,
            protocols: Some(super::protocols::ProtocolPlan::quick()),
        }
    }

    /// How many figures the plan measures (for the progress bar).
    pub fn steps(&self) -> u64 {
        (self.aeads.len() * self.sizes.len() + self.handshakes.len() + 1 + self.mode_aeads.len()) as u64
            + self.protocols.as_ref().map_or(0, super::protocols::ProtocolPlan::steps)
    }
}

/// Receives progress: called before each figure with what is about to be measured.
pub trait Progress {
    /// A new figure starts.
    fn step(&mut self, what: &str);
}

/// Runs the sweep.
///
/// # Errors
/// Only if a handshake cannot be set up (no OS randomness).
pub fn run(plan: &SweepPlan, progress: &mut dyn Progress) -> Result<CryptoReport> {
    let provenance = Provenance::collect();
    let started = Instant::now();
    let mut aead_rows = Vec::new();
    for &aead in &plan.aeads {
        for &size in &plan.sizes {
            progress.step(&format!("{} seal/open {} B", aead.label(), size));
            let mode = TransportMode::Noise { rekey_every: 0 };
            let (seal, open) = seal_open(aead, mode, size, plan.budget)?;
            aead_rows.push(AeadRow::new(aead, size, seal, open));
        }
    }
    let mut handshake_rows = Vec::new();
    for &suite in &plan.handshakes {
        progress.step(&format!("handshake {}", suite.noise_name()));
        let t = handshakes(suite, plan.budget)?;
        handshake_rows.push(HandshakeRow::new(suite, t));
    }
    progress.step("X25519 scalar multiplication");
    let t = x25519_ops(plan.budget);
    let x25519 = X25519Row { ops_per_s: t.per_second(), us_per_op: t.ns_median / 1e3, timing: t };
    let mut modes = Vec::new();
    for &aead in &plan.mode_aeads {
        progress.step(&format!("{} noise vs ratchet at {MODE_SIZE} B", aead.label()));
        let (ns, no) = seal_open(aead, TransportMode::Noise { rekey_every: 0 }, MODE_SIZE, plan.budget)?;
        let (rs, ro) = seal_open(aead, TransportMode::Ratchet, MODE_SIZE, plan.budget)?;
        modes.push(ModeRow::new(aead, MODE_SIZE, ns, no, rs, ro));
    }
    let protocols = match &plan.protocols {
        Some(p) => super::protocols::run(p, progress)?,
        None => Vec::new(),
    };
    Ok(CryptoReport {
        schema_version: super::report::SCHEMA_VERSION,
        kind: "crypto".into(),
        provenance,
        settings: SweepSettings {
            quick: plan.quick,
            sample_ms: plan.budget.sample.as_secs_f64() * 1e3,
            samples: plan.budget.samples,
            ring_bytes: RING_BYTES,
            duration_s: 0.0,
        },
        aead: aead_rows,
        handshakes: handshake_rows,
        x25519,
        transport_modes: modes,
        protocols,
    }
    .finished(started.elapsed()))
}

/// An in-memory NN handshake for `aead`, turned into transports in `mode`.
fn transport_pair(aead: AeadKind, mode: TransportMode) -> Result<(Transport, Transport)> {
    let suite = Suite::new(Pattern::NN, aead, HashKind::Sha256);
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"sealbench crypto")?;
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"sealbench crypto")?;
    complete_in_memory(&mut i, &mut r).context("in-memory handshake")?;
    Ok((i.into_transport(mode)?, r.into_transport(mode)?))
}

/// Seal and open timings for one AEAD, mode and size.
fn seal_open(aead: AeadKind, mode: TransportMode, size: usize, budget: Budget) -> Result<(Timing, Timing)> {
    let (mut a, _) = transport_pair(aead, mode)?;
    let ring = (RING_BYTES / (size + OVERHEAD)).clamp(1, 4096);
    let stride = size + OVERHEAD;
    let mut bufs = vec![0x5au8; ring * stride];
    let seal = measure(budget, |n| {
        let t0 = Instant::now();
        for k in 0..n {
            let off = (k as usize % ring) * stride;
            let buf = &mut bufs[off..off + stride];
            black_box(a.sender.seal(buf, size).expect("seal"));
        }
        t0.elapsed()
    });
    // Opening needs fresh messages (a repeat is a replay): seal a ring untimed, open it
    // timed, on a fresh session whose receiver has seen every counter its sender used.
    let (mut a, mut b) = transport_pair(aead, mode)?;
    let mut lens = vec![0usize; ring];
    let open = measure(budget, |n| {
        let mut elapsed = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let batch = left.min(ring as u64) as usize;
            for (k, len) in lens.iter_mut().enumerate().take(batch) {
                let buf = &mut bufs[k * stride..(k + 1) * stride];
                buf[HEADER_LEN..HEADER_LEN + size].fill(k as u8);
                *len = a.sender.seal(buf, size).expect("seal");
            }
            let t0 = Instant::now();
            for (k, len) in lens.iter().enumerate().take(batch) {
                let buf = &mut bufs[k * stride..k * stride + *len];
                black_box(b.receiver.open(buf).expect("open"));
            }
            elapsed += t0.elapsed();
            left -= batch as u64;
        }
        elapsed
    });
    Ok((seal, open))
}

/// Complete handshakes (both sides' work, fresh ephemeral keys each time).
fn handshakes(suite: Suite, budget: Budget) -> Result<Timing> {
    let is = StaticKeypair::generate()?;
    let rs = StaticKeypair::generate()?;
    let ikeys = HandshakeKeys { local_static: Some(&is), remote_static: Some(&rs.public), fixed_ephemeral: None };
    let rkeys = HandshakeKeys { local_static: Some(&rs), ..Default::default() };
    Ok(measure(budget, |n| {
        timed(n, || {
            let mut i = Handshake::initiator(suite, ikeys, b"sealbench crypto").expect("initiator");
            let mut r = Handshake::responder(suite, rkeys, b"sealbench crypto").expect("responder");
            complete_in_memory(&mut i, &mut r).expect("handshake");
            black_box(i.into_transport(TransportMode::Noise { rekey_every: 0 }).expect("transport"));
        })
    }))
}

/// Raw X25519: one variable-base scalar multiplication (a DH) per operation.
fn x25519_ops(budget: Budget) -> Timing {
    let mut k = [7u8; 32];
    let u = sealcore::handshake::x25519(k, sealcore::handshake::X25519_BASEPOINT);
    measure(budget, |n| {
        timed(n, || {
            k = sealcore::handshake::x25519(black_box(k), u);
        })
    })
}
