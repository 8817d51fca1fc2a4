//! The AEADs sealbench compares, behind one keyed type that seals and opens in place.
//!
//! Every AEAD here has a 16-byte tag. `none` is the identity "cipher": it copies nothing,
//! writes a zero tag and checks that the tag is zero, so a run with it has exactly the same
//! framing and buffer traffic as an encrypted run and isolates what the cryptography costs.
//! It is never a default and is printed as UNENCRYPTED wherever it appears.

use crate::backend::{self, Backend};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use core::fmt;
use core::str::FromStr;

/// Length of every AEAD tag (the `none` baseline writes 16 zero bytes).
pub const TAG_LEN: usize = 16;

/// Largest nonce any supported AEAD takes (XChaCha20-Poly1305).
pub const MAX_NONCE_LEN: usize = 24;

/// Which AEAD protects transport messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AeadKind {
    /// ChaCha20-Poly1305 (RFC 8439); Noise's `ChaChaPoly`.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), 24-byte nonce; not a Noise cipher.
    XChaCha20Poly1305,
    /// AES-128-GCM; not a Noise cipher (Noise's `AESGCM` is AES-256).
    Aes128Gcm,
    /// AES-256-GCM; Noise's `AESGCM`.
    Aes256Gcm,
    /// No encryption at all: the baseline that isolates crypto cost. UNENCRYPTED.
    None,
}

/// The Noise cipher a handshake runs with (the family of the transport AEAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoiseCipher {
    /// `ChaChaPoly`: nonce = 4 zero bytes ‖ 64-bit little-endian counter.
    ChaChaPoly,
    /// `AESGCM` (AES-256-GCM): nonce = 4 zero bytes ‖ 64-bit big-endian counter.
    AesGcm,
}

impl NoiseCipher {
    /// The name used in Noise protocol names.
    pub fn noise_name(self) -> &'static str {
        match self {
            NoiseCipher::ChaChaPoly => "ChaChaPoly",
            NoiseCipher::AesGcm => "AESGCM",
        }
    }
}

impl AeadKind {
    /// Every supported AEAD, encrypted ones first, the `none` baseline last.
    pub const ALL: [AeadKind; 5] = [
        AeadKind::ChaCha20Poly1305,
        AeadKind::XChaCha20Poly1305,
        AeadKind::Aes128Gcm,
        AeadKind::Aes256Gcm,
        AeadKind::None,
    ];

    /// The short name used on the command line, in scenarios and in result files.
    pub fn name(self) -> &'static str {
        match self {
            AeadKind::ChaCha20Poly1305 => "chacha20-poly1305",
            AeadKind::XChaCha20Poly1305 => "xchacha20-poly1305",
            AeadKind::Aes128Gcm => "aes-128-gcm",
            AeadKind::Aes256Gcm => "aes-256-gcm",
            AeadKind::None => "none",
        }
    }

    /// The name for people: identical to [`name`](Self::name) except that `none` is
    /// labelled UNENCRYPTED so that nobody mistakes a baseline run for a real one.
    pub fn label(self) -> &'static str {
        match self {
            AeadKind::None => "none (UNENCRYPTED)",
            other => other.name(),
        }
    }

    /// False only for the `none` baseline.
    pub fn is_encrypted(self) -> bool {
        self != AeadKind::None
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadKind::Aes128Gcm => 16,
            _ => 32,
        }
    }

    /// Nonce length in bytes.
    pub fn nonce_len(self) -> usize {
        match self {
            AeadKind::XChaCha20Poly1305 => 24,
            _ => 12,
        }
    }

    /// The Noise cipher the handshake runs with for this transport AEAD.
    ///
    /// XChaCha20-Poly1305 and `none` handshake with ChaChaPoly, AES-128-GCM with AESGCM
    /// (AES-256); their transport keys are then derived from the handshake with HKDF
    /// (see `docs/PROTOCOL.md`).
    pub fn noise_cipher(self) -> NoiseCipher {
        match self {
            AeadKind::Aes128Gcm | AeadKind::Aes256Gcm => NoiseCipher::AesGcm,
            _ => NoiseCipher::ChaChaPoly,
        }
    }

    /// True when the transport uses the Noise split keys unchanged (a standard Noise
    /// cipher), false when keys are derived with HKDF.
    pub fn is_noise_native(self) -> bool {
        matches!(self, AeadKind::ChaCha20Poly1305 | AeadKind::Aes256Gcm)
    }
}

impl fmt::Display for AeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An AEAD name that is not one of [`AeadKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AEAD `{0}`: expected one of chacha20-poly1305, xchacha20-poly1305, aes-128-gcm, aes-256-gcm, none")]
pub struct UnknownAead(pub String);

impl FromStr for AeadKind {
    type Err = UnknownAead;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Exact names only: `none` must never be reached through a typo or an alias.
        AeadKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| UnknownAead(s.to_owned()))
    }
}

/// Errors of [`AeadKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// The key has the wrong length for the AEAD.
    #[error("wrong key length")]
    KeyLength,
    /// The nonce has the wrong length for the AEAD.
    #[error("wrong nonce length")]
    NonceLength,
    /// The tag did not verify: the ciphertext, its associated data or the tag was altered.
    #[error("authentication failed")]
    Auth,
    /// The message is longer than the AEAD allows.
    #[error("message too long for the AEAD")]
    TooLong,
    /// The backend does not implement this AEAD, or was compiled out
    /// ([`Backend::check`] says which, and what to do).
    #[error("the backend does not implement this AEAD")]
    Unsupported,
}

/// A freshly keyed AEAD of one backend, as a backend's key schedule returns it: inline, on
/// the stack, so that keying never allocates (what [`AeadKey`] holds is [`Held`]).
#[allow(clippy::large_enum_variant)] // on the stack only, moved once into a `Held`
pub(crate) enum Keyed {
    ChaCha(ChaCha20Poly1305),
    XChaCha(XChaCha20Poly1305),
    Aes128(Aes128Gcm),
    Aes256(Aes256Gcm),
    #[cfg(feature = "ring")]
    Ring(ring::aead::LessSafeKey),
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    None,
}

/// What an [`AeadKey`] holds: the per-message dispatch is this enum, never a `dyn`. The
/// ChaCha20 ciphers are their 32-byte key and stay inline; the AES key schedules (with
/// their GHASH tables, several hundred bytes to over 1 KiB) are boxed at their own size,
/// so that a ChaCha20 key does not carry the largest backend's schedule (a session holds
/// one per direction; thousands of idle clients each hold a session). Re-keying
/// ([`AeadKey::rekey`]) writes the new schedule into the existing box: keying per
/// message (the KDF chain, Noise `REKEY`) allocates nothing.
enum Held {
    ChaCha(ChaCha20Poly1305),
    XChaCha(XChaCha20Poly1305),
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    #[cfg(feature = "ring")]
    Ring(Box<ring::aead::LessSafeKey>),
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(Box<aws_lc_rs::aead::LessSafeKey>),
    None,
}

impl Held {
    /// Holds a fresh key: allocates for the boxed variants (once per [`AeadKey`]).
    fn new(keyed: Keyed) -> Held {
        match keyed {
            Keyed::ChaCha(c) => Held::ChaCha(c),
            Keyed::XChaCha(c) => Held::XChaCha(c),
            Keyed::Aes128(c) => Held::Aes128(Box::new(c)),
            Keyed::Aes256(c) => Held::Aes256(Box::new(c)),
            #[cfg(feature = "ring")]
            Keyed::Ring(k) => Held::Ring(Box::new(k)),
            #[cfg(feature = "aws-lc-rs")]
            Keyed::AwsLc(k) => Held::AwsLc(Box::new(k)),
            Keyed::None => Held::None,
        }
    }

    /// Replaces the key, in the existing box when the variant matches (it always does for
    /// one [`AeadKey`]: its kind and backend never change).
    fn replace(&mut self, keyed: Keyed) {
        match (self, keyed) {
            (Held::ChaCha(c), Keyed::ChaCha(k)) => *c = k,
            (Held::XChaCha(c), Keyed::XChaCha(k)) => *c = k,
            (Held::Aes128(c), Keyed::Aes128(k)) => **c = k,
            (Held::Aes256(c), Keyed::Aes256(k)) => **c = k,
            #[cfg(feature = "ring")]
            (Held::Ring(c), Keyed::Ring(k)) => **c = k,
            #[cfg(feature = "aws-lc-rs")]
            (Held::AwsLc(c), Keyed::AwsLc(k)) => **c = k,
            (held, keyed) => *held = Held::new(keyed),
        }
    }
}

/// A keyed AEAD instance: a ChaCha20 key inline, an AES key schedule in a box of its own
/// size (see [`Held`]; AWS-LC also allocates its context inside the C library). Creating
/// one runs the key schedule; sealing, opening and [`rekey`](Self::rekey) never allocate.
pub struct AeadKey {
    kind: AeadKind,
    backend: Backend,
    held: Held,
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadKey").field("kind", &self.kind).field("backend", &self.backend).finish_non_exhaustive()
    }
}

macro_rules! seal_with {
    ($cipher:expr, $nonce:expr, $aad:expr, $buf:expr) => {{
        let nonce = ($nonce).try_into().map_err(|_| AeadError::NonceLength)?;
        let tag = $cipher.encrypt_inout_detached(nonce, $aad, $buf.into()).map_err(|_| AeadError::TooLong)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }};
}

macro_rules! open_with {
    ($cipher:expr, $nonce:expr, $aad:expr, $buf:expr, $tag:expr) => {{
        let nonce = ($nonce).try_into().map_err(|_| AeadError::NonceLength)?;
        let tag = (&$tag[..]).try_into().map_err(|_| AeadError::Auth)?;
        $cipher.decrypt_inout_detached(nonce, $aad, $buf.into(), tag).map_err(|_| AeadError::Auth)
    }};
}

impl AeadKey {
    /// Keys `kind` with `key` (`kind.key_len()` bytes) on the default backend (RustCrypto).
    ///
    /// # Errors
    /// [`AeadError::KeyLength`] when `key` has the wrong length.
    pub fn new(kind: AeadKind, key: &[u8]) -> Result<Self, AeadError> {
        Self::with_backend(Backend::RustCrypto, kind, key)
    }

    /// Keys `kind` with `key` on `backend`.
    ///
    /// # Errors
    /// [`AeadError::KeyLength`] when `key` has the wrong length; [`AeadError::Unsupported`]
    /// when the backend lacks the AEAD or was compiled out ([`Backend::check`] explains).
    pub fn with_backend(backend: Backend, kind: AeadKind, key: &[u8]) -> Result<Self, AeadError> {
        if key.len() != kind.key_len() {
            return Err(AeadError::KeyLength);
        }
        let keyed = backend::key(backend, kind, key)?;
        Ok(AeadKey { kind, backend, held: Held::new(keyed) })
    }

    /// Keys this instance again with `key` (same AEAD, same backend), in place: the key
    /// schedule runs as in [`with_backend`](Self::with_backend), but into the storage this
    /// key already has, so it does not allocate (AWS-LC excepted, inside its C library).
    ///
    /// # Errors
    /// [`AeadError::KeyLength`] when `key` has the wrong length (the key is then unchanged).
    #[inline]
    pub fn rekey(&mut self, key: &[u8]) -> Result<(), AeadError> {
        if key.len() != self.kind.key_len() {
            return Err(AeadError::KeyLength);
        }
        self.held.replace(backend::key(self.backend, self.kind, key)?);
        Ok(())
    }

    /// Which AEAD this key is for.
    pub fn kind(&self) -> AeadKind {
        self.kind
    }

    /// Which backend implements it.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// # Errors
    /// [`AeadError::NonceLength`] if `nonce` is not `kind().nonce_len()` bytes;
    /// [`AeadError::TooLong`] past the AEAD's message limit.
    #[inline]
    pub fn seal(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], AeadError> {
        match &self.held {
            Held::ChaCha(c) => seal_with!(c, nonce, aad, buf),
            Held::XChaCha(c) => seal_with!(c, nonce, aad, buf),
            Held::Aes128(c) => seal_with!(c, nonce, aad, buf),
            Held::Aes256(c) => seal_with!(c, nonce, aad, buf),
            #[cfg(feature = "ring")]
            Held::Ring(k) => backend::ring::seal(k, nonce, aad, buf),
            #[cfg(feature = "aws-lc-rs")]
            Held::AwsLc(k) => backend::aws_lc::seal(k, nonce, aad, buf),
            Held::None => {
                if nonce.len() != self.kind.nonce_len() {
                    return Err(AeadError::NonceLength);
                }
                Ok([0u8; TAG_LEN])
            }
        }
    }

    /// Verifies `tag` and decrypts `buf` in place. On failure `buf` holds no plaintext
    /// (the AEAD crates verify before decrypting).
    ///
    /// # Errors
    /// [`AeadError::Auth`] when the tag does not verify; [`AeadError::NonceLength`].
    #[inline]
    pub fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), AeadError> {
        match &self.held {
            Held::ChaCha(c) => open_with!(c, nonce, aad, buf, tag),
            Held::XChaCha(c) => open_with!(c, nonce, aad, buf, tag),
            Held::Aes128(c) => open_with!(c, nonce, aad, buf, tag),
            Held::Aes256(c) => open_with!(c, nonce, aad, buf, tag),
            #[cfg(feature = "ring")]
            Held::Ring(k) => backend::ring::open(k, nonce, aad, buf, tag),
            #[cfg(feature = "aws-lc-rs")]
            Held::AwsLc(k) => backend::aws_lc::open(k, nonce, aad, buf, tag),
            Held::None => {
                if nonce.len() != self.kind.nonce_len() {
                    return Err(AeadError::NonceLength);
                }
                if tag.iter().all(|&b| b == 0) { Ok(()) } else { Err(AeadError::Auth) }
            }
        }
    }
}

/// Writes the Noise nonce for `counter` into `out` (which must be `cipher`'s 12 bytes):
/// 4 zero bytes then the counter, little-endian for ChaChaPoly, big-endian for AESGCM.
#[inline]
pub fn noise_nonce(cipher: NoiseCipher, counter: u64, out: &mut [u8; 12]) {
    out[..4].fill(0);
    match cipher {
        NoiseCipher::ChaChaPoly => out[4..].copy_from_slice(&counter.to_le_bytes()),
        NoiseCipher::AesGcm => out[4..].copy_from_slice(&counter.to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aead_names_round_trip_and_none_is_only_reached_by_its_exact_name() {
        for k in AeadKind::ALL {
            assert_eq!(k.name().parse::<AeadKind>().unwrap(), k);
        }
        for bad in ["", "None", "plaintext", "null", "chacha"] {
            assert!(bad.parse::<AeadKind>().is_err(), "{bad} must not parse");
        }
        assert!(AeadKind::None.to_string().contains("UNENCRYPTED"));
    }
}
