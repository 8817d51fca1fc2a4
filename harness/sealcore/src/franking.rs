//! Message franking: an end-to-end-encrypted message a recipient can report, and a relay
//! can verify the report of, though the relay never read the message.
//!
//! The scheme is the one Facebook Messenger deployed for Secret Conversations, as analysed
//! by Grubbs, Lu and Ristenpart ("Message Franking via Committing Authenticated
//! Encryption", CRYPTO 2017, §3 "Facebook's scheme"): a compactly committing
//! encrypt-then-commit built from an HMAC over the message.
//!
//! 1. **Sender**: draws a fresh 32-byte franking key `fk`, puts it inside the sealed
//!    plaintext, and sends beside the ciphertext the commitment
//!    `c = HMAC-SHA256(fk, message)` ([`commit`]).
//! 2. **Relay**: stamps what it forwards with `s = HMAC-SHA256(relay secret, c ‖ context)`,
//!    the context being sender, recipient and time ([`RelayKey::stamp`]); it keeps nothing.
//! 3. **Recipient**: after decrypting, checks `c` against the message and `fk` it found
//!    inside ([`verify_commitment`]); a mismatch means the message it read is not the one
//!    committed to (and is not delivered as valid).
//! 4. **Report**: the recipient hands the relay the message, `fk`, `c`, `s` and the context;
//!    the relay recomputes both MACs ([`RelayKey::verify_report`]).
//!
//! Why the commitment matters beyond the AEAD: AES-GCM and ChaCha20-Poly1305 are not
//! key-committing — one ciphertext can open under two keys to two messages ("invisible
//! salamanders", Dodis, Grubbs, Ristenpart, Woodage, CRYPTO 2018), which broke
//! Facebook's attachment franking. The HMAC commitment binds the message itself, so the
//! second opening fails its check (`tests/franking.rs` builds such a ciphertext).
//!
//! Byte layouts and test vectors: `docs/PROTOCOL.md` §6 and `vectors/franking.json`. No
//! allocation: every function writes fixed-size arrays.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of a franking key.
pub const KEY_LEN: usize = 32;
/// Bytes of a commitment, and of a relay stamp.
pub const TAG_LEN: usize = 32;
/// Bytes of a stamp's context as MACed: sender u64 ‖ recipient u64 ‖ time u64, little-endian.
pub const CONTEXT_LEN: usize = 24;

/// Bytes of the franking trailer that ends the body of a franked SEND / DELIVER
/// (`docs/PROTOCOL.md` §6.1): commitment (32) ‖ time_ns u64 (8) ‖ relay stamp (32). The
/// sender writes the commitment and leaves time and stamp zero; the relay fills them in
/// place as it turns the SEND into a DELIVER (no copy, no allocation).
pub const TRAILER_LEN: usize = TAG_LEN + 8 + TAG_LEN;

/// A franking key (inside the sealed plaintext).
pub type FrankingKey = [u8; KEY_LEN];
/// A commitment to a message (beside the ciphertext, readable by the relay).
pub type Commitment = [u8; TAG_LEN];
/// A relay's stamp of a forwarded message.
pub type RelayStamp = [u8; TAG_LEN];

/// What the relay stamps a forwarded message with, beside its commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The sender's relay id.
    pub sender: u64,
    /// The recipient's relay id.
    pub recipient: u64,
    /// When the relay forwarded it (the relay's clock; ns).
    pub time_ns: u64,
}

impl Context {
    /// Its bytes as MACed.
    pub fn to_bytes(self) -> [u8; CONTEXT_LEN] {
        let mut b = [0u8; CONTEXT_LEN];
        b[..8].copy_from_slice(&self.sender.to_le_bytes());
        b[8..16].copy_from_slice(&self.recipient.to_le_bytes());
        b[16..].copy_from_slice(&self.time_ns.to_le_bytes());
        b
    }
}

/// Why a report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportRefusal {
    /// The message and franking key do not give the reported commitment (a message or key
    /// altered after the fact).
    #[error("the reported message does not match its commitment")]
    Commitment,
    /// The relay did not stamp this commitment in this context (a stamp, commitment or
    /// context altered, or never forwarded).
    #[error("the relay's stamp does not verify for this commitment and context")]
    Stamp,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; TAG_LEN] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn mac_verify(key: &[u8], parts: &[&[u8]], tag: &[u8; TAG_LEN]) -> bool {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.verify_slice(tag).is_ok() // constant time
}

/// A fresh franking key from the OS.
///
/// # Errors
/// When the OS has no randomness.
pub fn franking_key() -> Result<FrankingKey, getrandom::Error> {
    let mut k = [0u8; KEY_LEN];
    getrandom::fill(&mut k)?;
    Ok(k)
}

/// The sender's commitment to `message` under `fk`: `HMAC-SHA256(fk, message)`.
#[inline]
pub fn commit(fk: &FrankingKey, message: &[u8]) -> Commitment {
    mac(fk, &[message])
}

/// The recipient's check: `c` commits to `message` under `fk` (constant time).
#[inline]
pub fn verify_commitment(fk: &FrankingKey, message: &[u8], c: &Commitment) -> bool {
    mac_verify(fk, &[message], c)
}

/// The relay's secret for stamping (never leaves the relay).
#[derive(Clone)]
pub struct RelayKey([u8; 32]);

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(…)")
    }
}

impl RelayKey {
    /// A relay key from its 32 secret bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        RelayKey(secret)
    }

    /// A fresh relay key from the OS.
    ///
    /// # Errors
    /// When the OS has no randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)?;
        Ok(RelayKey(k))
    }

    /// The stamp of a forwarded message: `HMAC-SHA256(secret, c ‖ context)`.
    #[inline]
    pub fn stamp(&self, c: &Commitment, ctx: Context) -> RelayStamp {
        mac(&self.0, &[c, &ctx.to_bytes()])
    }

    /// Verifies a report: `message` and `fk` give `c`, and the relay stamped `c` in `ctx`.
    ///
    /// # Errors
    /// [`ReportRefusal`], naming which check failed.
    pub fn verify_report(
        &self,
        message: &[u8],
        fk: &FrankingKey,
        c: &Commitment,
        ctx: Context,
        stamp: &RelayStamp,
    ) -> Result<(), ReportRefusal> {
        if !verify_commitment(fk, message, c) {
            return Err(ReportRefusal::Commitment);
        }
        if !mac_verify(&self.0, &[c, &ctx.to_bytes()], stamp) {
            return Err(ReportRefusal::Stamp);
        }
        Ok(())
    }
}

/// The parts of a franked body: what precedes the trailer, and the trailer's commitment,
/// time and stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer<'a> {
    /// The end-to-end body before the trailer.
    pub body: &'a [u8],
    /// The sender's commitment.
    pub commitment: &'a Commitment,
    /// The relay's time when it forwarded the message (0 before it did).
    pub time_ns: u64,
    /// The relay's stamp (zeros before it forwarded the message).
    pub stamp: &'a RelayStamp,
}

/// Splits a franked body into its end-to-end body and its trailer; None when it is
/// shorter than [`TRAILER_LEN`].
#[inline]
pub fn split_trailer(franked: &[u8]) -> Option<Trailer<'_>> {
    let at = franked.len().checked_sub(TRAILER_LEN)?;
    let (body, t) = franked.split_at(at);
    let (commitment, t) = t.split_first_chunk::<TAG_LEN>()?;
    let (time, stamp) = t.split_first_chunk::<8>()?;
    Some(Trailer { body, commitment, time_ns: u64::from_le_bytes(*time), stamp: stamp.try_into().ok()? })
}

/// Appends the sender's trailer to a franked body: `c`, then zeros where the relay puts
/// its time and stamp.
#[inline]
pub fn put_trailer(out: &mut impl Extend<u8>, c: &Commitment) {
    out.extend(c.iter().copied().chain([0u8; TRAILER_LEN - TAG_LEN]));
}

impl RelayKey {
    /// The relay's step for a franked message it forwards: stamps the commitment in the
    /// trailer that ends `franked` for (`sender`, `recipient`, `time_ns`) and writes the
    /// time and the stamp in place. False (nothing written) when `franked` is shorter
    /// than [`TRAILER_LEN`].
    #[inline]
    pub fn stamp_trailer(&self, franked: &mut [u8], sender: u64, recipient: u64, time_ns: u64) -> bool {
        let Some(at) = franked.len().checked_sub(TRAILER_LEN) else { return false };
        let t = &mut franked[at..];
        let mut c = [0u8; TAG_LEN];
        c.copy_from_slice(&t[..TAG_LEN]);
        let s = self.stamp(&c, Context { sender, recipient, time_ns });
        t[TAG_LEN..TAG_LEN + 8].copy_from_slice(&time_ns.to_le_bytes());
        t[TAG_LEN + 8..].copy_from_slice(&s);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_franked_message_verifies_and_every_altered_part_is_refused_by_name() {
        let (fk, relay) = ([7u8; 32], RelayKey::new([9u8; 32]));
        let msg = b"meet me at the usual place";
        let ctx = Context { sender: 1, recipient: 2, time_ns: 3 };
        let c = commit(&fk, msg);
        assert!(verify_commitment(&fk, msg, &c));
        let s = relay.stamp(&c, ctx);
        assert_eq!(relay.verify_report(msg, &fk, &c, ctx, &s), Ok(()));
        assert_eq!(
            relay.verify_report(b"meet me at another place..", &fk, &c, ctx, &s),
            Err(ReportRefusal::Commitment)
        );
        assert_eq!(relay.verify_report(msg, &[8u8; 32], &c, ctx, &s), Err(ReportRefusal::Commitment));
        let mut s2 = s;
        s2[0] ^= 1;
        assert_eq!(relay.verify_report(msg, &fk, &c, ctx, &s2), Err(ReportRefusal::Stamp));
        let other = Context { sender: 5, ..ctx };
        assert_eq!(relay.verify_report(msg, &fk, &c, other, &s), Err(ReportRefusal::Stamp));
        // Another message committed under another key: its own commitment, not this stamp.
        let c3 = commit(&fk, b"x");
        assert_eq!(relay.verify_report(b"x", &fk, &c3, ctx, &s), Err(ReportRefusal::Stamp));
    }

    #[test]
    fn a_trailer_is_stamped_in_place_and_splits_back() {
        let (fk, relay) = ([7u8; 32], RelayKey::new([9u8; 32]));
        let c = commit(&fk, b"m");
        let mut body = b"e2e".to_vec();
        put_trailer(&mut body, &c);
        assert_eq!(body.len(), 3 + TRAILER_LEN);
        assert!(relay.stamp_trailer(&mut body, 1, 2, 3));
        let t = split_trailer(&body).expect("long enough");
        assert_eq!((t.body, t.commitment, t.time_ns), (&b"e2e"[..], &c, 3));
        let ctx = Context { sender: 1, recipient: 2, time_ns: 3 };
        assert_eq!(relay.verify_report(b"m", &fk, t.commitment, ctx, t.stamp), Ok(()));
        assert!(!relay.stamp_trailer(&mut [0u8; TRAILER_LEN - 1], 1, 2, 3));
        assert_eq!(split_trailer(&[0u8; TRAILER_LEN - 1]), None);
    }
}
