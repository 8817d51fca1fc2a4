//! ML-KEM-768 (FIPS 203) for the hybrid handshake, on `aws-lc-rs` (its stable
//! `kem::ML_KEM_768`) or `libcrux-ml-kem` (formally verified, pure Rust with AVX2): the two
//! are byte-compatible, so either end can use either.
//!
//! Which one a backend uses is [`crate::Backend::kem_impl`]: aws-lc-rs's own for
//! `aws-lc-rs`, libcrux for `rustcrypto` and `ring` (labelled fallbacks). Set-up only:
//! these allocate, the per-message path never touches them.

use crate::backend::Backend;
use hmac::{Hmac, KeyInit, Mac};
use libcrux_ml_kem::mlkem768;
use sha2::Sha256;
use zeroize::Zeroize;

/// Bytes of an ML-KEM-768 encapsulation (public) key.
pub const EK_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const CT_LEN: usize = 1088;
/// Bytes of the shared secret.
pub const SS_LEN: usize = 32;
/// Bytes of the key confirmation the responder sends after the ciphertext.
pub const CONFIRM_LEN: usize = 32;
/// The label of the key confirmation (`docs/PROTOCOL.md`).
pub const CONFIRM_LABEL: &[u8] = b"sealbench/v1 hybrid confirm";

/// Errors of the KEM step. Cheap and distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KemError {
    /// An encapsulation key or ciphertext of the wrong length, or an encapsulation key
    /// that fails the FIPS 203 modulus check.
    #[error("malformed ML-KEM-768 key or ciphertext")]
    Malformed,
    /// The library failed (no randomness).
    #[error("ML-KEM-768 failure")]
    Failed,
}

/// Which ML-KEM implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KemImpl {
    /// `libcrux-ml-kem`.
    Libcrux,
    /// `aws-lc-rs`.
    AwsLc,
}

impl KemImpl {
    /// The implementation `backend` uses.
    pub fn of(backend: Backend) -> KemImpl {
        match backend {
            Backend::AwsLcRs if cfg!(feature = "aws-lc-rs") => KemImpl::AwsLc,
            _ => KemImpl::Libcrux,
        }
    }
}

/// A decapsulation key, held by the initiator until the responder's ciphertext arrives.
pub struct DecapsulationKey(Dk);

enum Dk {
    Libcrux(Box<mlkem768::MlKem768KeyPair>),
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(aws_lc_rs::kem::DecapsulationKey),
}

impl core::fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DecapsulationKey").finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N], KemError> {
    let mut r = [0u8; N];
    getrandom::fill(&mut r).map_err(|_| KemError::Failed)?;
    Ok(r)
}

/// A fresh key pair: the decapsulation key and the encapsulation key's bytes.
///
/// # Errors
/// [`KemError::Failed`] without OS randomness.
pub fn generate(imp: KemImpl) -> Result<(DecapsulationKey, Vec<u8>), KemError> {
    match imp {
        #[cfg(feature = "aws-lc-rs")]
        KemImpl::AwsLc => {
            use aws_lc_rs::kem::{DecapsulationKey as AwsDk, ML_KEM_768};
            let dk = AwsDk::generate(&ML_KEM_768).map_err(|_| KemError::Failed)?;
            let ek = dk.encapsulation_key().and_then(|e| e.key_bytes()).map_err(|_| KemError::Failed)?;
            let ek = ek.as_ref().to_vec();
            Ok((DecapsulationKey(Dk::AwsLc(dk)), ek))
        }
        _ => {
            let mut seed = random::<{ libcrux_ml_kem::KEY_GENERATION_SEED_SIZE }>()?;
            let kp = mlkem768::generate_key_pair(seed);
            seed.zeroize();
            let ek = kp.pk().to_vec();
            Ok((DecapsulationKey(Dk::Libcrux(Box::new(kp))), ek))
        }
    }
}

/// Encapsulates to `ek`: the ciphertext and the shared secret.
///
/// # Errors
/// [`KemError::Malformed`] for a key of the wrong length or one that fails the FIPS 203
/// encapsulation-key check; [`KemError::Failed`] without randomness.
pub fn encapsulate(imp: KemImpl, ek: &[u8]) -> Result<(Vec<u8>, [u8; SS_LEN]), KemError> {
    if ek.len() != EK_LEN {
        return Err(KemError::Malformed);
    }
    match imp {
        #[cfg(feature = "aws-lc-rs")]
        KemImpl::AwsLc => {
            use aws_lc_rs::kem::{EncapsulationKey, ML_KEM_768};
            let key = EncapsulationKey::new(&ML_KEM_768, ek).map_err(|_| KemError::Malformed)?;
            let (ct, ss) = key.encapsulate().map_err(|_| KemError::Failed)?;
            let mut out = [0u8; SS_LEN];
            out.copy_from_slice(ss.as_ref());
            Ok((ct.as_ref().to_vec(), out))
        }
        _ => {
            let pk = mlkem768::MlKem768PublicKey::try_from(ek).map_err(|_| KemError::Malformed)?;
            if !mlkem768::validate_public_key(&pk) {
                return Err(KemError::Malformed);
            }
            let mut r = random::<{ libcrux_ml_kem::ENCAPS_SEED_SIZE }>()?;
            let (ct, ss) = mlkem768::encapsulate(&pk, r);
            r.zeroize();
            Ok((ct.as_slice().to_vec(), ss))
        }
    }
}

impl DecapsulationKey {
    /// The shared secret of `ct`. ML-KEM rejects implicitly: a ciphertext that was
    /// altered gives a different (pseudo-random) secret, not an error; the key
    /// confirmation ([`confirm`]) is what turns that into a failed handshake.
    ///
    /// # Errors
    /// [`KemError::Malformed`] for a ciphertext of the wrong length.
    pub fn decapsulate(&self, ct: &[u8]) -> Result<[u8; SS_LEN], KemError> {
        if ct.len() != CT_LEN {
            return Err(KemError::Malformed);
        }
        match &self.0 {
            Dk::Libcrux(kp) => {
                let ct = mlkem768::MlKem768Ciphertext::try_from(ct).map_err(|_| KemError::Malformed)?;
                Ok(mlkem768::decapsulate(kp.private_key(), &ct))
            }
            #[cfg(feature = "aws-lc-rs")]
            Dk::AwsLc(dk) => {
                let ss = dk.decapsulate(aws_lc_rs::kem::Ciphertext::from(ct)).map_err(|_| KemError::Malformed)?;
                let mut out = [0u8; SS_LEN];
                out.copy_from_slice(ss.as_ref());
                Ok(out)
            }
        }
    }
}

fn confirm_mac(ss: &[u8; SS_LEN], ek: &[u8], ct: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(ss).expect("HMAC takes any key length");
    mac.update(CONFIRM_LABEL);
    mac.update(ek);
    mac.update(ct);
    mac
}

/// The responder's key confirmation: `HMAC-SHA256(key = ss, CONFIRM_LABEL ‖ ek ‖ ct)`.
pub fn confirm(ss: &[u8; SS_LEN], ek: &[u8], ct: &[u8]) -> [u8; CONFIRM_LEN] {
    confirm_mac(ss, ek, ct).finalize().into_bytes().into()
}

/// Checks a key confirmation in constant time.
pub fn verify_confirm(ss: &[u8; SS_LEN], ek: &[u8], ct: &[u8], tag: &[u8]) -> bool {
    confirm_mac(ss, ek, ct).verify_slice(tag).is_ok()
}
