//! A key-committing AEAD mode: the AEADs compared, made key-committing by the generic fix
//! of Albertini, Duong, Gueron, Kölbl, Luykx and Schmieg, "How to Abuse and Fix
//! Authenticated Encryption Without Key Commitment" (USENIX Security 2022): derive, from
//! the key `K`, an encryption key and a commitment to the key with a collision-resistant
//! PRF, send the commitment beside the ciphertext, and check it before decrypting.
//!
//! ```text
//! K_enc = HMAC-SHA256(K, "sealbench/key-commit/enc")   (its first key_len bytes)
//! C     = HMAC-SHA256(K, "sealbench/key-commit/com")   32 bytes, beside ciphertext and tag
//! ```
//!
//! Why: AES-GCM and ChaCha20-Poly1305 are not key-committing — one ciphertext can open
//! validly under two keys ("invisible salamanders"; `tests/franking.rs` builds one for
//! AES-256-GCM). Under this mode the second key's commitment differs, so that opening is
//! refused before any decryption ([`CommitRefusal::Key`]). HMAC-SHA256 is collision
//! resistant, which is what binds the ciphertext to one key.
//!
//! Both derivations depend on the key only: they are made once per key (what a session
//! pays at set-up), and a message pays 32 bytes on the wire and a constant-time 32-byte
//! comparison. No allocation.

use crate::aead::{AeadError, AeadKey, AeadKind, TAG_LEN};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the key commitment beside the ciphertext.
pub const COMMITMENT_LEN: usize = 32;

const ENC_LABEL: &[u8] = b"sealbench/key-commit/enc";
const COM_LABEL: &[u8] = b"sealbench/key-commit/com";

/// Why a committed ciphertext was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitRefusal {
    /// The commitment is not the one of this key: the ciphertext was made for another key
    /// (not decrypted).
    #[error("the key commitment does not match this key")]
    Key,
    /// The AEAD refused it.
    #[error("the AEAD refused the ciphertext: {0}")]
    Aead(AeadError),
}

/// A key-committing AEAD key: the AEAD under the derived encryption key, and the
/// commitment to the key.
pub struct CommittingKey {
    aead: AeadKey,
    commitment: [u8; COMMITMENT_LEN],
}

impl std::fmt::Debug for CommittingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittingKey").field("aead", &self.aead.kind()).finish_non_exhaustive()
    }
}

fn prf(key: &[u8], label: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(label);
    m.finalize().into_bytes().into()
}

impl CommittingKey {
    /// The committing key of `kind` for `key` (its length is the AEAD's key length).
    ///
    /// # Errors
    /// As [`AeadKey::new`] (a key of the wrong length).
    pub fn new(kind: AeadKind, key: &[u8]) -> Result<Self, AeadError> {
        if key.len() != kind.key_len() {
            return Err(AeadError::KeyLength);
        }
        let enc = prf(key, ENC_LABEL);
        let aead = AeadKey::new(kind, &enc[..kind.key_len()])?;
        Ok(CommittingKey { aead, commitment: prf(key, COM_LABEL) })
    }

    /// The commitment every ciphertext of this key carries.
    pub fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Seals `buf` in place; returns the tag and the commitment to send beside it.
    ///
    /// # Errors
    /// As [`AeadKey::seal`].
    #[inline]
    pub fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<([u8; TAG_LEN], [u8; COMMITMENT_LEN]), AeadError> {
        Ok((self.aead.seal(nonce, aad, buf)?, self.commitment))
    }

    /// Checks `commitment` against this key (constant time), then opens `buf` in place.
    ///
    /// # Errors
    /// [`CommitRefusal::Key`] for another key's commitment (nothing decrypted), else the
    /// AEAD's refusal.
    #[inline]
    pub fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
        commitment: &[u8; COMMITMENT_LEN],
    ) -> Result<(), CommitRefusal> {
        // Constant time: the OR of every byte's difference.
        let diff = self.commitment.iter().zip(commitment).fold(0u8, |d, (a, b)| d | (a ^ b));
        if std::hint::black_box(diff) != 0 {
            return Err(CommitRefusal::Key);
        }
        self.aead.open(nonce, aad, buf, tag).map_err(CommitRefusal::Aead)
    }

    /// The encryption key derived for `key` (what a ciphertext's AEAD layer uses; public so
    /// that a test can build a two-key ciphertext at the AEAD layer).
    pub fn encryption_key(kind: AeadKind, key: &[u8]) -> Vec<u8> {
        prf(key, ENC_LABEL)[..kind.key_len()].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_ciphertext_opens_under_its_key_only() {
        for kind in [AeadKind::Aes256Gcm, AeadKind::ChaCha20Poly1305, AeadKind::Aes128Gcm] {
            let key = vec![7u8; kind.key_len()];
            let k = CommittingKey::new(kind, &key).unwrap();
            let nonce = vec![1u8; kind.nonce_len()];
            let mut buf = *b"attack at dawn";
            let (tag, com) = k.seal(&nonce, b"ad", &mut buf).unwrap();
            assert_ne!(&buf, b"attack at dawn");
            let mut other = buf;
            let k2 = CommittingKey::new(kind, &vec![8u8; kind.key_len()]).unwrap();
            assert_eq!(k2.open(&nonce, b"ad", &mut other, &tag, &com), Err(CommitRefusal::Key));
            let mut bad = com;
            bad[31] ^= 1;
            assert_eq!(k.open(&nonce, b"ad", &mut buf.clone(), &tag, &bad), Err(CommitRefusal::Key));
            k.open(&nonce, b"ad", &mut buf, &tag, &com).unwrap();
            assert_eq!(&buf, b"attack at dawn");
        }
        assert!(CommittingKey::new(AeadKind::Aes256Gcm, &[0u8; 16]).is_err(), "a key of the wrong length");
    }
}
