//! One error type for every adapter: a message that could not be decrypted or processed is
//! classified under a stable name, so that a load run counts it, never drops it silently.

/// Why a protocol operation failed. Cheap to return: no allocation, no formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes do not decode as a message of this protocol.
    #[error("malformed protocol message")]
    Malformed,
    /// The message was already decrypted once (its key is spent).
    #[error("replayed message")]
    Replay,
    /// The message's key was discarded: too far behind the ratchet, or outside the
    /// library's window of skipped keys.
    #[error("message too old for the ratchet's window")]
    TooOld,
    /// The message is further ahead than the library allows to skip.
    #[error("message too far ahead")]
    TooFarAhead,
    /// Authentication failed (MAC, AEAD tag or signature).
    #[error("authentication failed")]
    Auth,
    /// The message belongs to a session or group session this end does not hold (never
    /// shared with it, or rotated away from it).
    #[error("unknown session")]
    UnknownSession,
    /// MLS: the message is from an epoch whose secrets this member no longer holds.
    #[error("message from an old epoch")]
    OldEpoch,
    /// MLS: the message is from an epoch this member has not reached yet.
    #[error("message from a future epoch")]
    FutureEpoch,
    /// MLS: this member is not (or no longer) in the group.
    #[error("not a member of the group")]
    NotMember,
    /// A claimed key did not verify (a forged or corrupted fallback key).
    #[error("bad key")]
    BadKey,
    /// The one-time key a pre-key message names is not (or no longer) held.
    #[error("one-time key not held")]
    MissingOneTimeKey,
    /// The library refused for another reason (its own error is not carried: callers
    /// count, they do not format per message).
    #[error("protocol library error")]
    Library,
}

impl ProtoError {
    /// A stable snake_case name (counters, result files).
    pub fn name(self) -> &'static str {
        match self {
            ProtoError::Malformed => "malformed",
            ProtoError::Replay => "replay",
            ProtoError::TooOld => "too_old",
            ProtoError::TooFarAhead => "too_far_ahead",
            ProtoError::Auth => "auth_failed",
            ProtoError::UnknownSession => "unknown_session",
            ProtoError::OldEpoch => "old_epoch",
            ProtoError::FutureEpoch => "future_epoch",
            ProtoError::NotMember => "not_member",
            ProtoError::BadKey => "bad_key",
            ProtoError::MissingOneTimeKey => "missing_one_time_key",
            ProtoError::Library => "library",
        }
    }
}
