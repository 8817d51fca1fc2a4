//! Key derivation beyond the Noise handshake, all HKDF-SHA256 (RFC 5869).
//!
//! * transport keys for AEADs that are not Noise ciphers (and for every kdf-chain):
//!   `HKDF(salt = handshake hash h, IKM = Noise split key k, info)`;
//! * the ratchet step: `CK' ‖ MK = HKDF-Expand(PRK = CK, "sealbench/v1 ratchet step", 64)`.
//!
//! `docs/PROTOCOL.md` gives the exact labels.

use hkdf::Hkdf;
use sha2::Sha256;

/// Info label of the ratchet step.
pub const RATCHET_STEP_INFO: &[u8] = b"sealbench/v1 ratchet step";

/// `HKDF-SHA256(salt, ikm, info)` into `out` (≤ 255 × 32 bytes).
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand(info, out).expect("HKDF output length within 255 blocks");
}

/// `HKDF-Expand(PRK = key, info, 32)` into `out`: a one-step relabel of a uniform key.
pub fn expand_label(key: &[u8; 32], info: &[u8], out: &mut [u8; 32]) {
    let hk = Hkdf::<Sha256>::from_prk(key).expect("32-byte PRK");
    hk.expand(info, out).expect("32 bytes");
}

/// One step of the KDF chain on `backend`'s HKDF (the same function on every backend;
/// see [`ratchet_step`]).
#[inline]
pub fn chain_step(backend: crate::Backend, ck: &mut [u8; 32], mk: &mut [u8; 32]) {
    let mut okm = [0u8; 64];
    crate::backend::hkdf_expand(backend, ck, RATCHET_STEP_INFO, &mut okm);
    ck.copy_from_slice(&okm[..32]);
    mk.copy_from_slice(&okm[32..]);
    zeroize::Zeroize::zeroize(&mut okm);
}

/// One step of the symmetric KDF chain (`kdf-chain` mode; the label keeps its old name): replaces the chain key `ck` with the next one and
/// writes this step's message key to `mk`.
#[inline]
pub fn ratchet_step(ck: &mut [u8; 32], mk: &mut [u8; 32]) {
    let mut okm = [0u8; 64];
    let hk = Hkdf::<Sha256>::from_prk(ck).expect("32-byte PRK");
    hk.expand(RATCHET_STEP_INFO, &mut okm).expect("64 bytes");
    ck.copy_from_slice(&okm[..32]);
    mk.copy_from_slice(&okm[32..]);
    zeroize::Zeroize::zeroize(&mut okm);
}
