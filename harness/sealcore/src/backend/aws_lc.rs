//! The `aws-lc-rs` backend: its AEADs (ChaCha20-Poly1305, AES-128/256-GCM; no XChaCha20),
//! X25519 with reusable keys, SHA-256 and ML-KEM-768 (see [`crate::kem`]).
//!
//! One cost to know: keying an aws-lc-rs AEAD allocates its context inside AWS-LC
//! (`EVP_AEAD_CTX_new`), so the symmetric KDF chain mode, which keys once per message,
//! allocates once per message on this backend (the other two re-key in place, see
//! [`crate::AeadKey::rekey`]).

use super::Primitives;
use crate::aead::{AeadError, AeadKind, Keyed};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};

/// `aws-lc-rs`.
pub(crate) struct AwsLc;

ring_api!(aws_lc_rs, AwsLc);

impl Primitives for AwsLc {
    fn key(kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError> {
        ring_api_key(kind, key)
    }

    fn x25519(private: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        agree(&private_key(private)?, public)
    }

    fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
        private_key(private).as_ref().map(public_key).unwrap_or_default()
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        ring_api_sha256(data)
    }

    fn hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
        ring_api_hkdf_expand(prk, info, out);
    }
}

/// An X25519 private key parsed once, for reuse.
pub(crate) fn private_key(private: &[u8; 32]) -> Option<PrivateKey> {
    PrivateKey::from_private_key(&X25519, private).ok()
}

/// Its public key.
pub(crate) fn public_key(key: &PrivateKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(p) = key.compute_public_key() {
        out.copy_from_slice(p.as_ref());
    }
    out
}

/// X25519 with a parsed key; `None` for a low-order peer key (AWS-LC refuses it itself,
/// and an all-zero result is checked anyway).
pub(crate) fn agree(key: &PrivateKey, public: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    agreement::agree(key, UnparsedPublicKey::new(&X25519, public), (), |s| {
        out.copy_from_slice(s);
        Ok(())
    })
    .ok()?;
    (!out.iter().all(|&b| b == 0)).then_some(out)
}

/// Verifies and opens in place with an aws-lc-rs key.
#[inline]
pub(crate) fn open(
    k: &aws_lc_rs::aead::LessSafeKey,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<(), AeadError> {
    let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::NonceLength)?;
    k.open_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(aad), tag, buf)
        .map(|_| ())
        .map_err(|_| AeadError::Auth)
}
