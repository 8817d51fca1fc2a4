//! The Noise handshake (through `snow` and [`SealResolver`]) as a type-state: a
//! [`Handshake`] becomes a [`Transport`] only through [`Handshake::into_transport`], which
//! refuses until the handshake is complete. [`complete_in_memory`] runs both sides of one
//! in memory (sweep, benches, tests, fuzzing).
//!
//! A hybrid pattern (`XX-pq`, `IK-pq`) adds an ML-KEM-768 step carried in the payloads of
//! the first two messages: the initiator's encapsulation key in the first, the responder's
//! ciphertext and key confirmation in the second; the transport keys then come from the
//! Noise split keys *and* the KEM secret through HKDF (`docs/PROTOCOL.md`).

use crate::aead::AeadKind;
use crate::backend::Backend;
use crate::kdf;
use crate::kem::{self, CONFIRM_LEN, CT_LEN, EK_LEN, KemImpl, SS_LEN};
use crate::resolver::SealResolver;
use crate::suite::Suite;
use crate::transport::{Transport, TransportMode, TransportReceiver, TransportSender};
use core::fmt;
use zeroize::Zeroize;

/// Errors of the handshake. Cheap: no formatting, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The pattern needs a key that was not given (a local static key pair, or the
    /// responder's static public key for NK/IK).
    #[error("the pattern needs a static key that was not given")]
    MissingKey,
    /// A handshake message failed to authenticate (forged, corrupted or wrong key).
    #[error("handshake message failed authentication")]
    Auth,
    /// A handshake message was malformed (wrong length, bad public key).
    #[error("malformed handshake message")]
    Malformed,
    /// A message was written or read out of turn, or the handshake is not finished yet.
    #[error("handshake used out of turn or before it finished")]
    State,
    /// An output buffer was too small.
    #[error("buffer too small")]
    BufferTooSmall,
    /// Anything else snow reported (bad parameters, randomness failure).
    #[error("handshake failure")]
    Other,
    /// The backend was compiled out or lacks the suite's AEAD ([`Backend::check`] says
    /// which, with what to do).
    #[error("the backend cannot run this suite")]
    Unsupported,
    /// The hybrid KEM step failed: a missing or malformed ML-KEM key or ciphertext, or a
    /// key confirmation that does not verify (a ciphertext altered before it was sealed).
    #[error("hybrid ML-KEM step failed")]
    Kem,
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => HandshakeError::Auth,
            snow::Error::Input => HandshakeError::Malformed,
            snow::Error::Dh => HandshakeError::Malformed,
            snow::Error::State(_) => HandshakeError::State,
            _ => HandshakeError::Other,
        }
    }
}

/// An X25519 static key pair.
#[derive(Clone)]
pub struct StaticKeypair {
    /// Private key (32 bytes); zeroed on drop.
    pub private: [u8; 32],
    /// Public key (32 bytes).
    pub public: [u8; 32],
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Drop for StaticKeypair {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl StaticKeypair {
    /// A fresh key pair from the operating system's randomness.
    ///
    /// # Errors
    /// [`HandshakeError::Other`] if the OS has no randomness.
    pub fn generate() -> Result<Self, HandshakeError> {
        let mut private = [0u8; 32];
        getrandom::fill(&mut private).map_err(|_| HandshakeError::Other)?;
        Ok(Self::from_private(private))
    }

    /// The key pair of a given private key.
    pub fn from_private(private: [u8; 32]) -> Self {
        let public = crate::backend::x25519_public(Backend::RustCrypto, &private);
        StaticKeypair { private, public }
    }
}

/// The hybrid KEM step's state on one side.
struct Hybrid {
    imp: KemImpl,
    /// Initiator: its decapsulation key until the ciphertext arrives.
    dk: Option<kem::DecapsulationKey>,
    /// The encapsulation key sent (initiator) or received (responder).
    ek: Vec<u8>,
    /// The KEM shared secret once known.
    ss: Option<[u8; SS_LEN]>,
}

impl Drop for Hybrid {
    fn drop(&mut self) {
        if let Some(ss) = &mut self.ss {
            ss.zeroize();
        }
    }
}

/// Prefix of a hybrid handshake's Noise prologue (binds the choice of the KEM step into
/// the handshake hash, so a classical and a hybrid end never agree).
pub const HYBRID_PROLOGUE: &[u8] = b"sealbench/v1 hybrid X25519+ML-KEM-768;";

/// A Noise handshake in progress.
pub struct Handshake {
    suite: Suite,
    state: snow::HandshakeState,
    /// The KEM step of a hybrid pattern.
    hybrid: Option<Hybrid>,
    /// Handshake messages written or read so far.
    messages: usize,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("suite", &self.suite)
            .field("initiator", &self.state.is_initiator())
            .field("finished", &self.state.is_handshake_finished())
            .finish()
    }
}

/// Options beyond the suite.
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeKeys<'a> {
    /// This side's static key pair (XX both sides, IK both, NK responder).
    pub local_static: Option<&'a StaticKeypair>,
    /// The responder's static public key (initiator of NK and IK).
    pub remote_static: Option<&'a [u8; 32]>,
    /// A fixed ephemeral private key: known-answer tests only.
    pub fixed_ephemeral: Option<&'a [u8; 32]>,
}

impl Handshake {
    fn build(suite: Suite, keys: HandshakeKeys<'_>, prologue: &[u8], initiator: bool) -> Result<Self, HandshakeError> {
        suite.backend.check(suite.aead).map_err(|_| HandshakeError::Unsupported)?;
        let params = suite.noise_name().parse().map_err(|_| HandshakeError::Other)?;
        let hybrid_prologue;
        let prologue = if suite.pattern.is_hybrid() {
            hybrid_prologue = [HYBRID_PROLOGUE, prologue].concat();
            &hybrid_prologue[..]
        } else {
            prologue
        };
        let resolver = SealResolver::new(suite.backend);
        let mut b = snow::Builder::with_resolver(params, Box::new(resolver)).prologue(prologue)?;
        let p = suite.pattern;
        let needs_local = if initiator { p.initiator_has_static() } else { p.responder_has_static() };
        if needs_local {
            let kp = keys.local_static.ok_or(HandshakeError::MissingKey)?;
            b = b.local_private_key(&kp.private)?;
        }
        if initiator && p.needs_remote_static() {
            let rs = keys.remote_static.ok_or(HandshakeError::MissingKey)?;
            b = b.remote_public_key(rs)?;
        }
        if let Some(e) = keys.fixed_ephemeral {
            b = b.fixed_ephemeral_key_for_testing_only(e);
        }
        let state = if initiator { b.build_initiator()? } else { b.build_responder()? };
        let hybrid = suite.pattern.is_hybrid().then(|| Hybrid {
            imp: KemImpl::of(suite.backend),
            dk: None,
            ek: Vec::new(),
            ss: None,
        });
        Ok(Handshake { suite, state, hybrid, messages: 0 })
    }

    /// Starts the initiator side.
    ///
    /// # Errors
    /// [`HandshakeError::MissingKey`] when the pattern needs a key that `keys` lacks.
    pub fn initiator(suite: Suite, keys: HandshakeKeys<'_>, prologue: &[u8]) -> Result<Self, HandshakeError> {
        Self::build(suite, keys, prologue, true)
    }

    /// Starts the responder side.
    ///
    /// # Errors
    /// [`HandshakeError::MissingKey`] when the pattern needs a key that `keys` lacks.
    pub fn responder(suite: Suite, keys: HandshakeKeys<'_>, prologue: &[u8]) -> Result<Self, HandshakeError> {
        Self::build(suite, keys, prologue, false)
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Writes the next handshake message carrying `payload` into `out`; returns its length.
    ///
    /// # Errors
    /// [`HandshakeError::State`] out of turn, [`HandshakeError::BufferTooSmall`].
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, HandshakeError> {
        let map = |e| match e {
            snow::Error::Input => HandshakeError::BufferTooSmall,
            other => other.into(),
        };
        let index = self.messages;
        let n = match &mut self.hybrid {
            // The initiator's first message carries a fresh encapsulation key.
            Some(h) if index == 0 && self.state.is_initiator() => {
                let (dk, ek) = kem::generate(h.imp).map_err(|_| HandshakeError::Kem)?;
                h.dk = Some(dk);
                h.ek = ek;
                let full = [&h.ek[..], payload].concat();
                self.state.write_message(&full, out).map_err(map)?
            }
            // The responder's first message carries the ciphertext and a key confirmation.
            Some(h) if index == 1 && !self.state.is_initiator() => {
                let (ct, ss) = kem::encapsulate(h.imp, &h.ek).map_err(|_| HandshakeError::Kem)?;
                let confirm = kem::confirm(&ss, &h.ek, &ct);
                h.ss = Some(ss);
                let full = [&ct[..], &confirm[..], payload].concat();
                self.state.write_message(&full, out).map_err(map)?
            }
            _ => self.state.write_message(payload, out).map_err(map)?,
        };
        self.messages += 1;
        Ok(n)
    }

    /// Reads a handshake message; writes its payload into `payload` and returns its length.
    ///
    /// # Errors
    /// [`HandshakeError::Auth`] for a forged or corrupted message,
    /// [`HandshakeError::Malformed`] for a wrong length, [`HandshakeError::State`] out of turn,
    /// [`HandshakeError::Kem`] when a hybrid KEM step fails.
    pub fn read_message(&mut self, message: &[u8], payload: &mut [u8]) -> Result<usize, HandshakeError> {
        let index = self.messages;
        let initiator = self.state.is_initiator();
        let Some(h) = &mut self.hybrid else {
            let n = self.state.read_message(message, payload)?;
            self.messages += 1;
            return Ok(n);
        };
        let mut full = vec![0u8; message.len()];
        let n = self.state.read_message(message, &mut full)?;
        let full = &full[..n];
        let user = match index {
            0 if !initiator => {
                let ek = full.get(..EK_LEN).ok_or(HandshakeError::Kem)?;
                h.ek = ek.to_vec();
                &full[EK_LEN..]
            }
            1 if initiator => {
                let ct = full.get(..CT_LEN).ok_or(HandshakeError::Kem)?;
                let tag = full.get(CT_LEN..CT_LEN + CONFIRM_LEN).ok_or(HandshakeError::Kem)?;
                let dk = h.dk.take().ok_or(HandshakeError::State)?;
                let ss = dk.decapsulate(ct).map_err(|_| HandshakeError::Kem)?;
                if !kem::verify_confirm(&ss, &h.ek, ct, tag) {
                    return Err(HandshakeError::Kem);
                }
                h.ss = Some(ss);
                &full[CT_LEN + CONFIRM_LEN..]
            }
            _ => full,
        };
        let out = payload.get_mut(..user.len()).ok_or(HandshakeError::BufferTooSmall)?;
        out.copy_from_slice(user);
        self.messages += 1;
        Ok(user.len())
    }

    /// True once every handshake message has been written or read.
    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// True when it is this side's turn to write.
    pub fn is_my_turn(&self) -> bool {
        self.state.is_my_turn()
    }

    /// True on the initiator side.
    pub fn is_initiator(&self) -> bool {
        self.state.is_initiator()
    }

    /// The peer's static public key, once the handshake has revealed it.
    pub fn remote_static(&self) -> Option<&[u8]> {
        self.state.get_remote_static()
    }

    /// The handshake hash `h` (32 bytes); final once the handshake is finished.
    pub fn handshake_hash(&self) -> &[u8] {
        self.state.get_handshake_hash()
    }

    /// Turns a finished handshake into a transport session.
    ///
    /// Keys: Noise `Split()` gives `k1` (initiator → responder) and `k2`. ChaChaPoly and
    /// AESGCM in noise mode use them as they are; every other AEAD, and every ratchet chain,
    /// derives its key as `HKDF-SHA256(salt = h, IKM = k, info)` with the labels in
    /// `docs/PROTOCOL.md`.
    ///
    /// # Errors
    /// [`HandshakeError::State`] when the handshake is not finished.
    pub fn into_transport(mut self, mode: TransportMode) -> Result<Transport, HandshakeError> {
        if !self.state.is_handshake_finished() {
            return Err(HandshakeError::State);
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.state.get_handshake_hash()[..32]);
        let (mut k1, mut k2) = self.state.dangerously_get_raw_split();
        let aead = self.suite.aead;
        let ss = match &self.hybrid {
            Some(hy) => Some(hy.ss.ok_or(HandshakeError::Kem)?),
            None => None,
        };
        let i2r = transport_key(aead, mode, &h, &k1, ss.as_ref(), b"i2r");
        let r2i = transport_key(aead, mode, &h, &k2, ss.as_ref(), b"r2i");
        k1.zeroize();
        k2.zeroize();
        let (send, recv) = if self.state.is_initiator() { (i2r, r2i) } else { (r2i, i2r) };
        let backend = self.suite.backend;
        Ok(Transport {
            sender: TransportSender::new(backend, aead, mode, send),
            receiver: TransportReceiver::new(backend, aead, mode, recv),
        })
    }
}

/// Buffer size of [`complete_in_memory`] for each handshake message and its payload
/// (a hybrid pattern's first two messages carry 1,184 and 1,120 bytes of KEM data).
const IN_MEMORY_MESSAGE: usize = 2048;

/// Runs a handshake to completion in memory: hands each message `initiator` or `responder`
/// writes (with an empty payload) straight to the other side until both have finished.
/// Returns the total length of the handshake messages exchanged.
///
/// Sans-IO like the rest of the core: no clock (two 2 KiB stack buffers, enough for every
/// pattern here, whose messages are at most 1,296 bytes). Both
/// sides stay handshakes, so the caller decides which of them becomes a transport
/// ([`Handshake::into_transport`]) and pays for it. For the crypto sweep, the benches, the
/// tests and the fuzz targets: a load run carries each message through the relay instead.
///
/// # Errors
/// Any error of [`Handshake::write_message`] or [`Handshake::read_message`]: keys that do
/// not match ([`HandshakeError::Auth`]), two sides of different suites or prologues,
/// [`HandshakeError::State`] when both sides are initiators or both responders, and
/// [`HandshakeError::BufferTooSmall`] for a message longer than 2 KiB.
pub fn complete_in_memory(initiator: &mut Handshake, responder: &mut Handshake) -> Result<usize, HandshakeError> {
    let mut message = [0u8; IN_MEMORY_MESSAGE];
    let mut payload = [0u8; IN_MEMORY_MESSAGE];
    let mut bytes = 0;
    while !(initiator.is_finished() && responder.is_finished()) {
        let (writer, reader) = if initiator.is_my_turn() {
            (&mut *initiator, &mut *responder)
        } else {
            (&mut *responder, &mut *initiator)
        };
        let n = writer.write_message(&[], &mut message)?;
        reader.read_message(&message[..n], &mut payload)?;
        bytes += n;
    }
    Ok(bytes)
}

/// A transport key. Classical: the split key `k` itself (Noise ciphers in noise mode) or
/// `HKDF-SHA256(salt = h, IKM = k, info = "sealbench/v1 <mode> <aead> <dir>")`. Hybrid:
/// always `HKDF-SHA256(salt = h, IKM = k ‖ ss, info = "sealbench/v1 hybrid <mode> <aead> <dir>")`
/// so the key is secret if either X25519 or ML-KEM-768 holds.
fn transport_key(
    aead: AeadKind,
    mode: TransportMode,
    h: &[u8; 32],
    k: &[u8; 32],
    ss: Option<&[u8; SS_LEN]>,
    dir: &[u8],
) -> [u8; 32] {
    if ss.is_none() && matches!(mode, TransportMode::Noise { .. }) && aead.is_noise_native() {
        return *k;
    }
    let mut info = [0u8; 80];
    let mut len = 0;
    let hybrid = if ss.is_some() { b"hybrid ".as_slice() } else { b"" };
    for part in [b"sealbench/v1 ".as_slice(), hybrid, mode.label().as_bytes(), b" ", aead.name().as_bytes(), b" ", dir]
    {
        info[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    let mut ikm = [0u8; 64];
    ikm[..32].copy_from_slice(k);
    let ikm_len = match ss {
        Some(ss) => {
            ikm[32..].copy_from_slice(ss);
            64
        }
        None => 32,
    };
    let mut out = [0u8; 32];
    kdf::hkdf_sha256(h, &ikm[..ikm_len], &info[..len], &mut out);
    ikm.zeroize();
    out
}

/// The X25519 base point (u = 9).
pub const X25519_BASEPOINT: [u8; 32] = x25519_dalek::X25519_BASEPOINT_BYTES;

/// Raw X25519 (RFC 7748 §5) on x25519-dalek: `scalar` (clamped as the RFC says) times the
/// point `u`. [`crate::backend::x25519`] runs it on a chosen backend.
pub fn x25519(scalar: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(scalar, u)
}
