//! The protocol section of `sealbench crypto`: what each messaging protocol costs per
//! operation, on one core, against group size — Noise as the reference, Olm (session
//! set-up, DH-ratchet turns and chain steps), Megolm (per-message, and sharing a session
//! key over Olm with a group), MLS (group creation, commits, Welcome, application
//! messages, and the bytes of each).
//!
//! Each figure is the median of [`ProtocolPlan::samples`] timed operations (or of timed
//! batches for the cheap per-message ones), on fresh state where an operation consumes it.
//! The libraries allocate inside each operation; that is part of the figure.

// Without any protocol feature only the Noise reference is measured: the timing helpers
// of the protocol modules are then unused.
#![cfg_attr(not(any(feature = "olm", feature = "megolm", feature = "mls")), allow(dead_code))]

use super::measure::{Budget, Timing, measure, summarize, timed};
use anyhow::{Context, Result, anyhow};
use sealproto::Protocol;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Plaintext size of every per-message figure (bytes).
pub const MESSAGE_SIZE: usize = 256;

/// What the protocol section measures.
#[derive(Debug, Clone)]
pub struct ProtocolPlan {
    /// Protocols to measure (`noise` is the reference row).
    pub protocols: Vec<Protocol>,
    /// Group sizes (devices, the sender included) for the size-dependent operations.
    pub group_sizes: Vec<usize>,
    /// Timed repetitions of each expensive operation.
    pub samples: usize,
    /// Time per figure of the cheap per-message operations.
    pub budget: Budget,
}

impl ProtocolPlan {
    /// Every protocol this build has, at groups of 5, 50 and 500.
    pub fn full() -> Self {
        ProtocolPlan {
            protocols: Protocol::ALL.into_iter().filter(|p| p.available() && p.encrypts()).collect(),
            group_sizes: vec![5, 50, 500],
            samples: 5,
            budget: Budget { sample: Duration::from_millis(60), samples: 5 },
        }
    }

    /// Groups of 5 and 50, three repetitions.
    pub fn quick() -> Self {
        ProtocolPlan {
            group_sizes: vec![5, 50],
            samples: 3,
            budget: Budget { sample: Duration::from_millis(25), samples: 3 },
            ..Self::full()
        }
    }

    /// Figures it measures (for the progress bar): one step per protocol and group size.
    pub fn steps(&self) -> u64 {
        self.protocols.iter().map(|p| if *p == Protocol::Noise { 1 } else { self.group_sizes.len() + 1 }).sum::<usize>()
            as u64
    }
}

/// One protocol figure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProtocolRow {
    /// `noise`, `olm`, `megolm` or `mls`.
    pub protocol: String,
    /// What was timed (`session_setup_outbound`, `encrypt_ratchet_turn`, `commit_create`, …).
    pub operation: String,
    /// Devices in the group (the sender included) for size-dependent operations; None for
    /// per-message and 1:1 operations.
    pub group_size: Option<usize>,
    /// Microseconds per operation: median, min, max of the samples.
    pub us_median: f64,
    /// Fastest sample, µs.
    pub us_min: f64,
    /// Slowest sample, µs.
    pub us_max: f64,
    /// Operations timed.
    pub iterations: u64,
    /// Bytes on the wire of what the operation produced (message, commit, Welcome, key
    /// share), when it produces one.
    pub bytes: Option<usize>,
}

impl ProtocolRow {
    fn new(protocol: Protocol, operation: &str, group_size: Option<usize>, t: Timing, bytes: Option<usize>) -> Self {
        ProtocolRow {
            protocol: protocol.name().to_owned(),
            operation: operation.to_owned(),
            group_size,
            us_median: t.ns_median / 1e3,
            us_min: t.ns_min / 1e3,
            us_max: t.ns_max / 1e3,
            iterations: t.iterations,
            bytes,
        }
    }
}

/// Samples of one operation each.
fn of_each(v: &[Duration]) -> Timing {
    summarize(v.iter().map(|d| d.as_nanos() as f64).collect(), v.len() as u64)
}

/// A sample of several operations: (time spent, operations done).
type Batch = (Duration, u64);

/// Samples of (time spent, operations done).
fn of_batches(v: &[Batch]) -> Timing {
    let per = v.iter().map(|(d, n)| d.as_nanos() as f64 / (*n).max(1) as f64).collect();
    summarize(per, v.iter().map(|(_, n)| n).sum())
}

/// Times `n` repetitions of `op` one at a time (each may do untimed set-up and returns
/// the time of its timed part).
fn each(n: usize, mut op: impl FnMut() -> Result<Duration>) -> Result<Timing> {
    let v = (0..n.max(1)).map(|_| op()).collect::<Result<Vec<_>>>()?;
    Ok(of_each(&v))
}

/// Runs `sample` `samples` times; each returns (time spent, operations done).
fn per_op(samples: usize, mut sample: impl FnMut() -> Result<(Duration, u64)>) -> Result<Timing> {
    let v = (0..samples.max(1)).map(|_| sample()).collect::<Result<Vec<_>>>()?;
    Ok(of_batches(&v))
}

/// Pushes the rows of an encrypt / decrypt pair measured in batches.
fn push_pair(
    rows: &mut Vec<ProtocolRow>,
    protocol: Protocol,
    names: (&str, &str),
    group_size: Option<usize>,
    [enc, dec]: [&[Batch]; 2],
    bytes: usize,
) {
    rows.push(ProtocolRow::new(protocol, names.0, group_size, of_batches(enc), Some(bytes)));
    rows.push(ProtocolRow::new(protocol, names.1, group_size, of_batches(dec), None));
}

fn clock<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed())
}

/// Receives progress (as the AEAD sweep's).
pub use super::sweep::Progress;

/// Measures every protocol of `plan`.
///
/// # Errors
/// When a library refuses an operation the sweep relies on (a defect, named).
pub fn run(plan: &ProtocolPlan, progress: &mut dyn Progress) -> Result<Vec<ProtocolRow>> {
    let mut rows = Vec::new();
    for &p in &plan.protocols {
        match p {
            Protocol::Noise => {
                progress.step("protocol noise: XX handshake, 256 B seal/open");
                noise(plan, &mut rows)?;
            }
            #[cfg(feature = "olm")]
            Protocol::Olm => olm::run(plan, progress, &mut rows)?,
            #[cfg(feature = "megolm")]
            Protocol::Megolm => megolm::run(plan, progress, &mut rows)?,
            #[cfg(feature = "mls")]
            Protocol::Mls => mls::run(plan, progress, &mut rows)?,
            other => return Err(anyhow!("protocol {other} is not built into this binary (Cargo feature '{other}')")),
        }
    }
    Ok(rows)
}

/// The reference: a complete XX handshake (both sides) and Noise transport at 256 B.
fn noise(plan: &ProtocolPlan, rows: &mut Vec<ProtocolRow>) -> Result<()> {
    use sealcore::handshake::complete_in_memory;
    use sealcore::transport::OVERHEAD;
    use sealcore::{AeadKind, Handshake, HandshakeKeys, HashKind, Pattern, StaticKeypair, Suite, TransportMode};
    let suite = Suite::new(Pattern::XX, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let (is, rs) = (StaticKeypair::generate()?, StaticKeypair::generate()?);
    let pair = || -> Result<_> {
        let mut i = Handshake::initiator(suite, HandshakeKeys { local_static: Some(&is), ..Default::default() }, b"p")?;
        let mut r = Handshake::responder(suite, HandshakeKeys { local_static: Some(&rs), ..Default::default() }, b"p")?;
        complete_in_memory(&mut i, &mut r).context("in-memory handshake")?;
        let mode = TransportMode::Noise { rekey_every: 0 };
        Ok((i.into_transport(mode)?, r.into_transport(mode)?))
    };
    let setup = measure(plan.budget, |n| timed(n, || drop(black_box(pair().expect("handshake")))));
    rows.push(ProtocolRow::new(Protocol::Noise, "session_setup", None, setup, None));
    let (mut a, _) = pair()?;
    let mut buf = vec![0u8; MESSAGE_SIZE + OVERHEAD];
    let seal = measure(plan.budget, |n| {
        timed(n, || {
            black_box(a.sender.seal(&mut buf, MESSAGE_SIZE).ok());
        })
    });
    rows.push(ProtocolRow::new(Protocol::Noise, "encrypt", None, seal, Some(MESSAGE_SIZE + OVERHEAD)));
    let (mut a, mut b) = pair()?;
    let mut msgs = vec![vec![0u8; MESSAGE_SIZE + OVERHEAD]; 4096];
    let open = measure(plan.budget, |n| {
        let mut spent = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let k = left.min(msgs.len() as u64) as usize;
            for m in msgs.iter_mut().take(k) {
                a.sender.seal(m, MESSAGE_SIZE).expect("seal");
            }
            let t0 = Instant::now();
            for m in msgs.iter_mut().take(k) {
                black_box(b.receiver.open(m).expect("open"));
            }
            spent += t0.elapsed();
            left -= k as u64;
        }
        spent
    });
    rows.push(ProtocolRow::new(Protocol::Noise, "decrypt", None, open, None));
    Ok(())
}

#[cfg(feature = "megolm")]
mod megolm;
#[cfg(feature = "mls")]
mod mls;
#[cfg(feature = "olm")]
mod olm;

/// The console table of the protocol section.
pub fn table(rows: &[ProtocolRow]) -> String {
    use std::fmt::Write;
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nProtocols (one core, 256 B messages; µs per operation, median [min–max]):\n");
    let _ = writeln!(
        s,
        "  {:<8} {:<28} {:>6} {:>12} {:>22} {:>9}",
        "protocol", "operation", "group", "µs", "range", "bytes"
    );
    for r in rows {
        let group = r.group_size.map_or_else(|| "-".to_owned(), |g| g.to_string());
        let bytes = r.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        let range = format!("{:.1}–{:.1}", r.us_min, r.us_max);
        let _ = writeln!(
            s,
            "  {:<8} {:<28} {:>6} {:>12.1} {:>22} {:>9}",
            r.protocol, r.operation, group, r.us_median, range, bytes
        );
    }
    s
}
