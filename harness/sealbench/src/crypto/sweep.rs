//! What the crypto sweep measures, on one core, for each chosen backend: per-message
//! seal/open of every AEAD over message sizes, complete handshakes per pattern × suite
//! (classical and hybrid post-quantum, with their bytes), raw X25519, ML-KEM-768, and what
//! the per-message KDF chain costs over plain Noise transport (KDF step + key set-up + seal).
//!
//! Seal and open go through the real transport ([`sealcore::TransportSender::seal`] /
//! [`sealcore::TransportReceiver::open`]): counter header, nonce, tag and replay window included —
//! exactly the per-message work of a load run. Backends are measured back to back for each
//! figure (sizes outermost), so that they share the machine's state in one sitting.

use super::measure::{Budget, Stopwatch, Timing, measure, timed};
use super::report::{AeadRow, CryptoReport, HandshakeRow, KemRow, ModeRow, SweepSettings, X25519Row};
use crate::provenance::Provenance;
use crate::results::header::Header;
use anyhow::{Context, Result, bail};
use sealcore::handshake::complete_in_memory;
use sealcore::kem::{self, KemImpl};
use sealcore::transport::{HEADER_LEN, OVERHEAD};
use sealcore::{
    AeadKey, AeadKind, Backend, Handshake, HandshakeKeys, HashKind, Pattern, StaticKeypair, Suite, Transport,
    TransportMode,
};
use std::hint::black_box;
use std::time::Duration;

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
    /// Backends to measure (each figure on each, back to back).
    pub backends: Vec<Backend>,
    /// AEADs to measure.
    pub aeads: Vec<AeadKind>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Handshake suites to measure.
    pub handshakes: Vec<Suite>,
    /// AEADs for the noise-vs-kdf-chain comparison.
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
            backends: vec![Backend::default()],
            aeads: AeadKind::ALL.to_vec(),
            sizes: FULL_SIZES.to_vec(),
            handshakes,
            mode_aeads: AeadKind::ALL.to_vec(),
            budget: Budget { sample: Duration::from_millis(70), samples: 5 },
            quick: false,
            protocols: Some(super::protocols::ProtocolPlan::full()),
        }
    }

    /// The quick sweep: every AEAD at 64 B, 1 KiB and 16 KiB, every classical pattern once
    /// per Noise cipher with SHA-256, the hybrid ones with ChaChaPoly (about 15 s per
    /// backend, 6 s more with the protocol section: `docs/PERFORMANCE.md`).
    pub fn quick() -> Self {
        let mut handshakes = Vec::new();
        for p in Pattern::CLASSICAL {
            for a in [AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm] {
                handshakes.push(Suite::new(p, a, HashKind::Sha256));
            }
        }
        for p in Pattern::HYBRID {
            handshakes.push(Suite::new(p, AeadKind::ChaCha20Poly1305, HashKind::Sha256));
        }
        SweepPlan {
            backends: vec![Backend::default()],
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
        let per_backend = self.aeads.len() * self.sizes.len() + self.handshakes.len() + 2 + self.mode_aeads.len();
        (self.backends.len() * per_backend) as u64
            + self.protocols.as_ref().map_or(0, super::protocols::ProtocolPlan::steps)
            + 2 // franking, committing mode
    }

    /// Checks the backends before anything is measured: each must be compiled in.
    ///
    /// # Errors
    /// A backend compiled out (the message says how to build it in).
    pub fn check(&self) -> Result<()> {
        for b in &self.backends {
            if !b.is_compiled() {
                bail!("--backend: {}", sealcore::BackendError::NotCompiled(b.name()));
            }
        }
        Ok(())
    }

    /// What the plan leaves out because a backend lacks it, one line each.
    pub fn skipped(&self) -> Vec<String> {
        let mut v = Vec::new();
        for &b in &self.backends {
            for &a in self.aeads.iter().filter(|a| !b.has_aead(**a)) {
                v.push(format!("{a} on {b}: {}", b.check(a).err().map(|e| e.to_string()).unwrap_or_default()));
            }
        }
        v
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
    plan.check()?;
    let provenance = Provenance::collect();
    let started = std::time::Instant::now();
    let noise = TransportMode::Noise { rekey_every: 0 };
    let mut aead_rows = Vec::new();
    for &aead in &plan.aeads {
        for &size in &plan.sizes {
            for &b in plan.backends.iter().filter(|b| b.has_aead(aead)) {
                progress.step(&format!("{} on {b} seal/open {} B", aead.label(), size));
                let (seal, open) = seal_open(b, aead, noise, size, plan.budget)?;
                aead_rows.push(AeadRow::new(b, aead, size, seal, open));
            }
        }
    }
    let mut handshake_rows = Vec::new();
    for &suite in &plan.handshakes {
        for &b in plan.backends.iter().filter(|b| b.has_aead(suite.aead)) {
            let suite = suite.with_backend(b);
            progress.step(&format!("handshake {} on {b}", suite.protocol_name()));
            let (t, bytes) = handshakes(suite, plan.budget)?;
            handshake_rows.push(HandshakeRow::new(suite, t, bytes));
        }
    }
    let mut x25519 = Vec::new();
    let mut kems = Vec::new();
    for &b in &plan.backends {
        progress.step(&format!("X25519 scalar multiplication on {b}"));
        x25519.push(X25519Row::new(b, x25519_ops(b, plan.budget)));
        progress.step(&format!("ML-KEM-768 on {}", b.kem_impl()));
        kems.push(kem_ops(b, plan.budget)?);
    }
    let mut modes = Vec::new();
    for &aead in &plan.mode_aeads {
        for &b in plan.backends.iter().filter(|b| b.has_aead(aead)) {
            progress.step(&format!("{} on {b}: noise vs kdf-chain at {MODE_SIZE} B", aead.label()));
            let (ns, no) = seal_open(b, aead, noise, MODE_SIZE, plan.budget)?;
            let (cs, co) = seal_open(b, aead, TransportMode::KdfChain, MODE_SIZE, plan.budget)?;
            let setup = key_setup(b, aead, plan.budget)?;
            let step = kdf_step(b, plan.budget);
            modes.push(ModeRow::new(b, aead, MODE_SIZE, [ns, no, cs, co], step, setup));
        }
    }
    progress.step("franking: frank, stamp, report verification");
    let franking = super::franking::run(&plan.sizes, plan.budget)?;
    progress.step("committing mode: key commitment beside ChaCha20-Poly1305 and AES-256-GCM");
    let committing = super::committing::run(&plan.sizes, plan.budget)?;
    let protocols = match &plan.protocols {
        Some(p) => super::protocols::run(p, progress)?,
        None => Vec::new(),
    };
    Ok(CryptoReport {
        header: Header::new(super::report::SCHEMA_VERSION, "crypto", provenance),
        settings: SweepSettings {
            quick: plan.quick,
            sample_ms: plan.budget.sample.as_secs_f64() * 1e3,
            samples: plan.budget.samples,
            ring_bytes: RING_BYTES,
            duration_s: 0.0,
            backends: plan.backends.iter().map(|b| b.name().to_owned()).collect(),
            clock: "thread-cpu".into(),
            skipped: plan.skipped(),
        },
        aead: aead_rows,
        handshakes: handshake_rows,
        x25519,
        kem: kems,
        transport_modes: modes,
        protocols,
        franking,
        committing,
    }
    .finished(started.elapsed()))
}

/// An in-memory NN handshake for `aead` on `backend`, turned into transports in `mode`.
fn transport_pair(backend: Backend, aead: AeadKind, mode: TransportMode) -> Result<(Transport, Transport)> {
    let suite = Suite::new(Pattern::NN, aead, HashKind::Sha256).with_backend(backend);
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"sealbench crypto")?;
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"sealbench crypto")?;
    complete_in_memory(&mut i, &mut r).context("in-memory handshake")?;
    Ok((i.into_transport(mode)?, r.into_transport(mode)?))
}

/// Seal and open timings for one backend, AEAD, mode and size.
fn seal_open(
    backend: Backend,
    aead: AeadKind,
    mode: TransportMode,
    size: usize,
    budget: Budget,
) -> Result<(Timing, Timing)> {
    let (mut a, _) = transport_pair(backend, aead, mode)?;
    let ring = (RING_BYTES / (size + OVERHEAD)).clamp(1, 4096);
    let stride = size + OVERHEAD;
    let mut bufs = vec![0x5au8; ring * stride];
    let seal = measure(budget, |n| {
        let t0 = Stopwatch::start();
        for k in 0..n {
            let off = (k as usize % ring) * stride;
            let buf = &mut bufs[off..off + stride];
            black_box(a.sender.seal(buf, size).expect("seal"));
        }
        t0.elapsed()
    });
    // Opening needs fresh messages (a repeat is a replay): seal a ring untimed, open it
    // timed, on a fresh session whose receiver has seen every counter its sender used.
    let (mut a, mut b) = transport_pair(backend, aead, mode)?;
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
            let t0 = Stopwatch::start();
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

/// Complete handshakes (both sides' work, fresh ephemeral keys each time), and the bytes
/// of one handshake's messages.
fn handshakes(suite: Suite, budget: Budget) -> Result<(Timing, usize)> {
    let is = StaticKeypair::generate()?;
    let rs = StaticKeypair::generate()?;
    let ikeys = HandshakeKeys { local_static: Some(&is), remote_static: Some(&rs.public), fixed_ephemeral: None };
    let rkeys = HandshakeKeys { local_static: Some(&rs), ..Default::default() };
    let bytes = {
        let mut i = Handshake::initiator(suite, ikeys, b"sealbench crypto")?;
        let mut r = Handshake::responder(suite, rkeys, b"sealbench crypto")?;
        complete_in_memory(&mut i, &mut r).with_context(|| format!("handshake {suite}"))?
    };
    let t = measure(budget, |n| {
        timed(n, || {
            let mut i = Handshake::initiator(suite, ikeys, b"sealbench crypto").expect("initiator");
            let mut r = Handshake::responder(suite, rkeys, b"sealbench crypto").expect("responder");
            complete_in_memory(&mut i, &mut r).expect("handshake");
            black_box(i.into_transport(TransportMode::Noise { rekey_every: 0 }).expect("transport"));
        })
    });
    Ok((t, bytes))
}

/// Raw X25519 on `backend`: one variable-base scalar multiplication (a DH) per operation,
/// with a key parsed once and used again (as Noise does; for `ring` that is x25519-dalek).
fn x25519_ops(backend: Backend, budget: Budget) -> Timing {
    let key = sealcore::X25519Secret::new(backend, [7u8; 32]);
    let mut u = *key.public();
    measure(budget, |n| {
        timed(n, || {
            // A valid point each time (the result of the previous one).
            u = key.agree(black_box(&u)).unwrap_or(u);
        })
    })
}

/// ML-KEM-768 key generation, encapsulation and decapsulation with `backend`'s KEM.
fn kem_ops(backend: Backend, budget: Budget) -> Result<KemRow> {
    let imp = KemImpl::of(backend);
    let keygen = measure(budget, |n| {
        timed(n, || {
            black_box(kem::generate(imp).expect("ML-KEM key generation"));
        })
    });
    let (dk, ek) = kem::generate(imp)?;
    let encaps = measure(budget, |n| {
        timed(n, || {
            black_box(kem::encapsulate(imp, &ek).expect("ML-KEM encapsulation"));
        })
    });
    let (ct, _) = kem::encapsulate(imp, &ek)?;
    let decaps = measure(budget, |n| {
        timed(n, || {
            black_box(dk.decapsulate(&ct).expect("ML-KEM decapsulation"));
        })
    });
    Ok(KemRow::new(backend, keygen, encaps, decaps))
}

/// One step of the KDF chain (HKDF-SHA256 on the backend's HMAC).
fn kdf_step(backend: Backend, budget: Budget) -> Timing {
    let (mut ck, mut mk) = ([1u8; 32], [0u8; 32]);
    measure(budget, |n| {
        timed(n, || {
            sealcore::kdf::chain_step(backend, black_box(&mut ck), &mut mk);
        })
    })
}

/// Keying `aead` on `backend` (its key schedule), as the KDF chain does once per message:
/// in place, into an instance it keeps ([`AeadKey::rekey`]), so no allocation is timed.
fn key_setup(backend: Backend, aead: AeadKind, budget: Budget) -> Result<Timing> {
    let key = [3u8; 32];
    let mut keyed = AeadKey::with_backend(backend, aead, &key[..aead.key_len()])
        .map_err(|e| anyhow::anyhow!("{aead} on {backend}: {e}"))?;
    Ok(measure(budget, |n| {
        timed(n, || {
            keyed.rekey(black_box(&key[..aead.key_len()])).expect("key");
            black_box(&keyed);
        })
    }))
}
