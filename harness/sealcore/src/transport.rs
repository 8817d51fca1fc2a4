//! Transport sessions: what a finished handshake becomes.
//!
//! Every transport message on the wire is
//! `counter (u64, little-endian) ‖ ciphertext ‖ tag (16 bytes)`; the associated data is
//! empty. Two modes:
//!
//! * **noise** — one key per direction from the Noise `Split()`, nonce from the counter as
//!   Noise specifies (so for ChaChaPoly and AESGCM the `ciphertext ‖ tag` part is exactly
//!   what any Noise library's stateless/out-of-order transport produces), with an optional
//!   rekey every N messages (Noise `REKEY`).
//! * **kdf-chain** (formerly `ratchet`) — a per-message symmetric KDF chain: message `n` is
//!   sealed with a key used once and erased, out-of-order delivery is handled within a
//!   window by keeping skipped message keys in a fixed table. It is *not* a Double Ratchet:
//!   there is no Diffie-Hellman step after the handshake, so it gives forward secrecy per
//!   message (a stolen chain key does not open earlier messages) but no post-compromise
//!   security (a stolen chain key opens every later message of that direction). Each
//!   message pays one HKDF step and one AEAD key schedule.
//!
//! The explicit counter is what lets the receiver tell a *replay* (counter already
//! accepted) from a *forgery* (tag does not verify) from a message that is *too old* for
//! the window, each as its own cheap error. Sealing and opening work in place in the
//! caller's buffer and never allocate.

use crate::aead::{AeadError, AeadKey, AeadKind, MAX_NONCE_LEN, TAG_LEN, noise_nonce};
use crate::backend::Backend;
use crate::kdf;
use crate::replay::{Refusal, ReplayWindow};
use zeroize::Zeroize;

/// Bytes of the counter header in front of every transport message.
pub const HEADER_LEN: usize = 8;
/// Bytes a transport message adds to its plaintext (header + tag).
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// How far ahead of the newest accepted counter a message may be before it is refused
/// (bounds the work a forged counter can cause).
pub const MAX_AHEAD: u64 = 1 << 16;
/// In kdf-chain mode: how far ahead a message may be (each skipped key costs one KDF step).
pub const RATCHET_MAX_SKIP: u64 = 2048;
/// In kdf-chain mode: how many skipped message keys are kept for late messages.
pub const RATCHET_SKIPPED_SLOTS: usize = 256;

/// How transport messages are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportMode {
    /// Noise transport: counter nonces; `rekey_every` = 0 never rekeys, N > 0 applies the
    /// Noise `REKEY` function at every multiple of N.
    Noise {
        /// Messages per key (0: never rekey).
        rekey_every: u64,
    },
    /// Per-message symmetric KDF chain with HKDF-SHA256 (not a Double Ratchet: no DH step,
    /// so no post-compromise security). Named `ratchet` before.
    KdfChain,
}

impl TransportMode {
    /// `noise` or `kdf-chain`.
    pub fn name(self) -> &'static str {
        match self {
            TransportMode::Noise { .. } => "noise",
            TransportMode::KdfChain => "kdf-chain",
        }
    }

    /// The mode's word in HKDF info labels. `kdf-chain` keeps the label `ratchet` it had
    /// before it was renamed, so keys (and independent implementations) do not change.
    pub fn label(self) -> &'static str {
        match self {
            TransportMode::Noise { .. } => "noise",
            TransportMode::KdfChain => "ratchet",
        }
    }
}

/// Errors from sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The buffer cannot hold header + plaintext + tag.
    #[error("buffer too small for header, plaintext and tag")]
    BufferTooSmall,
    /// The 64-bit counter is used up; a new handshake is needed.
    #[error("message counter exhausted")]
    Exhausted,
    /// The AEAD refused the message (too long).
    #[error("AEAD refused the message")]
    Aead,
}

/// Errors from opening. Each is distinct and cheap; none ever yields plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than header + tag: truncated.
    #[error("truncated transport message")]
    Truncated,
    /// The counter was already accepted: a replay or duplicate.
    #[error("replayed transport message")]
    Replay,
    /// The counter is older than the replay window (or its kdf-chain key was evicted).
    #[error("transport message too old for the window")]
    TooOld,
    /// The counter is implausibly far ahead.
    #[error("transport message counter too far ahead")]
    TooFarAhead,
    /// The tag did not verify: a forgery or corruption (a flipped bit anywhere).
    #[error("authentication failed")]
    Auth,
}

impl From<Refusal> for OpenError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Replay => OpenError::Replay,
            Refusal::TooOld => OpenError::TooOld,
        }
    }
}

/// The nonce for counter `n` in noise mode. ChaChaPoly/AESGCM follow the Noise spec;
/// XChaCha20-Poly1305 uses 16 zero bytes ‖ n (LE); AES-128-GCM 4 zero bytes ‖ n (BE).
#[inline]
fn nonce_for(aead: AeadKind, n: u64, out: &mut [u8; MAX_NONCE_LEN]) -> usize {
    match aead {
        AeadKind::XChaCha20Poly1305 => {
            out[..16].fill(0);
            out[16..24].copy_from_slice(&n.to_le_bytes());
            24
        }
        _ => {
            let mut n12 = [0u8; 12];
            noise_nonce(aead.noise_cipher(), n, &mut n12);
            out[..12].copy_from_slice(&n12);
            12
        }
    }
}

/// Noise `REKEY(k)`: the first key-length bytes of `ENCRYPT(k, 2^64-1, "", zeros)`.
/// `cipher` (of `aead`) is the scratch it runs on, re-keyed in place (no allocation): it is
/// left keyed with the new `key`.
fn rekey(aead: AeadKind, cipher: &mut AeadKey, key: &mut [u8; 32]) {
    if cipher.rekey(&key[..aead.key_len()]).is_err() {
        return;
    }
    let mut nonce = [0u8; MAX_NONCE_LEN];
    let len = nonce_for(aead, u64::MAX, &mut nonce);
    let mut block = [0u8; 32];
    // `none` has no key to roll; its identity "encryption" would give zeros. Keep it a
    // deterministic function all the same so the schedule is identical.
    let _ = cipher.seal(&nonce[..len], &[], &mut block);
    if !aead.is_encrypted() {
        kdf::expand_label(key, b"none rekey", &mut block);
    }
    key.copy_from_slice(&block);
    block.zeroize();
    let _ = cipher.rekey(&key[..aead.key_len()]);
}

/// An AEAD instance of `aead` keyed with zeros: the scratch the KDF chain re-keys in place
/// with each message key (`None` when the backend lacks the AEAD; sealing and opening then
/// fail as they would have with the message key).
fn scratch(backend: Backend, aead: AeadKind) -> Option<AeadKey> {
    AeadKey::with_backend(backend, aead, &[0u8; 32][..aead.key_len()]).ok()
}

/// The sending half of a transport session.
#[derive(Debug)]
pub struct TransportSender {
    backend: Backend,
    aead: AeadKind,
    mode: TransportMode,
    /// Counter of the next message.
    next: u64,
    /// noise: current key bytes (rolled by rekey); kdf-chain: the chain key.
    key: [u8; 32],
    /// noise: the keyed AEAD for `key`; kdf-chain: re-keyed in place with each message key.
    cipher: Option<AeadKey>,
}

impl Drop for TransportSender {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl TransportSender {
    pub(crate) fn new(backend: Backend, aead: AeadKind, mode: TransportMode, key: [u8; 32]) -> Self {
        let cipher = match mode {
            TransportMode::Noise { .. } => AeadKey::with_backend(backend, aead, &key[..aead.key_len()]).ok(),
            TransportMode::KdfChain => scratch(backend, aead),
        };
        TransportSender { backend, aead, mode, next: 0, key, cipher }
    }

    /// Seals in place. `buf[HEADER_LEN..HEADER_LEN + plaintext_len]` holds the plaintext;
    /// `buf` must be at least `plaintext_len + OVERHEAD` long. Writes the header and the
    /// tag and returns the message length.
    ///
    /// # Errors
    /// [`SealError::BufferTooSmall`], [`SealError::Exhausted`] after 2^64 − 1 messages.
    #[inline]
    pub fn seal(&mut self, buf: &mut [u8], plaintext_len: usize) -> Result<usize, SealError> {
        let total = plaintext_len + OVERHEAD;
        if buf.len() < total {
            return Err(SealError::BufferTooSmall);
        }
        let n = self.next;
        if n == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        header.copy_from_slice(&n.to_le_bytes());
        let (body, tail) = rest.split_at_mut(plaintext_len);
        let tag = match self.mode {
            TransportMode::Noise { rekey_every } => {
                let cipher = self.cipher.as_mut().ok_or(SealError::Aead)?;
                if rekey_every > 0 && n > 0 && n.is_multiple_of(rekey_every) {
                    rekey(self.aead, cipher, &mut self.key);
                }
                let mut nonce = [0u8; MAX_NONCE_LEN];
                let nl = nonce_for(self.aead, n, &mut nonce);
                cipher.seal(&nonce[..nl], &[], body).map_err(seal_err)?
            }
            TransportMode::KdfChain => {
                let mut mk = [0u8; 32];
                kdf::chain_step(self.backend, &mut self.key, &mut mk);
                let tag = seal_once(self.aead, &mut self.cipher, &mk, body);
                mk.zeroize();
                tag?
            }
        };
        tail[..TAG_LEN].copy_from_slice(&tag);
        self.next = n + 1;
        Ok(total)
    }
}

/// Every AEAD refusal while sealing (nonce length, message too long) is one error to the
/// caller: the transport chose the nonce, so only the message can be at fault.
fn seal_err(_: AeadError) -> SealError {
    SealError::Aead
}

/// Seals with a one-time message key (kdf-chain mode), keyed into `cipher` in place: the
/// nonce is all zeros.
#[inline]
fn seal_once(
    aead: AeadKind,
    cipher: &mut Option<AeadKey>,
    mk: &[u8; 32],
    body: &mut [u8],
) -> Result<[u8; TAG_LEN], SealError> {
    let cipher = cipher.as_mut().ok_or(SealError::Aead)?;
    cipher.rekey(&mk[..aead.key_len()]).map_err(seal_err)?;
    let nonce = [0u8; MAX_NONCE_LEN];
    cipher.seal(&nonce[..aead.nonce_len()], &[], body).map_err(seal_err)
}

/// Opens with a one-time message key (kdf-chain mode), keyed into `cipher` in place.
#[inline]
fn open_once(
    aead: AeadKind,
    cipher: &mut Option<AeadKey>,
    mk: &[u8; 32],
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), OpenError> {
    let cipher = cipher.as_mut().ok_or(OpenError::Auth)?;
    cipher.rekey(&mk[..aead.key_len()]).map_err(|_| OpenError::Auth)?;
    let nonce = [0u8; MAX_NONCE_LEN];
    cipher.open(&nonce[..aead.nonce_len()], &[], body, tag).map_err(|_| OpenError::Auth)
}

/// Noise-mode receiving keys: the current epoch's and the previous one (for stragglers
/// across a rekey).
#[derive(Debug)]
struct NoiseKeys {
    epoch: u64,
    key: [u8; 32],
    cipher: Option<AeadKey>,
    prev: Option<AeadKey>,
    /// Where a later epoch's key is tried before it is committed, and where an instance a
    /// commit freed is kept for the next one: with it, `prev` and `cipher` the three
    /// rotate, so rekeying allocates at most while they first appear (only with
    /// `rekey_every` > 0; only boxed keys, AES, allocate at all).
    spare: Option<AeadKey>,
}

/// kdf-chain-mode receiving chain.
#[derive(Debug)]
struct KdfChain {
    /// Chain key for message `next`.
    ck: [u8; 32],
    /// Index of the next message key the chain would produce.
    next: u64,
    /// Re-keyed in place with each message key.
    cipher: Option<AeadKey>,
    /// Skipped message keys, slot `i % RATCHET_SKIPPED_SLOTS`: (index, key, live).
    skipped: Box<[(u64, [u8; 32], bool); RATCHET_SKIPPED_SLOTS]>,
}

#[derive(Debug)]
enum RecvState {
    Noise { rekey_every: u64, keys: NoiseKeys },
    Chain(KdfChain),
}

/// The receiving half of a transport session.
#[derive(Debug)]
pub struct TransportReceiver {
    backend: Backend,
    aead: AeadKind,
    window: ReplayWindow,
    state: RecvState,
}

impl Drop for TransportReceiver {
    fn drop(&mut self) {
        match &mut self.state {
            RecvState::Noise { keys, .. } => keys.key.zeroize(),
            RecvState::Chain(chain) => {
                chain.ck.zeroize();
                for slot in chain.skipped.iter_mut() {
                    slot.1.zeroize();
                }
            }
        }
    }
}

impl TransportReceiver {
    pub(crate) fn new(backend: Backend, aead: AeadKind, mode: TransportMode, key: [u8; 32]) -> Self {
        let state = match mode {
            TransportMode::Noise { rekey_every } => RecvState::Noise {
                rekey_every,
                keys: NoiseKeys {
                    epoch: 0,
                    key,
                    cipher: AeadKey::with_backend(backend, aead, &key[..aead.key_len()]).ok(),
                    prev: None,
                    spare: None,
                },
            },
            TransportMode::KdfChain => RecvState::Chain(KdfChain {
                ck: key,
                next: 0,
                cipher: scratch(backend, aead),
                skipped: Box::new([(0, [0u8; 32], false); RATCHET_SKIPPED_SLOTS]),
            }),
        };
        TransportReceiver { backend, aead, window: ReplayWindow::new(), state }
    }

    /// Opens a transport message in place and returns its plaintext (a sub-slice of
    /// `msg`). On any error nothing in `msg` is plaintext.
    ///
    /// # Errors
    /// [`OpenError::Truncated`], [`OpenError::Replay`], [`OpenError::TooOld`],
    /// [`OpenError::TooFarAhead`], [`OpenError::Auth`] — each distinct.
    #[inline]
    pub fn open<'a>(&mut self, msg: &'a mut [u8]) -> Result<&'a mut [u8], OpenError> {
        if msg.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let mut counter = [0u8; HEADER_LEN];
        counter.copy_from_slice(&msg[..HEADER_LEN]);
        let n = u64::from_le_bytes(counter);
        self.window.check(n)?;
        if n >= self.window.top().saturating_add(MAX_AHEAD) || n == u64::MAX {
            return Err(OpenError::TooFarAhead);
        }
        let body_end = msg.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&msg[body_end..]);
        let body = &mut msg[HEADER_LEN..body_end];
        match &mut self.state {
            RecvState::Noise { rekey_every, keys } => {
                open_noise(self.backend, self.aead, *rekey_every, keys, n, body, &tag)?
            }
            RecvState::Chain(chain) => open_chain(self.backend, self.aead, chain, n, body, &tag)?,
        }
        self.window.mark(n);
        Ok(body)
    }
}

fn open_noise(
    backend: Backend,
    aead: AeadKind,
    rekey_every: u64,
    keys: &mut NoiseKeys,
    n: u64,
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), OpenError> {
    let mut nonce = [0u8; MAX_NONCE_LEN];
    let nl = nonce_for(aead, n, &mut nonce);
    let epoch = n.checked_div(rekey_every).unwrap_or(0);
    if epoch == keys.epoch {
        let c = keys.cipher.as_ref().ok_or(OpenError::Auth)?;
        return c.open(&nonce[..nl], &[], body, tag).map_err(|_| OpenError::Auth);
    }
    if epoch + 1 == keys.epoch {
        let c = keys.prev.as_ref().ok_or(OpenError::TooOld)?;
        return c.open(&nonce[..nl], &[], body, tag).map_err(|_| OpenError::Auth);
    }
    if epoch < keys.epoch {
        return Err(OpenError::TooOld);
    }
    // A later epoch: roll a copy forward on the spare instance, commit only if the
    // message authenticates.
    let mut spare = match keys.spare.take() {
        Some(spare) => spare,
        None => AeadKey::with_backend(backend, aead, &keys.key[..aead.key_len()]).map_err(|_| OpenError::Auth)?,
    };
    let mut key = keys.key;
    let mut prev_key = key;
    for _ in keys.epoch..epoch {
        prev_key = key;
        rekey(aead, &mut spare, &mut key);
    }
    let result = spare.open(&nonce[..nl], &[], body, tag).map_err(|_| OpenError::Auth);
    if result.is_ok() {
        let old = keys.cipher.replace(spare);
        if epoch == keys.epoch + 1 {
            // The old epoch's instance is the new `prev` as it is.
            keys.spare = keys.prev.take();
            keys.prev = old;
        } else {
            keys.spare = old;
            match keys.prev.as_mut() {
                Some(prev) => {
                    if prev.rekey(&prev_key[..aead.key_len()]).is_err() {
                        keys.prev = None;
                    }
                }
                None => keys.prev = AeadKey::with_backend(backend, aead, &prev_key[..aead.key_len()]).ok(),
            }
        }
        keys.key = key;
        keys.epoch = epoch;
    } else {
        keys.spare = Some(spare);
    }
    key.zeroize();
    prev_key.zeroize();
    result
}

fn open_chain(
    backend: Backend,
    aead: AeadKind,
    chain: &mut KdfChain,
    n: u64,
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), OpenError> {
    let slot = (n % RATCHET_SKIPPED_SLOTS as u64) as usize;
    if n < chain.next {
        // A late message: its key must be in the skipped table.
        let (idx, mk, live) = &mut chain.skipped[slot];
        if !*live || *idx != n {
            return Err(OpenError::TooOld);
        }
        open_once(aead, &mut chain.cipher, mk, body, tag)?;
        mk.zeroize();
        *live = false;
        return Ok(());
    }
    if n - chain.next > RATCHET_MAX_SKIP {
        return Err(OpenError::TooFarAhead);
    }
    // Derive forward on a copy; commit only when the message authenticates, so a forged
    // counter cannot advance (or burn) the chain.
    let mut ck = chain.ck;
    let mut mk = [0u8; 32];
    for _ in chain.next..=n {
        kdf::chain_step(backend, &mut ck, &mut mk);
    }
    let result = open_once(aead, &mut chain.cipher, &mk, body, tag);
    mk.zeroize();
    if let Err(e) = result {
        ck.zeroize();
        return Err(e);
    }
    if n == chain.next {
        // In order (the common case): the copy is the new chain key.
        chain.ck = ck;
        ck.zeroize();
        chain.next = n + 1;
        return Ok(());
    }
    ck.zeroize();
    // Authentic: advance for real, keeping the keys of the messages skipped over (only the
    // newest RATCHET_SKIPPED_SLOTS of them can still be stored).
    let keep_from = n.saturating_sub(RATCHET_SKIPPED_SLOTS as u64 - 1).max(chain.next);
    for i in chain.next..=n {
        kdf::chain_step(backend, &mut chain.ck, &mut mk);
        if i >= keep_from && i < n {
            let s = (i % RATCHET_SKIPPED_SLOTS as u64) as usize;
            chain.skipped[s] = (i, mk, true);
        }
    }
    mk.zeroize();
    chain.next = n + 1;
    Ok(())
}

/// A group sender's chain key, as it is distributed to the group's members over their
/// pairwise sessions (sender-key groups): the sender seals every group message once with
/// [`SenderKey::sender`], each member opens with its own [`SenderKey::receiver`]. The
/// chain is keyed with `HKDF-SHA256(salt = "", IKM = key, info = "sealbench sender key")`
/// so that a distributed key is never used directly.
#[derive(Clone)]
pub struct SenderKey {
    backend: Backend,
    aead: AeadKind,
    mode: TransportMode,
    chain: [u8; 32],
}

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKey")
            .field("backend", &self.backend)
            .field("aead", &self.aead)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Drop for SenderKey {
    fn drop(&mut self) {
        self.chain.zeroize();
    }
}

impl SenderKey {
    /// The chain of a distributed 32-byte key, for `aead` in `mode` on `backend`.
    pub fn new(backend: Backend, aead: AeadKind, mode: TransportMode, key: &[u8; 32]) -> Self {
        let mut chain = [0u8; 32];
        kdf::hkdf_sha256(&[], key, b"sealbench sender key", &mut chain);
        SenderKey { backend, aead, mode, chain }
    }

    /// The sending half (the group sender's own).
    pub fn sender(&self) -> TransportSender {
        TransportSender::new(self.backend, self.aead, self.mode, self.chain)
    }

    /// A receiving half (one per member).
    pub fn receiver(&self) -> TransportReceiver {
        TransportReceiver::new(self.backend, self.aead, self.mode, self.chain)
    }
}

/// A complete transport session: both directions.
#[derive(Debug)]
pub struct Transport {
    /// Seals what this side sends.
    pub sender: TransportSender,
    /// Opens what this side receives.
    pub receiver: TransportReceiver,
}

impl Transport {
    /// Splits into halves (a sending task and a receiving task need no shared lock).
    pub fn split(self) -> (TransportSender, TransportReceiver) {
        (self.sender, self.receiver)
    }
}
