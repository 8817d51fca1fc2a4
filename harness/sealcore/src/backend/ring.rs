//! The `ring` backend: its AEADs (ChaCha20-Poly1305, AES-128/256-GCM; no XChaCha20) and
//! SHA-256. ring's X25519 keys are ephemeral-only (a key agrees once and is consumed) while
//! Noise uses each key more than once, so X25519 falls back to x25519-dalek, and says so.

use super::Primitives;
use super::rustcrypto::RustCrypto;
use crate::aead::{AeadError, AeadKind, Keyed};

/// `ring`.
pub(crate) struct Ring;

ring_api!(ring, Ring);

impl Primitives for Ring {
    fn key(kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError> {
        ring_api_key(kind, key)
    }

    fn x25519(private: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        RustCrypto::x25519(private, public)
    }

    fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
        RustCrypto::x25519_public(private)
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        ring_api_sha256(data)
    }

    fn hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
        ring_api_hkdf_expand(prk, info, out);
    }
}

/// Verifies and opens in place with a ring key.
#[inline]
pub(crate) fn open(
    k: &ring::aead::LessSafeKey,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<(), AeadError> {
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::NonceLength)?;
    k.open_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), ring::aead::Tag::from(*tag), buf, 0..)
        .map(|_| ())
        .map_err(|_| AeadError::Auth)
}
