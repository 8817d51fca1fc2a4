//! The end-to-end layer the clients put inside a relay SEND body, and the plaintext layout
//! of a load-test message. The relay never looks inside either.
//!
//! ```text
//! E2E body:   kind u8 | conversation u32 LE | data
//!   kind 1 = handshake message (data = a Noise handshake message)
//!   kind 2 = transport message (data = counter ‖ ciphertext ‖ tag, see `transport`)
//!   kind 3 = sender key: a transport message of a pairwise session whose plaintext
//!            carries a group sender's chain key after the stamp
//!   kind 4 = group message: sealed once with the sender's chain key, fanned out by the
//!            relay (the conversation field holds the group's conversation id)
//!   kind 5 = Olm session set-up: the first (pre-key) Olm message of a session
//!   kind 6 = Olm message (data = type byte ‖ vodozemac's encoding, docs/PROTOCOL.md §5.1)
//!   kind 7 = MLS Welcome (data = the `MLSMessage`, sent to one joining device)
//!   kind 8 = MLS commit (data = the `MLSMessage`, fanned out by the relay to the group)
//!   (an MLS application message is kind 4, a group message, its data the `MLSMessage`)
//! plaintext:  seq u32 | msg u32 | intended_ns u64 | actual_ns u64 | padding up to the size
//!             (zeros, or with `traffic.content = "text"` text the driver writes over them)
//! ```
//!
//! Times are nanoseconds since the sending process's monotonic epoch; both ends of a
//! conversation live in one driver process, so one clock serves both.

/// Bytes before the data in an E2E body.
pub const E2E_HEADER_LEN: usize = 5;
/// Bytes of the timing header at the start of every load-test plaintext.
pub const PLAINTEXT_HEADER_LEN: usize = 24;

/// What an E2E body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum E2eKind {
    /// A Noise handshake message.
    Handshake = 1,
    /// A transport message.
    Transport = 2,
    /// A transport message of a pairwise session carrying a group sender's chain key.
    SenderKey = 3,
    /// A group message sealed with its sender's chain key (relay fan-out).
    Group = 4,
    /// The first Olm message of a session (`crypto.protocol = "olm"`): it creates the
    /// responder's inbound session.
    OlmSetup = 5,
    /// An Olm message of an established session.
    Olm = 6,
    /// An MLS Welcome to one joining device (`crypto.protocol = "mls"`).
    MlsWelcome = 7,
    /// An MLS commit, fanned out to the group by the relay.
    MlsCommit = 8,
    /// A message of a pairwise session without end-to-end encryption (`crypto.protocol =
    /// "plaintext"`): the load-test plaintext itself, UNENCRYPTED.
    Plain = 9,
    /// A group message (relay fan-out) without end-to-end encryption: its plaintext itself.
    PlainGroup = 10,
}

/// Why an E2E body or plaintext could not be parsed or written. Cheap: no allocation, no
/// formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Too short for its header.
    #[error("end-to-end message too short")]
    Short,
    /// Unknown kind byte.
    #[error("unknown end-to-end message kind")]
    UnknownKind(u8),
    /// The output buffer is too small for the header being written.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Writes the E2E header into `out[..E2E_HEADER_LEN]`.
///
/// # Errors
/// [`PayloadError::BufferTooSmall`] when `out` is shorter than [`E2E_HEADER_LEN`]
/// (nothing is written then).
#[inline]
pub fn write_e2e_header(out: &mut [u8], kind: E2eKind, conversation: u32) -> Result<(), PayloadError> {
    let h = out.get_mut(..E2E_HEADER_LEN).ok_or(PayloadError::BufferTooSmall)?;
    h[0] = kind as u8;
    h[1..5].copy_from_slice(&conversation.to_le_bytes());
    Ok(())
}

/// Splits an E2E body into kind, conversation and data.
///
/// # Errors
/// [`PayloadError::Short`], [`PayloadError::UnknownKind`].
#[inline]
pub fn parse_e2e(body: &[u8]) -> Result<(E2eKind, u32, &[u8]), PayloadError> {
    if body.len() < E2E_HEADER_LEN {
        return Err(PayloadError::Short);
    }
    let kind = match body[0] {
        1 => E2eKind::Handshake,
        2 => E2eKind::Transport,
        3 => E2eKind::SenderKey,
        4 => E2eKind::Group,
        5 => E2eKind::OlmSetup,
        6 => E2eKind::Olm,
        7 => E2eKind::MlsWelcome,
        8 => E2eKind::MlsCommit,
        9 => E2eKind::Plain,
        10 => E2eKind::PlainGroup,
        k => return Err(PayloadError::UnknownKind(k)),
    };
    let conv = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
    Ok((kind, conv, &body[E2E_HEADER_LEN..]))
}

/// The timing header of a load-test message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number of the message in its direction of its session (from 0; wraps
    /// after 2^32, far beyond any load run).
    pub seq: u32,
    /// The sender's number for the logical message this copy belongs to: every copy of
    /// one message fanned out to several devices carries the same number (from 0).
    pub msg: u32,
    /// When the schedule said to send it, ns since the epoch.
    pub intended_ns: u64,
    /// When it was actually sealed and handed to the socket, ns since the epoch.
    pub actual_ns: u64,
}

impl Stamp {
    /// Writes the stamp into `out[..PLAINTEXT_HEADER_LEN]` and zeroes the rest (padding).
    ///
    /// # Errors
    /// [`PayloadError::BufferTooSmall`] when `out` is shorter than [`PLAINTEXT_HEADER_LEN`]
    /// (nothing is written then).
    #[inline]
    pub fn write(&self, out: &mut [u8]) -> Result<(), PayloadError> {
        if out.len() < PLAINTEXT_HEADER_LEN {
            return Err(PayloadError::BufferTooSmall);
        }
        out[..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..8].copy_from_slice(&self.msg.to_le_bytes());
        out[8..16].copy_from_slice(&self.intended_ns.to_le_bytes());
        out[16..24].copy_from_slice(&self.actual_ns.to_le_bytes());
        out[PLAINTEXT_HEADER_LEN..].fill(0);
        Ok(())
    }

    /// Reads a stamp from the start of a plaintext.
    ///
    /// # Errors
    /// [`PayloadError::Short`] when the plaintext is shorter than the header.
    #[inline]
    pub fn read(plaintext: &[u8]) -> Result<Self, PayloadError> {
        if plaintext.len() < PLAINTEXT_HEADER_LEN {
            return Err(PayloadError::Short);
        }
        let u = |i: usize| u64::from_le_bytes(plaintext[i..i + 8].try_into().unwrap_or([0; 8]));
        let w = |i: usize| u32::from_le_bytes(plaintext[i..i + 4].try_into().unwrap_or([0; 4]));
        Ok(Stamp { seq: w(0), msg: w(4), intended_ns: u(8), actual_ns: u(16) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_refuse_a_short_buffer_and_write_nothing() {
        let mut out = [0xaau8; E2E_HEADER_LEN - 1];
        assert_eq!(write_e2e_header(&mut out, E2eKind::Transport, 7), Err(PayloadError::BufferTooSmall));
        assert_eq!(out, [0xaa; E2E_HEADER_LEN - 1]);
        let mut out = [0xaau8; PLAINTEXT_HEADER_LEN - 1];
        let stamp = Stamp { seq: 1, msg: 9, intended_ns: 2, actual_ns: 3 };
        assert_eq!(stamp.write(&mut out), Err(PayloadError::BufferTooSmall));
        assert_eq!(out, [0xaa; PLAINTEXT_HEADER_LEN - 1]);
    }

    #[test]
    fn written_headers_parse_back() -> Result<(), PayloadError> {
        let mut body = [0u8; E2E_HEADER_LEN + 3];
        write_e2e_header(&mut body, E2eKind::Handshake, 0x0102_0304)?;
        assert_eq!(parse_e2e(&body)?, (E2eKind::Handshake, 0x0102_0304, &[0u8; 3][..]));
        let mut plaintext = [0xffu8; PLAINTEXT_HEADER_LEN + 8];
        let stamp = Stamp { seq: 5, msg: 8, intended_ns: 6, actual_ns: 7 };
        stamp.write(&mut plaintext)?;
        assert_eq!(Stamp::read(&plaintext)?, stamp);
        assert_eq!(plaintext[PLAINTEXT_HEADER_LEN..], [0u8; 8]);
        Ok(())
    }
}
