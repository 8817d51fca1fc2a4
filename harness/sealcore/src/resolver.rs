//! Our `snow` [`CryptoResolver`]: X25519 on `x25519-dalek`, ChaChaPoly and AESGCM on the
//! RustCrypto AEAD crates (through [`AeadKey`]), SHA-256 and BLAKE2s on `sha2` / `blake2`,
//! randomness from the OS through `getrandom`.
//!
//! Why our own: snow's default resolver pins older releases of these crates; this one uses
//! the same primitives as the transport, so the handshake and the sealed messages are
//! measured on one code base.

use crate::aead::{AeadKey, AeadKind, TAG_LEN};
use blake2::Blake2s256;
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

/// The resolver sealbench builds every handshake with.
#[derive(Debug, Default, Clone, Copy)]
pub struct SealResolver;

impl CryptoResolver for SealResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(OsRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::<X25519>::default()),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(Sha256Hash(Sha256::new()))),
            HashChoice::Blake2s => Some(Box::new(Blake2sHash(Blake2s256::new()))),
            _ => None,
        }
    }

    #[allow(unreachable_patterns)] // snow has a feature-gated XChaChaPoly choice
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(NoiseAead::new(AeadKind::ChaCha20Poly1305))),
            CipherChoice::AESGCM => Some(Box::new(NoiseAead::new(AeadKind::Aes256Gcm))),
            _ => None,
        }
    }
}

/// Operating-system randomness.
struct OsRandom;

impl Random for OsRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        getrandom::fill(dest).map_err(|_| snow::Error::Rng)
    }
}

/// X25519 (RFC 7748) on `x25519-dalek`.
#[derive(Default)]
struct X25519 {
    private: [u8; 32],
    public: [u8; 32],
}

impl Drop for X25519 {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl X25519 {
    fn derive_public(&mut self) {
        let secret = StaticSecret::from(self.private);
        self.public = PublicKey::from(&secret).to_bytes();
    }
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
        self.private.copy_from_slice(&privkey[..32]);
        self.derive_public();
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.private)?;
        self.derive_public();
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        &self.private
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let their: [u8; 32] = pubkey.get(..32).and_then(|s| s.try_into().ok()).ok_or(snow::Error::Dh)?;
        let shared = x25519_dalek::x25519(self.private, their);
        // A low-order public key gives an all-zero shared secret: refuse it (RFC 7748 §6.1).
        if shared.iter().all(|&b| b == 0) {
            return Err(snow::Error::Dh);
        }
        out[..32].copy_from_slice(&shared);
        Ok(())
    }
}

/// A Noise cipher (ChaChaPoly or AESGCM) on our [`AeadKey`].
struct NoiseAead {
    kind: AeadKind,
    key: Option<AeadKey>,
}

impl NoiseAead {
    fn new(kind: AeadKind) -> Self {
        NoiseAead { kind, key: None }
    }
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
        self.key = Some(AeadKey::new(self.kind, key).expect("Noise cipher keys are 32 bytes"));
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
