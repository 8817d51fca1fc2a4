//! The relay wire protocol: one versioned envelope per binary WebSocket message.
//!
//! Encoding writes into a caller buffer and returns the length; decoding borrows from the
//! input (bodies are sub-slices, never copies). Every malformed input is a typed
//! [`FrameError`], never a panic. `docs/PROTOCOL.md` §4 is the normative description.
//!
//! The three message-carrying frames (`SEND`, `GROUP_SEND`, `DELIVER`) share one 19-byte
//! header layout — `version, type, u64, flags, u64` — so that a relay can turn a `SEND` into
//! a `DELIVER` by rewriting the header in place, without copying the body.

/// Protocol version carried in byte 0 of every frame.
pub const VERSION: u8 = 1;
/// Length of the shared header of SEND / GROUP_SEND / DELIVER.
pub const ROUTED_HEADER_LEN: usize = 19;
/// Bytes of a REPORT before its message: version, type, request id, sender, recipient,
/// time, commitment, stamp, franking key.
pub const REPORT_FIXED_LEN: usize = 2 + 4 * 8 + 3 * 32;
/// Largest key in the key directory (X25519 keys are 32 bytes).
pub const MAX_KEY_LEN: usize = 256;
/// Largest auth token in HELLO.
pub const MAX_TOKEN_LEN: usize = 64;
/// Largest error reason text.
pub const MAX_REASON_LEN: usize = 1024;
/// Largest item of a key pool (an Olm one-time key is 32 bytes, an MLS key package a few
/// hundred).
pub const MAX_POOL_ITEM_LEN: usize = 2048;
/// Most items in one KEYS_PUBLISH.
pub const MAX_POOL_ITEMS: usize = 256;
/// KEYS_PUBLISH flag: the (single) item replaces the pool's fallback.
pub const POOL_FLAG_FALLBACK: u8 = 0x01;
/// Key pool of Olm one-time keys (fallback: the signed fallback key).
pub const POOL_OLM: u8 = 1;
/// Key pool of MLS key packages (fallback: a last-resort key package).
pub const POOL_MLS: u8 = 2;
/// CLAIMED source: a one-time item, handed out once and removed.
pub const CLAIM_ONE_TIME: u8 = 1;
/// CLAIMED source: the pool was empty; this is its fallback (handed out again and again).
pub const CLAIM_FALLBACK: u8 = 2;

/// Flag bit of SEND / GROUP_SEND: the sender wants an ACK once the relay has routed it.
pub const FLAG_ACK: u8 = 0x01;
/// Flag bit of DELIVER: it carries a group message (the second u64 is the group id).
pub const FLAG_GROUP: u8 = 0x02;
/// Flag bit of DELIVER: it was stored in the mailbox while the recipient was offline.
pub const FLAG_STORED: u8 = 0x04;
/// Flag bit of SEND / GROUP_SEND and of the DELIVER made of it: the body ends with a
/// franking trailer ([`crate::franking::TRAILER_LEN`] bytes: commitment ‖ time ‖ stamp)
/// that the relay fills in (`docs/PROTOCOL.md` §6.1).
pub const FLAG_FRANKED: u8 = 0x08;
/// REPORT_RESULT result: the report verified (the relay stamped this commitment in this
/// context, and the message and franking key give the commitment).
pub const REPORT_VERIFIED: u8 = 0;
/// REPORT_RESULT result: refused, the message and franking key do not give the commitment.
pub const REPORT_REFUSED_COMMITMENT: u8 = 1;
/// REPORT_RESULT result: refused, the relay's stamp does not verify for the commitment and context.
pub const REPORT_REFUSED_STAMP: u8 = 2;

/// Frame type codes (byte 1). Client → relay below 0x80, relay → client from 0x80.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameType {
    /// Register a client id (first frame of every connection).
    Hello = 0x01,
    /// Send a body to one client.
    Send = 0x02,
    /// Join a group.
    GroupJoin = 0x03,
    /// Leave a group.
    GroupLeave = 0x04,
    /// Send a body to every other member of a group.
    GroupSend = 0x05,
    /// Publish this client's static public key in the key directory.
    KeyPublish = 0x06,
    /// Fetch a client's static public key.
    KeyFetch = 0x07,
    /// Publish items to one of this client's key pools (one-time keys, key packages) or
    /// its fallback; with no items, ask how many the pool holds.
    KeysPublish = 0x08,
    /// Claim one item of another client's key pool (atomically: each once).
    KeyClaim = 0x09,
    /// Report a franked message to the relay (message, franking key, commitment, stamp,
    /// context): the relay verifies it without having read the message.
    Report = 0x0A,
    /// Registration accepted.
    Welcome = 0x81,
    /// A body from another client (direct or group).
    Deliver = 0x82,
    /// A request was carried out (SEND/GROUP_SEND with the ACK flag, JOIN, LEAVE, PUBLISH).
    Ack = 0x83,
    /// The answer to KEY_FETCH.
    Key = 0x84,
    /// A refused input, with a code and a reason.
    Error = 0x85,
    /// The answer to KEYS_PUBLISH: what the pool holds now.
    PoolStatus = 0x86,
    /// The answer to KEY_CLAIM: the item handed out.
    Claimed = 0x87,
    /// The answer to REPORT: verified, or refused with the check that failed.
    ReportResult = 0x88,
}

impl FrameType {
    /// The type for a type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Send,
            0x03 => FrameType::GroupJoin,
            0x04 => FrameType::GroupLeave,
            0x05 => FrameType::GroupSend,
            0x06 => FrameType::KeyPublish,
            0x07 => FrameType::KeyFetch,
            0x08 => FrameType::KeysPublish,
            0x09 => FrameType::KeyClaim,
            0x0A => FrameType::Report,
            0x81 => FrameType::Welcome,
            0x82 => FrameType::Deliver,
            0x83 => FrameType::Ack,
            0x84 => FrameType::Key,
            0x85 => FrameType::Error,
            0x86 => FrameType::PoolStatus,
            0x87 => FrameType::Claimed,
            0x88 => FrameType::ReportResult,
            _ => return None,
        })
    }
}

/// Error codes of ERROR frames (`docs/PROTOCOL.md` §4.4 says when each is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame could not be decoded (short, lying length, trailing bytes).
    Malformed = 1,
    /// Byte 0 is not a supported version.
    UnsupportedVersion = 2,
    /// Byte 1 is not a known client frame type.
    UnknownType = 3,
    /// A request before a successful HELLO.
    NotRegistered = 4,
    /// A second HELLO on a registered connection.
    AlreadyRegistered = 5,
    /// The HELLO token is wrong or missing (the connection is then closed).
    AuthFailed = 6,
    /// Another connection holds this client id (the new connection is then closed).
    DuplicateId = 7,
    /// The message exceeds the relay's maximum message size.
    TooLarge = 8,
    /// The recipient is offline and its mailbox is full (or no more mailboxes may be made).
    MailboxFull = 9,
    /// GROUP_SEND or GROUP_LEAVE for a group the client is not in.
    NotAMember = 10,
    /// GROUP_JOIN past the per-client group limit.
    TooManyGroups = 11,
    /// GROUP_JOIN of a group that has the maximum number of members.
    GroupFull = 12,
    /// KEY_FETCH of a client that has published no key.
    NoSuchKey = 13,
    /// A text WebSocket message (the protocol is binary only).
    TextFrame = 14,
    /// KEY_PUBLISH with an empty key, or while the relay's key directory is full. (A key
    /// longer than [`MAX_KEY_LEN`] does not decode: that frame gets [`ErrorCode::Malformed`].)
    BadKey = 15,
    /// The recipient could not take the message: its send queue was full, so the relay
    /// disconnected it as a slow consumer. The message was not delivered.
    RecipientOverloaded = 16,
    /// The relay is shutting down.
    ShuttingDown = 17,
    /// Sending to oneself, or using group id 0 / client id 0 (reserved).
    InvalidTarget = 18,
    /// The recipient is offline and is not known to the relay (it has never registered,
    /// or was forgotten past the relay's `max_known_clients`): no mailbox is kept for it.
    UnknownRecipient = 19,
    /// A relay that reads (`sealbench relay --scan-action block`) found a keyword of its
    /// list in the message's plaintext and did not route it (a GROUP_SEND: to no member).
    ContentBlocked = 20,
    /// KEY_CLAIM over the claimer's limits (its claim rate, or its claims of one peer's
    /// pool in the window): nothing was handed out. The connection stays open.
    RateLimited = 21,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownType,
        ErrorCode::NotRegistered,
        ErrorCode::AlreadyRegistered,
        ErrorCode::AuthFailed,
        ErrorCode::DuplicateId,
        ErrorCode::TooLarge,
        ErrorCode::MailboxFull,
        ErrorCode::NotAMember,
        ErrorCode::TooManyGroups,
        ErrorCode::GroupFull,
        ErrorCode::NoSuchKey,
        ErrorCode::TextFrame,
        ErrorCode::BadKey,
        ErrorCode::RecipientOverloaded,
        ErrorCode::ShuttingDown,
        ErrorCode::InvalidTarget,
        ErrorCode::UnknownRecipient,
        ErrorCode::ContentBlocked,
        ErrorCode::RateLimited,
    ];

    /// The code for a number, if known.
    pub fn from_u16(v: u16) -> Option<Self> {
        ErrorCode::ALL.into_iter().find(|c| *c as u16 == v)
    }

    /// A stable snake_case name (metrics labels, result files).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::NotRegistered => "not_registered",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::DuplicateId => "duplicate_id",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::MailboxFull => "mailbox_full",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::TooManyGroups => "too_many_groups",
            ErrorCode::GroupFull => "group_full",
            ErrorCode::NoSuchKey => "no_such_key",
            ErrorCode::TextFrame => "text_frame",
            ErrorCode::BadKey => "bad_key",
            ErrorCode::RecipientOverloaded => "recipient_overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::ContentBlocked => "content_blocked",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

/// Why a frame could not be decoded. Cheap: no allocation, no formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the frame type needs.
    #[error("frame too short")]
    Short,
    /// Byte 0 is not [`VERSION`].
    #[error("unsupported protocol version")]
    Version(u8),
    /// Byte 1 is not a known frame type.
    #[error("unknown frame type")]
    UnknownType(u8),
    /// A length field points past the end of the frame.
    #[error("length field exceeds the frame")]
    BadLength,
    /// Bytes left over after a fixed-size frame.
    #[error("trailing bytes after the frame")]
    Trailing,
    /// A field value is out of range (oversized token/key/reason, invalid UTF-8 reason).
    #[error("field out of range")]
    BadField,
    /// The output buffer is too small for the encoded frame.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl FrameError {
    /// The ERROR code a relay answers this decode failure with.
    pub fn code(self) -> ErrorCode {
        match self {
            FrameError::Version(_) => ErrorCode::UnsupportedVersion,
            FrameError::UnknownType(_) => ErrorCode::UnknownType,
            _ => ErrorCode::Malformed,
        }
    }
}

/// A decoded frame, borrowing its variable-length fields from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// `HELLO client_id, token`.
    Hello {
        /// The id to register (non-zero).
        client_id: u64,
        /// HMAC-SHA256(secret, client_id as u64 LE) when the relay requires auth, else empty.
        token: &'a [u8],
    },
    /// `SEND request_id, flags, recipient, body`.
    Send {
        /// Echoed in ACK / ERROR.
        request_id: u64,
        /// [`FLAG_ACK`].
        flags: u8,
        /// Recipient client id.
        recipient: u64,
        /// Opaque end-to-end bytes.
        body: &'a [u8],
    },
    /// `GROUP_JOIN request_id, group`.
    GroupJoin {
        /// Echoed in ACK / ERROR.
        request_id: u64,
        /// Group id (non-zero).
        group: u64,
    },
    /// `GROUP_LEAVE request_id, group`.
    GroupLeave {
        /// Echoed in ACK / ERROR.
        request_id: u64,
        /// Group id.
        group: u64,
    },
    /// `GROUP_SEND request_id, flags, group, body`.
    GroupSend {
        /// Echoed in ACK / ERROR.
        request_id: u64,
        /// [`FLAG_ACK`].
        flags: u8,
        /// Group id.
        group: u64,
        /// Opaque end-to-end bytes.
        body: &'a [u8],
    },
    /// `KEY_PUBLISH request_id, key`.
    KeyPublish {
        /// Echoed in ACK / ERROR.
        request_id: u64,
        /// The client's static public key.
        key: &'a [u8],
    },
    /// `KEY_FETCH request_id, client`.
    KeyFetch {
        /// Echoed in KEY / ERROR.
        request_id: u64,
        /// Whose key.
        client: u64,
    },
    /// `KEYS_PUBLISH request_id, pool, flags, count, items`.
    KeysPublish {
        /// Echoed in POOL_STATUS / ERROR.
        request_id: u64,
        /// Which pool ([`POOL_OLM`], [`POOL_MLS`]; any non-zero value is a pool).
        pool: u8,
        /// [`POOL_FLAG_FALLBACK`].
        flags: u8,
        /// The items, each `len u16 ‖ bytes` (decoding checked they are well formed;
        /// [`key_items`] walks them).
        items: &'a [u8],
        /// How many items.
        count: u16,
    },
    /// `KEY_CLAIM request_id, client, pool`.
    KeyClaim {
        /// Echoed in CLAIMED / ERROR.
        request_id: u64,
        /// Whose pool.
        client: u64,
        /// Which pool.
        pool: u8,
    },
    /// `POOL_STATUS request_id, pool, available, fallback`.
    PoolStatus {
        /// The KEYS_PUBLISH's request id.
        request_id: u64,
        /// Which pool.
        pool: u8,
        /// One-time items the pool holds now.
        available: u32,
        /// 1 when the pool has a fallback, else 0.
        fallback: u8,
    },
    /// `CLAIMED request_id, client, pool, source, remaining, item`.
    Claimed {
        /// The KEY_CLAIM's request id.
        request_id: u64,
        /// Whose pool.
        client: u64,
        /// Which pool.
        pool: u8,
        /// [`CLAIM_ONE_TIME`] or [`CLAIM_FALLBACK`].
        source: u8,
        /// One-time items left in the pool after this claim.
        remaining: u32,
        /// The item.
        item: &'a [u8],
    },
    /// `WELCOME client_id, stored, max_message`.
    Welcome {
        /// The registered id.
        client_id: u64,
        /// Number of mailbox messages that follow.
        stored: u32,
        /// The relay's maximum message size in bytes.
        max_message: u32,
    },
    /// `DELIVER sender, flags, group, body`.
    Deliver {
        /// Sending client id.
        sender: u64,
        /// [`FLAG_GROUP`], [`FLAG_STORED`].
        flags: u8,
        /// Group id for group messages, else 0.
        group: u64,
        /// Opaque end-to-end bytes.
        body: &'a [u8],
    },
    /// `ACK request_id`.
    Ack {
        /// The acknowledged request.
        request_id: u64,
    },
    /// `KEY request_id, client, key`.
    Key {
        /// The KEY_FETCH's request id.
        request_id: u64,
        /// Whose key.
        client: u64,
        /// The key.
        key: &'a [u8],
    },
    /// `REPORT request_id, sender, recipient, time_ns, commitment, stamp, franking_key, message`.
    Report {
        /// Echoed in REPORT_RESULT / ERROR.
        request_id: u64,
        /// The context the relay stamped: the message's sender…
        sender: u64,
        /// …its recipient (the group id for a group message)…
        recipient: u64,
        /// …and the relay's time when it forwarded it (ns).
        time_ns: u64,
        /// The commitment that travelled beside the ciphertext.
        commitment: &'a [u8; 32],
        /// The relay's stamp from the DELIVER's trailer.
        stamp: &'a [u8; 32],
        /// The franking key found inside the sealed plaintext.
        franking_key: &'a [u8; 32],
        /// The message as the recipient read it (rest of the frame).
        message: &'a [u8],
    },
    /// `REPORT_RESULT request_id, result`.
    ReportResult {
        /// The REPORT's request id.
        request_id: u64,
        /// [`REPORT_VERIFIED`], [`REPORT_REFUSED_COMMITMENT`] or [`REPORT_REFUSED_STAMP`].
        result: u8,
    },
    /// `ERROR request_id, code, reason`.
    Error {
        /// The refused request (0 when none applies).
        request_id: u64,
        /// [`ErrorCode`] as a number (unknown codes decode, for forward compatibility).
        code: u16,
        /// Human-readable UTF-8 reason.
        reason: &'a str,
    },
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, FrameError> {
        let v = *self.b.get(self.at).ok_or(FrameError::Short)?;
        self.at += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(n).ok_or(FrameError::BadLength)?;
        let s = self.b.get(self.at..end).ok_or(FrameError::Short)?;
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| FrameError::Short)?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| FrameError::Short)?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| FrameError::Short)?))
    }
    /// A length-prefixed field whose length field may lie: that is `BadLength`.
    fn sized(&mut self, len: usize, max: usize) -> Result<&'a [u8], FrameError> {
        if len > max {
            return Err(FrameError::BadField);
        }
        if self.b.len() - self.at < len {
            return Err(FrameError::BadLength);
        }
        self.take(len)
    }
    fn tag(&mut self) -> Result<&'a [u8; 32], FrameError> {
        self.take(32)?.try_into().map_err(|_| FrameError::Short)
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    fn end(&self) -> Result<(), FrameError> {
        if self.at == self.b.len() { Ok(()) } else { Err(FrameError::Trailing) }
    }
}

/// Reads only the version and type of a frame (what a router needs first).
///
/// # Errors
/// [`FrameError::Short`], [`FrameError::Version`], [`FrameError::UnknownType`].
pub fn peek_type(bytes: &[u8]) -> Result<FrameType, FrameError> {
    let (&v, rest) = bytes.split_first().ok_or(FrameError::Short)?;
    if v != VERSION {
        return Err(FrameError::Version(v));
    }
    let &t = rest.first().ok_or(FrameError::Short)?;
    FrameType::from_u8(t).ok_or(FrameError::UnknownType(t))
}

/// Decodes one frame.
///
/// # Errors
/// A [`FrameError`] for every malformed input; never panics.
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let ty = peek_type(bytes)?;
    let mut r = Reader { b: bytes, at: 2 };
    let frame = match ty {
        FrameType::Hello => {
            let client_id = r.u64()?;
            let n = r.u8()? as usize;
            let token = r.sized(n, MAX_TOKEN_LEN)?;
            Frame::Hello { client_id, token }
        }
        FrameType::Send | FrameType::GroupSend | FrameType::Deliver => {
            let a = r.u64()?;
            let flags = r.u8()?;
            let b = r.u64()?;
            let body = r.rest();
            match ty {
                FrameType::Send => Frame::Send { request_id: a, flags, recipient: b, body },
                FrameType::GroupSend => Frame::GroupSend { request_id: a, flags, group: b, body },
                _ => Frame::Deliver { sender: a, flags, group: b, body },
            }
        }
        FrameType::GroupJoin => Frame::GroupJoin { request_id: r.u64()?, group: r.u64()? },
        FrameType::GroupLeave => Frame::GroupLeave { request_id: r.u64()?, group: r.u64()? },
        FrameType::KeyPublish => {
            let request_id = r.u64()?;
            let n = r.u16()? as usize;
            Frame::KeyPublish { request_id, key: r.sized(n, MAX_KEY_LEN)? }
        }
        FrameType::KeyFetch => Frame::KeyFetch { request_id: r.u64()?, client: r.u64()? },
        FrameType::KeysPublish => {
            let request_id = r.u64()?;
            let pool = r.u8()?;
            let flags = r.u8()?;
            let count = r.u16()?;
            if count as usize > MAX_POOL_ITEMS {
                return Err(FrameError::BadField);
            }
            let start = r.at;
            for _ in 0..count {
                let n = r.u16()? as usize;
                r.sized(n, MAX_POOL_ITEM_LEN)?;
            }
            Frame::KeysPublish { request_id, pool, flags, items: &bytes[start..r.at], count }
        }
        FrameType::KeyClaim => Frame::KeyClaim { request_id: r.u64()?, client: r.u64()?, pool: r.u8()? },
        FrameType::PoolStatus => {
            Frame::PoolStatus { request_id: r.u64()?, pool: r.u8()?, available: r.u32()?, fallback: r.u8()? }
        }
        FrameType::Claimed => {
            let (request_id, client, pool, source, remaining) = (r.u64()?, r.u64()?, r.u8()?, r.u8()?, r.u32()?);
            let n = r.u16()? as usize;
            Frame::Claimed { request_id, client, pool, source, remaining, item: r.sized(n, MAX_POOL_ITEM_LEN)? }
        }
        FrameType::Report => {
            let (request_id, sender, recipient, time_ns) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let (commitment, stamp, franking_key) = (r.tag()?, r.tag()?, r.tag()?);
            let message = r.rest();
            Frame::Report { request_id, sender, recipient, time_ns, commitment, stamp, franking_key, message }
        }
        FrameType::ReportResult => Frame::ReportResult { request_id: r.u64()?, result: r.u8()? },
        FrameType::Welcome => Frame::Welcome { client_id: r.u64()?, stored: r.u32()?, max_message: r.u32()? },
        FrameType::Ack => Frame::Ack { request_id: r.u64()? },
        FrameType::Key => {
            let request_id = r.u64()?;
            let client = r.u64()?;
            let n = r.u16()? as usize;
            Frame::Key { request_id, client, key: r.sized(n, MAX_KEY_LEN)? }
        }
        FrameType::Error => {
            let request_id = r.u64()?;
            let code = r.u16()?;
            let n = r.u16()? as usize;
            let reason = core::str::from_utf8(r.sized(n, MAX_REASON_LEN)?).map_err(|_| FrameError::BadField)?;
            Frame::Error { request_id, code, reason }
        }
    };
    r.end()?;
    Ok(frame)
}

struct Writer<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, s: &[u8]) -> Result<(), FrameError> {
        let end = self.at + s.len();
        self.b.get_mut(self.at..end).ok_or(FrameError::BufferTooSmall)?.copy_from_slice(s);
        self.at = end;
        Ok(())
    }
}

impl Frame<'_> {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello { .. } => FrameType::Hello,
            Frame::Send { .. } => FrameType::Send,
            Frame::GroupJoin { .. } => FrameType::GroupJoin,
            Frame::GroupLeave { .. } => FrameType::GroupLeave,
            Frame::GroupSend { .. } => FrameType::GroupSend,
            Frame::KeyPublish { .. } => FrameType::KeyPublish,
            Frame::KeyFetch { .. } => FrameType::KeyFetch,
            Frame::KeysPublish { .. } => FrameType::KeysPublish,
            Frame::KeyClaim { .. } => FrameType::KeyClaim,
            Frame::PoolStatus { .. } => FrameType::PoolStatus,
            Frame::Claimed { .. } => FrameType::Claimed,
            Frame::Welcome { .. } => FrameType::Welcome,
            Frame::Deliver { .. } => FrameType::Deliver,
            Frame::Ack { .. } => FrameType::Ack,
            Frame::Key { .. } => FrameType::Key,
            Frame::Error { .. } => FrameType::Error,
            Frame::Report { .. } => FrameType::Report,
            Frame::ReportResult { .. } => FrameType::ReportResult,
        }
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        2 + match self {
            Frame::Hello { token, .. } => 9 + token.len(),
            Frame::Send { body, .. } | Frame::GroupSend { body, .. } | Frame::Deliver { body, .. } => 17 + body.len(),
            Frame::GroupJoin { .. } | Frame::GroupLeave { .. } | Frame::KeyFetch { .. } => 16,
            Frame::KeyPublish { key, .. } => 10 + key.len(),
            Frame::Welcome { .. } => 16,
            Frame::Ack { .. } => 8,
            Frame::Key { key, .. } => 18 + key.len(),
            Frame::Error { reason, .. } => 12 + reason.len(),
            Frame::KeysPublish { items, .. } => 12 + items.len(),
            Frame::KeyClaim { .. } => 17,
            Frame::PoolStatus { .. } => 14,
            Frame::Claimed { item, .. } => 24 + item.len(),
            Frame::Report { message, .. } => REPORT_FIXED_LEN - 2 + message.len(),
            Frame::ReportResult { .. } => 9,
        }
    }

    /// Encodes into `out`; returns the number of bytes written.
    ///
    /// # Errors
    /// [`FrameError::BufferTooSmall`]; [`FrameError::BadField`] for a token, key or reason
    /// longer than the protocol allows.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, FrameError> {
        let mut w = Writer { b: out, at: 0 };
        w.put(&[VERSION, self.frame_type() as u8])?;
        match *self {
            Frame::Hello { client_id, token } => {
                if token.len() > MAX_TOKEN_LEN {
                    return Err(FrameError::BadField);
                }
                w.put(&client_id.to_le_bytes())?;
                w.put(&[token.len() as u8])?;
                w.put(token)?;
            }
            Frame::Send { request_id: a, flags, recipient: b, body }
            | Frame::GroupSend { request_id: a, flags, group: b, body }
            | Frame::Deliver { sender: a, flags, group: b, body } => {
                w.put(&a.to_le_bytes())?;
                w.put(&[flags])?;
                w.put(&b.to_le_bytes())?;
                w.put(body)?;
            }
            Frame::GroupJoin { request_id, group } | Frame::GroupLeave { request_id, group } => {
                w.put(&request_id.to_le_bytes())?;
                w.put(&group.to_le_bytes())?;
            }
            Frame::KeyFetch { request_id, client } => {
                w.put(&request_id.to_le_bytes())?;
                w.put(&client.to_le_bytes())?;
            }
            Frame::KeyPublish { request_id, key } => {
                if key.len() > MAX_KEY_LEN {
                    return Err(FrameError::BadField);
                }
                w.put(&request_id.to_le_bytes())?;
                w.put(&(key.len() as u16).to_le_bytes())?;
                w.put(key)?;
            }
            Frame::Welcome { client_id, stored, max_message } => {
                w.put(&client_id.to_le_bytes())?;
                w.put(&stored.to_le_bytes())?;
                w.put(&max_message.to_le_bytes())?;
            }
            Frame::Ack { request_id } => w.put(&request_id.to_le_bytes())?,
            Frame::Key { request_id, client, key } => {
                if key.len() > MAX_KEY_LEN {
                    return Err(FrameError::BadField);
                }
                w.put(&request_id.to_le_bytes())?;
                w.put(&client.to_le_bytes())?;
                w.put(&(key.len() as u16).to_le_bytes())?;
                w.put(key)?;
            }
            Frame::KeysPublish { request_id, pool, flags, items, count } => {
                if count as usize > MAX_POOL_ITEMS || key_items(items).count() != count as usize {
                    return Err(FrameError::BadField);
                }
                w.put(&request_id.to_le_bytes())?;
                w.put(&[pool, flags])?;
                w.put(&count.to_le_bytes())?;
                w.put(items)?;
            }
            Frame::KeyClaim { request_id, client, pool } => {
                w.put(&request_id.to_le_bytes())?;
                w.put(&client.to_le_bytes())?;
                w.put(&[pool])?;
            }
            Frame::PoolStatus { request_id, pool, available, fallback } => {
                w.put(&request_id.to_le_bytes())?;
                w.put(&[pool])?;
                w.put(&available.to_le_bytes())?;
                w.put(&[fallback])?;
            }
            Frame::Claimed { request_id, client, pool, source, remaining, item } => {
                if item.len() > MAX_POOL_ITEM_LEN {
                    return Err(FrameError::BadField);
                }
                w.put(&request_id.to_le_bytes())?;
                w.put(&client.to_le_bytes())?;
                w.put(&[pool, source])?;
                w.put(&remaining.to_le_bytes())?;
                w.put(&(item.len() as u16).to_le_bytes())?;
                w.put(item)?;
            }
            Frame::Report { request_id, sender, recipient, time_ns, commitment, stamp, franking_key, message } => {
                for v in [request_id, sender, recipient, time_ns] {
                    w.put(&v.to_le_bytes())?;
                }
                for t in [commitment, stamp, franking_key] {
                    w.put(t)?;
                }
                w.put(message)?;
            }
            Frame::ReportResult { request_id, result } => {
                w.put(&request_id.to_le_bytes())?;
                w.put(&[result])?;
            }
            Frame::Error { request_id, code, reason } => {
                if reason.len() > MAX_REASON_LEN {
                    return Err(FrameError::BadField);
                }
                w.put(&request_id.to_le_bytes())?;
                w.put(&code.to_le_bytes())?;
                w.put(&(reason.len() as u16).to_le_bytes())?;
                w.put(reason.as_bytes())?;
            }
        }
        Ok(w.at)
    }
}

/// Rewrites, in place, the header of a SEND (or GROUP_SEND) frame into the header of the
/// DELIVER the recipient gets: `sender` replaces the request id, flags become `flags`, and
/// the second u64 becomes `group` (0 for a direct message). The body is not touched.
///
/// # Errors
/// [`FrameError::Short`] if `frame` is shorter than [`ROUTED_HEADER_LEN`].
#[inline]
pub fn rewrite_as_deliver(frame: &mut [u8], sender: u64, flags: u8, group: u64) -> Result<(), FrameError> {
    let h = frame.get_mut(..ROUTED_HEADER_LEN).ok_or(FrameError::Short)?;
    h[0] = VERSION;
    h[1] = FrameType::Deliver as u8;
    h[2..10].copy_from_slice(&sender.to_le_bytes());
    h[10] = flags;
    h[11..19].copy_from_slice(&group.to_le_bytes());
    Ok(())
}

/// Writes the header of a SEND into `out[..ROUTED_HEADER_LEN]`, so that a client can seal
/// the body directly behind it in the same buffer.
///
/// # Errors
/// [`FrameError::BufferTooSmall`].
#[inline]
pub fn write_send_header(out: &mut [u8], request_id: u64, flags: u8, recipient: u64) -> Result<(), FrameError> {
    let h = out.get_mut(..ROUTED_HEADER_LEN).ok_or(FrameError::BufferTooSmall)?;
    h[0] = VERSION;
    h[1] = FrameType::Send as u8;
    h[2..10].copy_from_slice(&request_id.to_le_bytes());
    h[10] = flags;
    h[11..19].copy_from_slice(&recipient.to_le_bytes());
    Ok(())
}

/// Writes the header of a GROUP_SEND into `out[..ROUTED_HEADER_LEN]` (the body follows it,
/// as with [`write_send_header`]).
///
/// # Errors
/// [`FrameError::BufferTooSmall`].
#[inline]
pub fn write_group_send_header(out: &mut [u8], request_id: u64, flags: u8, group: u64) -> Result<(), FrameError> {
    write_send_header(out, request_id, flags, group)?;
    out[1] = FrameType::GroupSend as u8;
    Ok(())
}

/// The items of a KEYS_PUBLISH (`len u16 ‖ bytes`, repeated), in order. Stops at the first
/// item that does not fit (a decoded frame's items always fit).
pub fn key_items(items: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let n = u16::from_le_bytes(*len) as usize;
        let item = tail.get(..n)?;
        rest = &tail[n..];
        Some(item)
    })
}

/// Appends the items of a KEYS_PUBLISH to `out` (`len u16 ‖ bytes` each).
///
/// # Errors
/// [`FrameError::BadField`] for an item longer than [`MAX_POOL_ITEM_LEN`].
pub fn put_key_items<'a>(items: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) -> Result<u16, FrameError> {
    let mut n = 0u16;
    for item in items {
        if item.len() > MAX_POOL_ITEM_LEN || n as usize >= MAX_POOL_ITEMS {
            return Err(FrameError::BadField);
        }
        out.extend_from_slice(&(item.len() as u16).to_le_bytes());
        out.extend_from_slice(item);
        n += 1;
    }
    Ok(n)
}

/// The token a client presents in HELLO when the relay runs with an auth secret:
/// HMAC-SHA256(secret, client_id as u64 little-endian).
pub fn auth_token(secret: &[u8], client_id: u64) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&client_id.to_le_bytes());
    mac.finalize().into_bytes().into()
}

/// Checks a HELLO token in constant time.
pub fn verify_auth_token(secret: &[u8], client_id: u64, token: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&client_id.to_le_bytes());
    mac.verify_slice(token).is_ok()
}
