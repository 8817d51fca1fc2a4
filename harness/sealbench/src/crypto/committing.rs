//! The committing-mode section of `sealbench crypto`: what making an AEAD key-committing
//! costs per message (`sealcore::commit`: the key commitment of Albertini et al., USENIX
//! Security 2022), side by side with the same AEAD used as it is — seal and open at each
//! of the sweep's sizes, and the per-key derivation a session pays once.

use super::measure::{Budget, Timing, measure, timed};
use sealcore::commit::{COMMITMENT_LEN, CommittingKey};
use sealcore::{AeadKey, AeadKind};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

/// The committing mode over one AEAD at one size, beside the AEAD alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommittingRow {
    /// The AEAD made committing.
    pub aead: String,
    /// Plaintext bytes per message.
    pub size: usize,
    /// The AEAD alone: seal, then open (median ns per message).
    pub plain_seal: Timing,
    /// …open.
    pub plain_open: Timing,
    /// Committing: seal (the commitment beside it is the key's, made once).
    pub seal: Timing,
    /// Committing: the commitment checked, then open.
    pub open: Timing,
    /// Deriving the encryption key and the commitment from a key (once per key).
    pub key_setup: Timing,
    /// Bytes the commitment adds per message.
    pub bytes_added: usize,
}

/// The AEADs the section makes committing.
pub const AEADS: [AeadKind; 2] = [AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm];

/// Measures the committing mode over [`AEADS`] at each of `sizes`.
///
/// # Errors
/// When an AEAD refuses a key or a message (a defect).
pub fn run(sizes: &[usize], budget: Budget) -> anyhow::Result<Vec<CommittingRow>> {
    let mut rows = Vec::with_capacity(AEADS.len() * sizes.len());
    for kind in AEADS {
        let key = vec![0x5Au8; kind.key_len()];
        let nonce = vec![0x24u8; kind.nonce_len()];
        let plain = AeadKey::new(kind, &key)?;
        let committing = CommittingKey::new(kind, &key)?;
        let key_setup = measure(budget, |n| {
            timed(n, || {
                black_box(CommittingKey::new(kind, black_box(&key)).ok());
            })
        });
        for &size in sizes {
            let mut buf = vec![0xA5u8; size];
            let plain_seal = measure(budget, |n| {
                timed(n, || {
                    black_box(plain.seal(&nonce, &[], black_box(&mut buf)).ok());
                })
            });
            let mut sealed = vec![0xA5u8; size];
            let tag = plain.seal(&nonce, &[], &mut sealed)?;
            // Each open works on a fresh copy of the ciphertext (it opens in place): the
            // copy is in both columns alike.
            let mut b = sealed.clone();
            let plain_open = measure(budget, |n| {
                timed(n, || {
                    b.copy_from_slice(black_box(&sealed));
                    black_box(plain.open(&nonce, &[], &mut b, &tag).ok());
                })
            });
            let seal = measure(budget, |n| {
                timed(n, || {
                    black_box(committing.seal(&nonce, &[], black_box(&mut buf)).ok());
                })
            });
            let mut csealed = vec![0xA5u8; size];
            let (ctag, com) = committing.seal(&nonce, &[], &mut csealed)?;
            let open = measure(budget, |n| {
                timed(n, || {
                    b.copy_from_slice(black_box(&csealed));
                    black_box(committing.open(&nonce, &[], &mut b, &ctag, &com).ok());
                })
            });
            let aead = kind.label().to_owned();
            rows.push(CommittingRow {
                aead,
                size,
                plain_seal,
                plain_open,
                seal,
                open,
                key_setup,
                bytes_added: COMMITMENT_LEN,
            });
        }
    }
    Ok(rows)
}
