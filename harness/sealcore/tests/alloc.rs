//! Sealing and opening allocate nothing per message, in every mode, on every backend and
//! AEAD — including the modes that key per message (the KDF chain, Noise `REKEY` every
//! message), whose AEAD instances are re-keyed in place. Counted with `dhat`'s testing
//! mode, the only test in this binary (the count is the process's; AWS-LC's own C
//! allocations are not seen here: its module says what they cost).

use sealcore::transport::{HEADER_LEN, OVERHEAD};
use sealcore::{AeadKind, Backend, SenderKey, TransportMode, TransportReceiver, TransportSender};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations made so far (blocks, ever).
fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Seals `i` as a one-byte message into `buf`, returns its length.
fn seal(tx: &mut TransportSender, buf: &mut [u8; 1 + OVERHEAD], i: u8) -> usize {
    buf[HEADER_LEN] = i;
    tx.seal(buf, 1).expect("seal")
}

/// One round: two messages sealed, opened in reverse order (a late message: the KDF
/// chain's skipped-key table, Noise's previous epoch), then two more of which the first is
/// skipped over (more than one epoch ahead with `REKEY` every message) and opened last.
fn round(tx: &mut TransportSender, rx: &mut TransportReceiver, i: u8) -> Result<(), String> {
    let mut m = [[0u8; 1 + OVERHEAD]; 4];
    let mut lens = [0usize; 4];
    for (k, (m, len)) in m.iter_mut().zip(&mut lens).enumerate() {
        *len = seal(tx, m, i.wrapping_add(k as u8));
    }
    for k in [1usize, 0, 3, 2] {
        let opened = rx.open(&mut m[k][..lens[k]]).map_err(|e| format!("message {k} of round {i}: {e}"))?;
        if opened != [i.wrapping_add(k as u8)] {
            return Err(format!("message {k} of round {i} opened to {opened:?}"));
        }
    }
    Ok(())
}

#[test]
fn sealing_and_opening_allocate_nothing_per_message() -> TestResult {
    let modes = [
        TransportMode::Noise { rekey_every: 0 },
        TransportMode::Noise { rekey_every: 1 },
        TransportMode::Noise { rekey_every: 3 },
        TransportMode::KdfChain,
    ];
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut checked = 0;
    for backend in Backend::compiled() {
        for aead in AeadKind::ALL {
            if backend.check(aead).is_err() {
                continue;
            }
            for mode in modes {
                let key = SenderKey::new(backend, aead, mode, &[7u8; 32]);
                let (mut tx, mut rx) = (key.sender(), key.receiver());
                // Set-up may allocate (an AES key schedule's box, the instances a first
                // rekey brings in); then nothing may.
                for i in 0..4 {
                    round(&mut tx, &mut rx, i).map_err(|e| format!("{backend} {aead} {mode:?}: {e}"))?;
                }
                // dhat counts the whole process: on a loaded machine the test harness's own
                // thread can still be allocating when this one starts. The fewest of two
                // windows is what sealing and opening did: a real per-message allocation
                // shows in both (at least one per message), a stray one in one at most.
                let mut fewest = u64::MAX;
                for window in 0..2u8 {
                    let before = allocations();
                    for i in 4 + 96 * window..100 + 96 * window {
                        round(&mut tx, &mut rx, i).map_err(|e| format!("{backend} {aead} {mode:?}: {e}"))?;
                    }
                    fewest = fewest.min(allocations() - before);
                }
                let n = fewest;
                assert_eq!(n, 0, "{backend} {aead} {mode:?}: {n} allocations in 384 messages");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 5, "only {checked} combinations checked");
    Ok(())
}
