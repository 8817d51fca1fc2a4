//! Olm over vodozemac: an account publishes an identity bundle, a signed fallback key and
//! one-time keys; a session is created from a claimed key with its first (pre-key)
//! message; every reply turns the DH ratchet, a one-way stream only steps the chain.
//!
//! # Key material (what a key directory carries, opaque to it)
//! - identity bundle, [`IDENTITY_LEN`] = 64 bytes: Curve25519 identity key ‖ Ed25519
//!   signing key;
//! - one-time key, [`ONE_TIME_KEY_LEN`] = 32 bytes: a Curve25519 public key;
//! - signed fallback key, [`FALLBACK_LEN`] = 96 bytes: a Curve25519 public key ‖ the
//!   account's Ed25519 signature over [`FALLBACK_CONTEXT`] ‖ that key. A claimer verifies
//!   it against the identity bundle before using it.
//!
//! Sessions use Olm v1 (`m.olm.v1.curve25519-aes-sha2`, as Matrix deploys it).
//!
//! # Message framing
//! One byte, vodozemac's message type (0 = pre-key, 1 = normal), then vodozemac's binary
//! encoding of that message (`docs/PROTOCOL.md` §5.1).

use crate::ProtoError;
use vodozemac::olm::{
    Account, DecryptionError, OlmMessage, PreKeyMessage, Session, SessionConfig, SessionCreationError,
};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

/// Bytes of an identity bundle.
pub const IDENTITY_LEN: usize = 64;
/// Bytes of a one-time key.
pub const ONE_TIME_KEY_LEN: usize = 32;
/// Bytes of a signed fallback key.
pub const FALLBACK_LEN: usize = 96;
/// Signed before the fallback key's bytes (domain separation).
pub const FALLBACK_CONTEXT: &[u8] = b"sealbench/olm fallback key";
/// Message type byte of a pre-key message.
pub const PRE_KEY: u8 = 0;
/// Message type byte of a normal message.
pub const NORMAL: u8 = 1;
/// Recently accepted messages remembered per session to name a replay as such (the
/// library refuses it too, but cannot tell a replay from an evicted key).
const REPLAY_MEMORY: usize = 64;
/// Receiving chains vodozemac keeps per session.
const RX_CHAINS: usize = 5;

/// Which step of the Double Ratchet a message cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The session's first messages (X3DH-style triple DH at creation; pre-key messages
    /// until the other side answers).
    PreKey,
    /// A new DH ratchet key: one X25519 and a root-key KDF before the chain step.
    RatchetTurn,
    /// A symmetric chain step only.
    ChainStep,
}

/// A key handed out by the directory's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimedKey<'a> {
    /// A one-time key (32 bytes), handed out once.
    OneTime(&'a [u8]),
    /// The signed fallback key (96 bytes): the pool was empty.
    Fallback(&'a [u8]),
}

/// An Olm account: identity keys and the one-time and fallback keys it has published.
pub struct OlmAccount {
    account: Account,
}

impl std::fmt::Debug for OlmAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmAccount").field("one_time_keys", &self.account.stored_one_time_key_count()).finish()
    }
}

impl Default for OlmAccount {
    fn default() -> Self {
        Self::new()
    }
}

fn curve(bytes: &[u8]) -> Result<Curve25519PublicKey, ProtoError> {
    let b: [u8; 32] = bytes.try_into().map_err(|_| ProtoError::BadKey)?;
    Ok(Curve25519PublicKey::from_bytes(b))
}

impl OlmAccount {
    /// A new account with fresh identity keys (drawn from the OS).
    pub fn new() -> Self {
        OlmAccount { account: Account::new() }
    }

    /// The identity bundle to publish: Curve25519 ‖ Ed25519.
    pub fn identity(&self) -> [u8; IDENTITY_LEN] {
        let mut out = [0u8; IDENTITY_LEN];
        out[..32].copy_from_slice(self.account.curve25519_key().as_bytes());
        out[32..].copy_from_slice(self.account.ed25519_key().as_bytes());
        out
    }

    /// `count` new one-time keys to publish (marked published; the account keeps their
    /// secrets until a pre-key message uses them, up to the library's store of 100 keys
    /// per account, past which the oldest are forgotten).
    pub fn one_time_keys(&mut self, count: usize) -> Vec<[u8; ONE_TIME_KEY_LEN]> {
        let created = self.account.generate_one_time_keys(count).created;
        self.account.mark_keys_as_published();
        created.iter().map(|k| k.to_bytes()).collect()
    }

    /// How many one-time key secrets the account holds (published and not yet used).
    pub fn unused_one_time_keys(&self) -> usize {
        self.account.stored_one_time_key_count()
    }

    /// A new signed fallback key to publish (the previous one stays usable until the next).
    pub fn signed_fallback_key(&mut self) -> [u8; FALLBACK_LEN] {
        self.account.generate_fallback_key();
        let key = self.account.fallback_key().into_values().next().map(|k| k.to_bytes()).unwrap_or([0; 32]);
        self.account.mark_keys_as_published();
        let mut msg = Vec::with_capacity(FALLBACK_CONTEXT.len() + 32);
        msg.extend_from_slice(FALLBACK_CONTEXT);
        msg.extend_from_slice(&key);
        let sig = self.account.sign(&msg);
        let mut out = [0u8; FALLBACK_LEN];
        out[..32].copy_from_slice(&key);
        out[32..].copy_from_slice(&sig.to_bytes());
        out
    }

    /// Creates the outbound session to the account with identity bundle `identity`,
    /// from a key claimed from its directory entry.
    ///
    /// # Errors
    /// [`ProtoError::BadKey`] when the identity bundle or the key has the wrong length,
    /// or a fallback key's signature does not verify.
    pub fn outbound(&self, identity: &[u8], claimed: ClaimedKey<'_>) -> Result<OlmSession, ProtoError> {
        if identity.len() != IDENTITY_LEN {
            return Err(ProtoError::BadKey);
        }
        let their_curve = curve(&identity[..32])?;
        let key = match claimed {
            ClaimedKey::OneTime(k) => curve(k)?,
            ClaimedKey::Fallback(k) => {
                verify_fallback(identity, k)?;
                curve(&k[..32])?
            }
        };
        let session = self
            .account
            .create_outbound_session(SessionConfig::version_1(), their_curve, key)
            .map_err(|_| ProtoError::BadKey)?;
        Ok(OlmSession::new(session, false))
    }

    /// Creates the inbound session from a pre-key message (framed as [`OlmSession::encrypt`]
    /// writes it), returning it and the first message's plaintext. The one-time key it used
    /// is spent: the same pre-key message cannot create a second session.
    ///
    /// # Errors
    /// [`ProtoError::Malformed`] (not a pre-key message), [`ProtoError::MissingOneTimeKey`]
    /// (the key it names is spent or unknown), [`ProtoError::Auth`] (it does not decrypt),
    /// [`ProtoError::BadKey`] (the sender's identity is not `their_identity`).
    pub fn inbound(
        &mut self,
        their_identity: Option<&[u8]>,
        message: &[u8],
    ) -> Result<(OlmSession, Vec<u8>), ProtoError> {
        let Some((&PRE_KEY, body)) = message.split_first() else { return Err(ProtoError::Malformed) };
        let m = PreKeyMessage::from_bytes(body).map_err(|_| ProtoError::Malformed)?;
        let sender = match their_identity {
            Some(id) if id.len() >= 32 => curve(&id[..32])?,
            Some(_) => return Err(ProtoError::BadKey),
            None => m.identity_key(),
        };
        let r = self.account.create_inbound_session(SessionConfig::version_1(), sender, &m).map_err(|e| match e {
            SessionCreationError::MissingOneTimeKey(_) => ProtoError::MissingOneTimeKey,
            SessionCreationError::MismatchedIdentityKey(..) => ProtoError::BadKey,
            SessionCreationError::Decryption(_) => ProtoError::Auth,
            _ => ProtoError::Library,
        })?;
        let mut s = OlmSession::new(r.session, true);
        s.remember(m.message().ratchet_key().as_bytes(), m.message().chain_index());
        s.rx_ratchets[0] = Some(m.message().ratchet_key().to_bytes());
        Ok((s, r.plaintext))
    }
}

/// Checks a signed fallback key against the identity bundle that published it.
///
/// # Errors
/// [`ProtoError::BadKey`] when the lengths are wrong or the signature does not verify.
pub fn verify_fallback(identity: &[u8], fallback: &[u8]) -> Result<(), ProtoError> {
    if identity.len() != IDENTITY_LEN || fallback.len() != FALLBACK_LEN {
        return Err(ProtoError::BadKey);
    }
    let ed: [u8; 32] = identity[32..].try_into().map_err(|_| ProtoError::BadKey)?;
    let ed = Ed25519PublicKey::from_slice(&ed).map_err(|_| ProtoError::BadKey)?;
    let sig = Ed25519Signature::from_slice(&fallback[32..]).map_err(|_| ProtoError::BadKey)?;
    let mut msg = Vec::with_capacity(FALLBACK_CONTEXT.len() + 32);
    msg.extend_from_slice(FALLBACK_CONTEXT);
    msg.extend_from_slice(&fallback[..32]);
    ed.verify(&msg, &sig).map_err(|_| ProtoError::BadKey)
}

/// One end of an Olm session.
pub struct OlmSession {
    session: Session,
    /// A message was received with a ratchet key not seen before: the next encrypt turns
    /// the DH ratchet.
    turn_pending: bool,
    /// The ratchet keys of the chains messages were received on, newest first (as many
    /// as the library keeps receiving chains).
    rx_ratchets: [Option<[u8; 32]>; RX_CHAINS],
    /// (ratchet key prefix, chain index) of recently accepted messages, to name replays.
    seen: [(u64, u64); REPLAY_MEMORY],
    seen_at: usize,
}

impl std::fmt::Debug for OlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmSession").field("turn_pending", &self.turn_pending).finish_non_exhaustive()
    }
}

fn prefix(key: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_le_bytes(b) | 1
}

impl OlmSession {
    fn new(session: Session, inbound: bool) -> Self {
        OlmSession {
            session,
            turn_pending: inbound,
            rx_ratchets: [None; RX_CHAINS],
            seen: [(0, 0); REPLAY_MEMORY],
            seen_at: 0,
        }
    }

    fn remember(&mut self, ratchet: &[u8; 32], index: u64) {
        self.seen[self.seen_at % REPLAY_MEMORY] = (prefix(ratchet), index);
        self.seen_at += 1;
    }

    /// Whether this end has received a message on the session (until then, its messages
    /// are pre-key messages).
    pub fn has_received(&self) -> bool {
        self.session.has_received_message()
    }

    /// The session's id (both ends agree on it).
    pub fn id(&self) -> String {
        self.session.session_id()
    }

    /// Encrypts `plaintext`, appending the framed message to `out`; returns which step it
    /// cost. (vodozemac returns the ciphertext in a `Vec` of its own: one allocation per
    /// message inside the library, plus its encoding.)
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<Step, ProtoError> {
        let step = if !self.session.has_received_message() {
            Step::PreKey
        } else if self.turn_pending {
            Step::RatchetTurn
        } else {
            Step::ChainStep
        };
        let m = self.session.encrypt(plaintext).map_err(|_| ProtoError::Library)?;
        self.turn_pending = false;
        match m {
            OlmMessage::PreKey(p) => {
                out.push(PRE_KEY);
                out.extend_from_slice(&p.to_bytes());
            }
            OlmMessage::Normal(n) => {
                out.push(NORMAL);
                out.extend_from_slice(&n.to_bytes());
            }
        }
        Ok(step)
    }

    /// Decrypts a framed message; returns its plaintext and which step it cost.
    ///
    /// # Errors
    /// [`ProtoError::Replay`] (this message was accepted before), [`ProtoError::TooOld`]
    /// (its key was discarded), [`ProtoError::TooFarAhead`], [`ProtoError::Auth`],
    /// [`ProtoError::Malformed`], [`ProtoError::UnknownSession`] (a pre-key message of
    /// another session). A refused message changes nothing.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<(Vec<u8>, Step), ProtoError> {
        let Some((&kind, body)) = message.split_first() else { return Err(ProtoError::Malformed) };
        let m = match kind {
            PRE_KEY => {
                let p = PreKeyMessage::from_bytes(body).map_err(|_| ProtoError::Malformed)?;
                if p.session_id() != self.session.session_id() {
                    return Err(ProtoError::UnknownSession);
                }
                OlmMessage::PreKey(p)
            }
            NORMAL => OlmMessage::Normal(vodozemac::olm::Message::from_bytes(body).map_err(|_| ProtoError::Malformed)?),
            _ => return Err(ProtoError::Malformed),
        };
        let inner = match &m {
            OlmMessage::PreKey(p) => p.message(),
            OlmMessage::Normal(n) => n,
        };
        let (ratchet, index) = (inner.ratchet_key().to_bytes(), inner.chain_index());
        if self.seen.contains(&(prefix(&ratchet), index)) {
            return Err(ProtoError::Replay);
        }
        let pt = self.session.decrypt(&m).map_err(|e| match e {
            DecryptionError::MissingMessageKey(_) => ProtoError::TooOld,
            DecryptionError::TooBigMessageGap(..) => ProtoError::TooFarAhead,
            DecryptionError::InvalidMAC(_)
            | DecryptionError::InvalidMACLength(..)
            | DecryptionError::InvalidPadding(_) => ProtoError::Auth,
            _ => ProtoError::Library,
        })?;
        self.remember(&ratchet, index);
        // A ratchet key not seen before opened a new receiving chain (a DH ratchet turn);
        // a late message on an older chain is a chain step.
        let new_chain = !self.rx_ratchets.contains(&Some(ratchet));
        if new_chain {
            self.rx_ratchets.rotate_right(1);
            self.rx_ratchets[0] = Some(ratchet);
            self.turn_pending = true;
        }
        let step = match (&m, new_chain) {
            (OlmMessage::PreKey(_), _) => Step::PreKey,
            (_, true) => Step::RatchetTurn,
            (_, false) => Step::ChainStep,
        };
        Ok((pt, step))
    }
}
