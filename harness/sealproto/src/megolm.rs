//! Megolm over vodozemac: one outbound group session per sender, whose session key the
//! sender shares with every member device over Olm; rotated after N messages or when a
//! member leaves, so that a departed member cannot read what follows.
//!
//! # Formats (`docs/PROTOCOL.md` §5.2)
//! - shared session key: generation u32 LE ‖ vodozemac's `SessionKey` bytes (Megolm v1,
//!   `m.megolm.v1.aes-sha2` as Matrix deploys it; the key is signed by the session's
//!   Ed25519 key);
//! - group message: generation u32 LE ‖ vodozemac's `MegolmMessage` bytes (AES-256-CBC +
//!   HMAC-SHA-256 truncated to 8 bytes + Ed25519 signature).
//!
//! The generation (0, 1, 2, … per sender) names the session a message belongs to, as the
//! `session_id` beside a Matrix event does.
//!
//! **Replays.** vodozemac's inbound sessions decrypt any index at or after the first one
//! they know, again and again (Matrix clients detect replays by (session, index) above the
//! library). [`MegolmInbound`] does so with a window of the last [`REPLAY_WINDOW`] indices.

use crate::ProtoError;
use vodozemac::megolm::{DecryptionError, GroupSession, InboundGroupSession, MegolmMessage, SessionConfig, SessionKey};

/// Indices tracked for replay detection per inbound session.
pub const REPLAY_WINDOW: u32 = 1024;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// A sender's outbound group session and its rotation policy.
pub struct MegolmOutbound {
    session: GroupSession,
    generation: u32,
    sent: u32,
    rotate_after: u32,
}

impl std::fmt::Debug for MegolmOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegolmOutbound").field("generation", &self.generation).field("sent", &self.sent).finish()
    }
}

impl MegolmOutbound {
    /// A new session (generation 0) rotated after `rotate_after` messages (0: never by
    /// count; a leave rotates it whatever this says).
    pub fn new(rotate_after: u32) -> Self {
        MegolmOutbound { session: GroupSession::new(SessionConfig::version_1()), generation: 0, sent: 0, rotate_after }
    }

    /// The current generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The key to share with every member device (over Olm): generation ‖ session key at
    /// the session's current index (messages already sent stay unreadable to it).
    pub fn session_key(&self) -> Vec<u8> {
        let key = self.session.session_key().to_bytes();
        let mut out = Vec::with_capacity(4 + key.len());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&key);
        out
    }

    /// Whether the count policy asks for a rotation before the next message.
    pub fn rotation_due(&self) -> bool {
        self.rotate_after > 0 && self.sent >= self.rotate_after
    }

    /// Starts a new session (the next generation): its key must be shared again, with the
    /// members that remain.
    pub fn rotate(&mut self) {
        self.session = GroupSession::new(SessionConfig::version_1());
        self.generation = self.generation.wrapping_add(1);
        self.sent = 0;
    }

    /// Encrypts `plaintext` and appends the framed message to `out`; returns its index in
    /// the session. (vodozemac allocates the message and its encoding.)
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> u32 {
        let m = self.session.encrypt(plaintext);
        self.sent += 1;
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&m.to_bytes());
        m.message_index()
    }
}

/// A receiver's copy of one sender's group session (one generation).
pub struct MegolmInbound {
    session: InboundGroupSession,
    generation: u32,
    /// Highest index accepted + 1 (0: none yet).
    top: u32,
    /// Bit i set: index `top - 1 - i` was accepted.
    seen: [u64; WORDS],
}

impl std::fmt::Debug for MegolmInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegolmInbound").field("generation", &self.generation).field("top", &self.top).finish()
    }
}

fn split_generation(b: &[u8]) -> Result<(u32, &[u8]), ProtoError> {
    let (g, rest) = b.split_first_chunk::<4>().ok_or(ProtoError::Malformed)?;
    Ok((u32::from_le_bytes(*g), rest))
}

impl MegolmInbound {
    /// The inbound session from a shared key ([`MegolmOutbound::session_key`]).
    ///
    /// # Errors
    /// [`ProtoError::BadKey`] when it does not decode or its signature does not verify.
    pub fn from_shared(shared: &[u8]) -> Result<Self, ProtoError> {
        let (generation, key) = split_generation(shared).map_err(|_| ProtoError::BadKey)?;
        let key = SessionKey::from_bytes(key).map_err(|_| ProtoError::BadKey)?;
        Ok(MegolmInbound {
            session: InboundGroupSession::new(&key, SessionConfig::version_1()),
            generation,
            top: 0,
            seen: [0; WORDS],
        })
    }

    /// The generation of the sender's session this is.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The generation a framed group message belongs to.
    ///
    /// # Errors
    /// [`ProtoError::Malformed`] when it is shorter than its generation.
    pub fn generation_of(message: &[u8]) -> Result<u32, ProtoError> {
        split_generation(message).map(|(g, _)| g)
    }

    fn check(&self, index: u32) -> Result<(), ProtoError> {
        if self.top == 0 || index >= self.top {
            return Ok(());
        }
        let back = self.top - 1 - index;
        if back >= REPLAY_WINDOW {
            return Err(ProtoError::TooOld);
        }
        if self.seen[(back / 64) as usize] & (1 << (back % 64)) != 0 {
            return Err(ProtoError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u32) {
        if index >= self.top {
            let shift = index + 1 - self.top;
            shift_left(&mut self.seen, shift);
            self.top = index + 1;
            self.seen[0] |= 1;
        } else {
            let back = self.top - 1 - index;
            self.seen[(back / 64) as usize] |= 1 << (back % 64);
        }
    }

    /// Decrypts a framed group message; returns its plaintext and index.
    ///
    /// # Errors
    /// [`ProtoError::UnknownSession`] (another generation: this member was not given that
    /// session's key), [`ProtoError::Replay`], [`ProtoError::TooOld`], [`ProtoError::Auth`]
    /// (signature or MAC), [`ProtoError::Malformed`]. A refused message changes nothing.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<(Vec<u8>, u32), ProtoError> {
        let (generation, body) = split_generation(message)?;
        if generation != self.generation {
            return Err(ProtoError::UnknownSession);
        }
        self.decrypt_body(body)
    }

    /// Decrypts a message body without looking at its generation: what a member who kept
    /// an old session's key would try. (Tests use it to show that a rotated session's
    /// messages do not verify under the old key.)
    ///
    /// # Errors
    /// As [`MegolmInbound::decrypt`], without `UnknownSession`.
    pub fn decrypt_body(&mut self, body: &[u8]) -> Result<(Vec<u8>, u32), ProtoError> {
        let m = MegolmMessage::from_bytes(body).map_err(|_| ProtoError::Malformed)?;
        let index = m.message_index();
        // Authenticate first: only an authentic message can be a replay.
        let d = self.session.decrypt(&m).map_err(|e| match e {
            DecryptionError::Signature(_) | DecryptionError::InvalidMAC(_) | DecryptionError::InvalidMACLength(..) => {
                ProtoError::Auth
            }
            DecryptionError::InvalidPadding(_) => ProtoError::Auth,
            DecryptionError::UnknownMessageIndex(..) => ProtoError::TooOld,
        })?;
        self.check(index)?;
        self.accept(index);
        Ok((d.plaintext, index))
    }
}

/// Shifts a little-endian bitset left by `n` bits (bits past the end fall off).
fn shift_left(bits: &mut [u64; WORDS], n: u32) {
    if n >= REPLAY_WINDOW {
        *bits = [0; WORDS];
        return;
    }
    let (words, rem) = ((n / 64) as usize, n % 64);
    for i in (0..WORDS).rev() {
        let lo = i.checked_sub(words).map_or(0, |j| bits[j]);
        let lower = i.checked_sub(words + 1).map_or(0, |j| bits[j]);
        bits[i] = if rem == 0 { lo } else { (lo << rem) | (lower >> (64 - rem)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_window_names_replays_and_ages() {
        let mut out = MegolmOutbound::new(0);
        let mut msgs = Vec::new();
        for _ in 0..1100 {
            let mut m = Vec::new();
            out.encrypt(b"x", &mut m);
            msgs.push(m);
        }
        let mut inb = MegolmInbound::from_shared(&{
            let o = MegolmOutbound::new(0);
            o.session_key()
        })
        .unwrap();
        // A session key of another sender: nothing verifies.
        assert_eq!(inb.decrypt(&msgs[0]).map(|_| ()), Err(ProtoError::Auth));
        let mut fresh = MegolmOutbound::new(0);
        let key = fresh.session_key();
        let mut inb = MegolmInbound::from_shared(&key).unwrap();
        let mut sent = Vec::new();
        for _ in 0..1100 {
            let mut m = Vec::new();
            fresh.encrypt(b"y", &mut m);
            sent.push(m);
        }
        assert!(inb.decrypt(&sent[5]).is_ok());
        assert!(inb.decrypt(&sent[3]).is_ok(), "out of order within the window");
        assert_eq!(inb.decrypt(&sent[3]).map(|_| ()), Err(ProtoError::Replay));
        assert_eq!(inb.decrypt(&sent[5]).map(|_| ()), Err(ProtoError::Replay));
        assert!(inb.decrypt(&sent[1090]).is_ok());
        assert_eq!(inb.decrypt(&sent[4]).map(|_| ()), Err(ProtoError::TooOld));
        assert!(inb.decrypt(&sent[1000]).is_ok());
        assert_eq!(inb.decrypt(&sent[1000]).map(|_| ()), Err(ProtoError::Replay));
    }
}
