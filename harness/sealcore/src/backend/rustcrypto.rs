//! The RustCrypto backend: `chacha20poly1305`, `aes-gcm` (on `aes` ≥ 0.9.4, which uses
//! VAES where the CPU has it), `x25519-dalek`, `sha2`.

use super::Primitives;
use crate::aead::{AeadError, AeadKind, Keyed};
use aes_gcm::aead::KeyInit;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use sha2::{Digest, Sha256};

/// The RustCrypto crates.
pub(crate) struct RustCrypto;

impl Primitives for RustCrypto {
    fn key(kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError> {
        let e = |_| AeadError::KeyLength;
        Ok(match kind {
            AeadKind::ChaCha20Poly1305 => Keyed::ChaCha(ChaCha20Poly1305::new_from_slice(key).map_err(e)?),
            AeadKind::XChaCha20Poly1305 => Keyed::XChaCha(XChaCha20Poly1305::new_from_slice(key).map_err(e)?),
            AeadKind::Aes128Gcm => Keyed::Aes128(Aes128Gcm::new_from_slice(key).map_err(e)?),
            AeadKind::Aes256Gcm => Keyed::Aes256(Aes256Gcm::new_from_slice(key).map_err(e)?),
            AeadKind::None => Keyed::None,
        })
    }

    fn x25519(private: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        let shared = x25519_dalek::x25519(*private, *public);
        // A low-order public key gives an all-zero shared secret: refuse it (RFC 7748 §6.1).
        (!shared.iter().all(|&b| b == 0)).then_some(shared)
    }

    fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes()
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
        let hk = hkdf::Hkdf::<Sha256>::from_prk(prk).expect("32-byte PRK");
        hk.expand(info, out).expect("HKDF output within 255 blocks");
    }
}
