//! Our `snow` [`CryptoResolver`], one per [`Backend`]: X25519, ChaChaPoly and AESGCM (through
//! [`AeadKey`]) and SHA-256 on the backend's library, BLAKE2s on `blake2` (no backend but
//! RustCrypto has it: a labelled fallback), randomness from the OS through `getrandom`.
//! With `ring`, X25519 falls back to x25519-dalek: ring's X25519 keys are ephemeral-only
//! ([`Backend::x25519_impl`]).
//!
//! Why our own: snow's default resolver pins older releases of these crates; this one uses
//! the same primitives as the transport, so the handshake and the sealed messages are
//! measured on one code base.

use crate::aead::{AeadKey, AeadKind, TAG_LEN};
use crate::backend::{Backend, X25519Secret};
use blake2::Blake2s256;
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroize;

/// The resolver sealbench builds every handshake with: the default one is RustCrypto's.
#[derive(Debug, Default, Clone, Copy)]
pub struct SealResolver {
    /// Whose primitives the handshake runs on.
    pub backend: Backend,
}

impl SealResolver {
    /// The resolver of `backend`.
    pub fn new(backend: Backend) -> Self {
        SealResolver { backend }
    }
}

impl CryptoResolver for SealResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(OsRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 if self.backend.is_compiled() => {
                Some(Box::new(X25519 { backend: self.backend, key: X25519Secret::new(self.backend, [0; 32]) }))
            }
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match (choice, self.backend) {
            #[cfg(feature = "ring")]
            (HashChoice::SHA256, Backend::Ring) => {
                Some(Box::new(RingSha256(ring::digest::Context::new(&ring::digest::SHA256))))
            }
            #[cfg(feature = "aws-lc-rs")]
            (HashChoice::SHA256, Backend::AwsLcRs) => {
                Some(Box::new(AwsSha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))))
            }
            (HashChoice::SHA256, _) => Some(Box::new(Sha256Hash(Sha256::new()))),
            (HashChoice::Blake2s, _) => Some(Box::new(Blake2sHash(Blake2s256::new()))),
            _ => None,
        }
    }

    #[allow(unreachable_patterns)] // snow has a feature-gated XChaChaPoly choice
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        let kind = match choice {
            CipherChoice::ChaChaPoly => AeadKind::ChaCha20Poly1305,
            CipherChoice::AESGCM => AeadKind::Aes256Gcm,
            _ => return None,
        };
        self.backend.check(kind).ok()?;
        Some(Box::new(NoiseAead { backend: self.backend, kind, key: None }))
    }
}

/// Operating-system randomness.
struct OsRandom;

impl Random for OsRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        getrandom::fill(dest).map_err(|_| snow::Error::Rng)
    }
}

/// X25519 (RFC 7748) on the backend's library, the key parsed once and reused.
struct X25519 {
    backend: Backend,
    key: X25519Secret,
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        let mut private = [0u8; 32];
        private.copy_from_slice(&privkey[..32]);
        self.key = X25519Secret::new(self.backend, private);
        private.zeroize();
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = [0u8; 32];
        rng.try_fill_bytes(&mut private)?;
        self.key = X25519Secret::new(self.backend, private);
        private.zeroize();
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        self.key.public()
    }
    fn privkey(&self) -> &[u8] {
        self.key.private()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow hands over a 56-byte buffer (room for X448): the key is its first 32 bytes.
        let their: [u8; 32] = pubkey.get(..32).and_then(|s| s.try_into().ok()).ok_or(snow::Error::Dh)?;
        // A low-order public key gives an all-zero shared secret: refused (RFC 7748 §6.1).
        let shared = self.key.agree(&their).ok_or(snow::Error::Dh)?;
        out[..32].copy_from_slice(&shared);
        Ok(())
    }
}

/// A Noise cipher (ChaChaPoly or AESGCM) on our [`AeadKey`].
struct NoiseAead {
    backend: Backend,
    kind: AeadKind,
    key: Option<AeadKey>,
}

impl NoiseAead {
    fn nonce(&self, n: u64) -> [u8; 12] {
        let mut out = [0u8; 12];
        crate::aead::noise_nonce(self.kind.noise_cipher(), n, &mut out);
        out
    }
}

impl Cipher for NoiseAead {
    fn name(&self) -> &'static str {
        self.kind.noise_cipher().noise_name()
    }

    fn set(&mut self, key: &[u8; 32]) {
        // The resolver checked that the backend has the cipher; keys are 32 bytes.
        self.key = AeadKey::with_backend(self.backend, self.kind, key).ok();
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let key = self.key.as_ref().expect("snow sets the key before encrypting");
        let n = plaintext.len();
        out[..n].copy_from_slice(plaintext);
        let tag = key.seal(&self.nonce(nonce), authtext, &mut out[..n]).expect("12-byte nonce");
        out[n..n + TAG_LEN].copy_from_slice(&tag);
        n + TAG_LEN
    }

    fn decrypt(&self, nonce: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        let n = ciphertext.len().checked_sub(TAG_LEN).ok_or(snow::Error::Decrypt)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&ciphertext[n..]);
        out[..n].copy_from_slice(&ciphertext[..n]);
        match key.open(&self.nonce(nonce), authtext, &mut out[..n], &tag) {
            Ok(()) => Ok(n),
            Err(_) => {
                out[..n].fill(0);
                Err(snow::Error::Decrypt)
            }
        }
    }
}

macro_rules! digest_hash {
    ($name:ident, $inner:ty, $noise:literal, $block:literal) => {
        struct $name($inner);
        impl Hash for $name {
            fn name(&self) -> &'static str {
                $noise
            }
            fn block_len(&self) -> usize {
                $block
            }
            fn hash_len(&self) -> usize {
                32
            }
            fn reset(&mut self) {
                Digest::reset(&mut self.0);
            }
            fn input(&mut self, data: &[u8]) {
                Digest::update(&mut self.0, data);
            }
            fn result(&mut self, out: &mut [u8]) {
                let digest = Digest::finalize_reset(&mut self.0);
                out[..32].copy_from_slice(&digest);
            }
        }
    };
}

digest_hash!(Sha256Hash, Sha256, "SHA256", 64);
digest_hash!(Blake2sHash, Blake2s256, "BLAKE2s", 64);

/// SHA-256 on a backend's incremental digest (`ring` or `aws-lc-rs`), whose `finish`
/// consumes the context: `result` swaps in a fresh one.
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
macro_rules! context_hash {
    ($name:ident, $ctx:ty, $alg:expr) => {
        struct $name($ctx);
        impl Hash for $name {
            fn name(&self) -> &'static str {
                "SHA256"
            }
            fn block_len(&self) -> usize {
                64
            }
            fn hash_len(&self) -> usize {
                32
            }
            fn reset(&mut self) {
                self.0 = <$ctx>::new($alg);
            }
            fn input(&mut self, data: &[u8]) {
                self.0.update(data);
            }
            fn result(&mut self, out: &mut [u8]) {
                let done = core::mem::replace(&mut self.0, <$ctx>::new($alg));
                out[..32].copy_from_slice(done.finish().as_ref());
            }
        }
    };
}

#[cfg(feature = "ring")]
context_hash!(RingSha256, ring::digest::Context, &ring::digest::SHA256);
#[cfg(feature = "aws-lc-rs")]
context_hash!(AwsSha256, aws_lc_rs::digest::Context, &aws_lc_rs::digest::SHA256);
