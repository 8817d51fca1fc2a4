//! The implementation half of a cipher choice: which library does the cryptography.
//!
//! Three backends: [`Backend::RustCrypto`] (the default: `chacha20poly1305`, `aes-gcm`,
//! `x25519-dalek`, `sha2`, `blake2`), [`Backend::Ring`] and [`Backend::AwsLcRs`]. The last
//! two are Cargo features of this crate (on by default); a backend that was compiled out
//! still has a name, so choosing it gives an error that says how to build it in.
//!
//! Each backend implements the small [`Primitives`] trait (key an AEAD, X25519, SHA-256);
//! the per-message path dispatches on an enum inside [`crate::AeadKey`], never through a
//! `dyn`. What a backend lacks is said, never hidden:
//!
//! | | AEADs | X25519 | SHA-256 | BLAKE2s | ML-KEM-768 |
//! |---|---|---|---|---|---|
//! | `rustcrypto` | all four | x25519-dalek | sha2 | blake2 | libcrux-ml-kem (fallback) |
//! | `ring` | all but XChaCha20 | x25519-dalek (fallback: ring's keys are ephemeral-only) | ring | blake2 (fallback) | libcrux-ml-kem (fallback) |
//! | `aws-lc-rs` | all but XChaCha20 | aws-lc-rs | aws-lc-rs | blake2 (fallback) | aws-lc-rs |
//!
//! # Layout
//! - [`rustcrypto`], `ring`, `aws_lc` — one module per backend.

use crate::aead::{AeadError, AeadKind, Keyed};
use crate::suite::HashKind;
use core::fmt;
use core::str::FromStr;

/// What `ring` and `aws-lc-rs` share: aws-lc-rs keeps ring's API for AEADs and digests,
/// so keying, sealing and SHA-256 are one definition for both (`$krate` is the crate,
/// `$variant` the [`Keyed`] variant). Opening differs (the tag's type) and stays in each
/// module.
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
macro_rules! ring_api {
    ($krate:ident, $variant:ident) => {
        /// Keys `kind` (no XChaCha20 in this library).
        fn ring_api_key(kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError> {
            use $krate::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, LessSafeKey, UnboundKey};
            let alg = match kind {
                AeadKind::ChaCha20Poly1305 => &CHACHA20_POLY1305,
                AeadKind::Aes128Gcm => &AES_128_GCM,
                AeadKind::Aes256Gcm => &AES_256_GCM,
                AeadKind::None => return Ok(Keyed::None),
                _ => return Err(AeadError::Unsupported),
            };
            let unbound = UnboundKey::new(alg, key).map_err(|_| AeadError::KeyLength)?;
            Ok(Keyed::$variant(LessSafeKey::new(unbound)))
        }

        /// An HKDF output length.
        struct OutLen(usize);

        impl $krate::hkdf::KeyType for OutLen {
            fn len(&self) -> usize {
                self.0
            }
        }

        /// HKDF-Expand-SHA256 into `out`.
        fn ring_api_hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
            let prk = $krate::hkdf::Prk::new_less_safe($krate::hkdf::HKDF_SHA256, prk);
            let info = [info];
            let okm = prk.expand(&info, OutLen(out.len())).expect("HKDF output within 255 blocks");
            okm.fill(out).expect("the length asked for");
        }

        /// SHA-256 in one call.
        fn ring_api_sha256(data: &[u8]) -> [u8; 32] {
            let d = $krate::digest::digest(&$krate::digest::SHA256, data);
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        }

        /// Seals in place (12-byte nonce, or [`AeadError::NonceLength`]).
        #[inline]
        pub(crate) fn seal(
            k: &$krate::aead::LessSafeKey,
            nonce: &[u8],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; 16], AeadError> {
            let nonce = $krate::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::NonceLength)?;
            let tag = k
                .seal_in_place_separate_tag(nonce, $krate::aead::Aad::from(aad), buf)
                .map_err(|_| AeadError::TooLong)?;
            let mut out = [0u8; 16];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }
    };
}

#[cfg(feature = "aws-lc-rs")]
pub(crate) mod aws_lc;
#[cfg(feature = "ring")]
pub(crate) mod ring;
pub(crate) mod rustcrypto;

/// Which library implements the cryptography.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The RustCrypto crates and x25519-dalek (pure Rust). The default.
    #[default]
    RustCrypto,
    /// `ring` (BoringSSL-derived assembly). Cargo feature `ring`.
    Ring,
    /// `aws-lc-rs` (AWS-LC, BoringSSL-derived C and assembly). Cargo feature `aws-lc-rs`.
    AwsLcRs,
}

/// Accepted backend names, for error messages.
pub const BACKEND_NAMES: &str = "rustcrypto, ring, aws-lc-rs";

/// A backend that cannot do what was asked. The message names the backend, what it
/// lacks, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Not one of [`Backend::ALL`].
    #[error("unknown backend `{0}`: expected one of {BACKEND_NAMES}")]
    Unknown(String),
    /// The backend's Cargo feature was turned off in this build.
    #[error(
        "backend `{0}` is not in this build: it was compiled out; rebuild with its Cargo feature (`cargo build --release --features {0}`, on by default unless --no-default-features was given)"
    )]
    NotCompiled(&'static str),
    /// The backend does not implement this AEAD.
    #[error(
        "backend `{backend}` has no {aead}: use the rustcrypto backend for it, or one of {alternatives} with `{backend}`"
    )]
    NoAead {
        /// The backend.
        backend: &'static str,
        /// The AEAD it lacks.
        aead: &'static str,
        /// The AEADs it has.
        alternatives: String,
    },
}

impl Backend {
    /// Every backend, compiled in or not (the default first).
    pub const ALL: [Backend; 3] = [Backend::RustCrypto, Backend::Ring, Backend::AwsLcRs];

    /// The name on the command line, in scenarios and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Backend::RustCrypto => "rustcrypto",
            Backend::Ring => "ring",
            Backend::AwsLcRs => "aws-lc-rs",
        }
    }

    /// Whether this build contains the backend (its Cargo feature was on).
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::RustCrypto => true,
            Backend::Ring => cfg!(feature = "ring"),
            Backend::AwsLcRs => cfg!(feature = "aws-lc-rs"),
        }
    }

    /// The backends in this build.
    pub fn compiled() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_compiled())
    }

    /// Whether the backend implements `aead` (`none` is the same on every backend).
    pub fn has_aead(self, aead: AeadKind) -> bool {
        !(self != Backend::RustCrypto && aead == AeadKind::XChaCha20Poly1305)
    }

    /// Checks that the backend is compiled in and implements `aead`.
    ///
    /// # Errors
    /// [`BackendError::NotCompiled`] or [`BackendError::NoAead`], each saying what to do.
    pub fn check(self, aead: AeadKind) -> Result<(), BackendError> {
        if !self.is_compiled() {
            return Err(BackendError::NotCompiled(self.name()));
        }
        if !self.has_aead(aead) {
            let alternatives: Vec<&str> =
                AeadKind::ALL.into_iter().filter(|a| a.is_encrypted() && self.has_aead(*a)).map(|a| a.name()).collect();
            return Err(BackendError::NoAead {
                backend: self.name(),
                aead: aead.name(),
                alternatives: alternatives.join(", "),
            });
        }
        Ok(())
    }

    /// Which implementation of X25519 this backend's handshakes use.
    pub fn x25519_impl(self) -> &'static str {
        match self {
            Backend::RustCrypto => "x25519-dalek",
            Backend::Ring => "x25519-dalek (FALLBACK: ring's X25519 keys are ephemeral-only, Noise reuses keys)",
            Backend::AwsLcRs => "aws-lc-rs",
        }
    }

    /// Whether this backend's handshakes run X25519 on another library.
    pub fn x25519_is_fallback(self) -> bool {
        self == Backend::Ring
    }

    /// Which implementation of `hash` this backend's handshakes use.
    pub fn hash_impl(self, hash: HashKind) -> &'static str {
        match (self, hash) {
            (Backend::RustCrypto, HashKind::Sha256) => "sha2",
            (Backend::RustCrypto, HashKind::Blake2s) => "blake2",
            (Backend::Ring, HashKind::Sha256) => "ring",
            (Backend::AwsLcRs, HashKind::Sha256) => "aws-lc-rs",
            (_, HashKind::Blake2s) => "blake2 (FALLBACK: this backend has no BLAKE2s)",
        }
    }

    /// Which ML-KEM-768 implementation the hybrid handshake uses with this backend.
    pub fn kem_impl(self) -> &'static str {
        match self {
            Backend::AwsLcRs => "aws-lc-rs",
            Backend::Ring => "libcrux-ml-kem (FALLBACK: ring has no ML-KEM)",
            Backend::RustCrypto => {
                "libcrux-ml-kem (FALLBACK: RustCrypto's ml-kem is pre-1.0, unaudited and about 5x slower)"
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| BackendError::Unknown(s.to_owned()))
    }
}

/// What every backend provides, behind one small trait. Set-up only: keying an AEAD runs
/// its key schedule; the per-message path is the returned [`Keyed`] enum.
pub(crate) trait Primitives {
    /// Keys `kind` (the caller checked the key length).
    fn key(kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError>;
    /// X25519 of our `private` scalar and their `public` u-coordinate; `None` for an
    /// all-zero (low-order) result.
    fn x25519(private: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]>;
    /// The public key of `private`.
    fn x25519_public(private: &[u8; 32]) -> [u8; 32];
    /// SHA-256 of `data`.
    fn sha256(data: &[u8]) -> [u8; 32];
    /// HKDF-Expand-SHA256 (RFC 5869) of the 32-byte `prk` with `info`, filling `out`
    /// (at most 255 × 32 bytes).
    fn hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]);
}

/// Keys `kind` on `backend`.
pub(crate) fn key(backend: Backend, kind: AeadKind, key: &[u8]) -> Result<Keyed, AeadError> {
    if kind == AeadKind::None {
        return Ok(Keyed::None);
    }
    match backend {
        Backend::RustCrypto => rustcrypto::RustCrypto::key(kind, key),
        #[cfg(feature = "ring")]
        Backend::Ring => ring::Ring::key(kind, key),
        #[cfg(feature = "aws-lc-rs")]
        Backend::AwsLcRs => aws_lc::AwsLc::key(kind, key),
        #[allow(unreachable_patterns)]
        _ => Err(AeadError::Unsupported),
    }
}

/// Raw X25519 (RFC 7748 §5) on `backend` (`ring` falls back to x25519-dalek, as in its
/// handshakes): `None` for an all-zero result or a backend compiled out.
pub fn x25519(backend: Backend, private: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
    match backend {
        #[cfg(feature = "aws-lc-rs")]
        Backend::AwsLcRs => aws_lc::AwsLc::x25519(private, public),
        Backend::RustCrypto | Backend::Ring if backend.is_compiled() => rustcrypto::RustCrypto::x25519(private, public),
        _ => None,
    }
}

/// The X25519 public key of `private` on `backend`.
pub fn x25519_public(backend: Backend, private: &[u8; 32]) -> [u8; 32] {
    match backend {
        #[cfg(feature = "aws-lc-rs")]
        Backend::AwsLcRs => aws_lc::AwsLc::x25519_public(private),
        _ => rustcrypto::RustCrypto::x25519_public(private),
    }
}

/// HKDF-Expand-SHA256 of `prk` on `backend` (RustCrypto's for a backend compiled out):
/// the KDF chain's step runs on the backend it measures.
#[inline]
pub(crate) fn hkdf_expand(backend: Backend, prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
    match backend {
        #[cfg(feature = "ring")]
        Backend::Ring => ring::Ring::hkdf_expand(prk, info, out),
        #[cfg(feature = "aws-lc-rs")]
        Backend::AwsLcRs => aws_lc::AwsLc::hkdf_expand(prk, info, out),
        _ => rustcrypto::RustCrypto::hkdf_expand(prk, info, out),
    }
}

/// An X25519 private key held for reuse on one backend (Noise uses a key more than once):
/// with `aws-lc-rs` the parsed key is kept, so each agreement is one scalar multiplication.
pub struct X25519Secret {
    backend: Backend,
    private: [u8; 32],
    public: [u8; 32],
    #[cfg(feature = "aws-lc-rs")]
    aws: Option<::aws_lc_rs::agreement::PrivateKey>,
}

impl fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519Secret")
            .field("backend", &self.backend)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Drop for X25519Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private);
    }
}

impl X25519Secret {
    /// The key of `private` on `backend`.
    pub fn new(backend: Backend, private: [u8; 32]) -> Self {
        #[cfg(feature = "aws-lc-rs")]
        let aws = (backend == Backend::AwsLcRs).then(|| aws_lc::private_key(&private)).flatten();
        let public = match () {
            #[cfg(feature = "aws-lc-rs")]
            () if aws.is_some() => aws.as_ref().map(aws_lc::public_key).unwrap_or_default(),
            () => x25519_public(backend, &private),
        };
        X25519Secret {
            backend,
            private,
            public,
            #[cfg(feature = "aws-lc-rs")]
            aws,
        }
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The private key's bytes.
    pub fn private(&self) -> &[u8; 32] {
        &self.private
    }

    /// X25519 with their `public` key: `None` for an all-zero (low-order) result.
    pub fn agree(&self, public: &[u8; 32]) -> Option<[u8; 32]> {
        #[cfg(feature = "aws-lc-rs")]
        if let Some(k) = &self.aws {
            return aws_lc::agree(k, public);
        }
        x25519(self.backend, &self.private, public)
    }
}

/// SHA-256 of `data` on `backend` (RustCrypto's for a backend compiled out).
pub fn sha256(backend: Backend, data: &[u8]) -> [u8; 32] {
    match backend {
        #[cfg(feature = "ring")]
        Backend::Ring => ring::Ring::sha256(data),
        #[cfg(feature = "aws-lc-rs")]
        Backend::AwsLcRs => aws_lc::AwsLc::sha256(data),
        _ => rustcrypto::RustCrypto::sha256(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let e = "openssl".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("openssl") && e.contains(BACKEND_NAMES), "{e}");
    }

    #[test]
    fn a_backend_without_an_aead_says_so_and_names_the_ones_it_has() {
        for b in [Backend::Ring, Backend::AwsLcRs].into_iter().filter(|b| b.is_compiled()) {
            let e = b.check(AeadKind::XChaCha20Poly1305).unwrap_err().to_string();
            assert!(e.contains("xchacha20-poly1305") && e.contains("aes-256-gcm") && e.contains(b.name()), "{e}");
            assert!(b.check(AeadKind::None).is_ok());
        }
        assert!(Backend::RustCrypto.check(AeadKind::XChaCha20Poly1305).is_ok());
    }
}
