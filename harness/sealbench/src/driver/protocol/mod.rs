//! The session protocols a simulated device speaks end to end, behind one seam.
//!
//! A protocol is one file here: a type that implements [`SessionProtocol`] — what happens
//! when a device comes up, when the relay answers one of its set-up requests, when an
//! end-to-end body arrives, and how a relay-fan-out group's message is sealed — and one
//! arm of [`Protocol`], the enum the shard holds (dispatched by `match`: no `dyn` call per
//! message). A handler never touches sockets: it writes its effects into the [`Ctx`] it is
//! handed (frames to send, deliveries, counters, histograms), so each protocol is tested
//! without sockets (`tests` below, through a recording [`Outlet`]).
//!
//! What every protocol shares is not here: the shard routes frames and schedules sends
//! and never asks which protocol it runs; the pairwise sessions ([`pairwise`]) seal and
//! open the same way whichever protocol set them up, through the [`Cipher`] its end holds.
//!
//! # Adding a protocol
//! One file here with a type that implements [`SessionProtocol`] (see `plaintext.rs`, the
//! smallest), an arm in [`Protocol`] (and in [`Cipher`] if it has pairwise ends of its
//! own), its value in `sealproto::Protocol` (the scenario's `crypto.protocol`), and its
//! E2E kinds in `sealcore::payload::E2eKind` if it needs new ones; then its tests in
//! `tests.rs` (the relay in miniature carries its set-up) and its bytes in
//! `docs/PROTOCOL.md` §5. Options it needs go into `scenario::ProtocolPlan`.
//!
//! # Layout
//! - [`noise`] — Noise handshakes end to end (IK / NK fetch the responder's key first),
//!   and relay-fan-out groups over sender keys handed out on the Noise sessions.
//! - `olm` — Olm sessions from published one-time keys (vodozemac); `olm/end` one end.
//! - `megolm` — Megolm groups whose keys travel over its own Olm sessions; `megolm/group`.
//! - `mls` — MLS groups (openmls): key packages, Welcome, commits; `mls/group`.
//! - [`plaintext`] — no end-to-end encryption at all: the relay could read every message.
//! - [`pairwise`] — one pairwise session's two ends, sealing and opening.
//! - [`franking`] — message franking (`crypto.franking`), pairwise and in Noise groups: the
//!   franking key sealed inside, the commitment beside, checked on opening, reported.

pub mod context;
pub mod franking;
#[cfg(feature = "megolm")]
mod megolm;
#[cfg(feature = "mls")]
mod mls;
pub mod noise;
#[cfg(feature = "olm")]
mod olm;
pub mod pairwise;
pub mod plaintext;
#[cfg(test)]
mod tests;

pub use context::{Body, Ctx, Device, Outlet};
pub use pairwise::{Conversation, Timed};

use crate::driver::chat::Chat;
use crate::driver::content::Text;
use crate::driver::wire::Incoming;
use crate::scenario::ProtocolPlan;
use bytes::BytesMut;
use sealcore::payload::{E2eKind, Stamp};
use sealcore::{OpenError, SealError};

/// A session protocol: its set-up, what it does with what arrives, and how it seals a
/// relay-fan-out group's message. Pairwise messages (1:1 and client fan-out) are sealed
/// and opened by the session's [`Cipher`], whichever protocol set it up.
pub trait SessionProtocol {
    /// Device `client` registered (its first connection, or back after leaving): publish
    /// what it must, and begin the set-up of whatever it now can.
    fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64);

    /// A relay answer to one of this protocol's set-up requests (a key, a claimed item, a
    /// pool's status, a refusal). Returns false when it is not one of them.
    fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool;

    /// An end-to-end body delivered to `client` (opened in place: `body.data` is a copy).
    fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64);

    /// Relay fan-out: what is due in group `chat` before its next message (a commit, a
    /// member leaving).
    fn before_group_send(&mut self, _cx: &mut Ctx<'_>, _chat: usize) {}

    /// Relay fan-out: whether the device at position `to` of group `chat` is a recipient of
    /// what the device at `sender` sends now.
    fn recipient(&self, _chat: usize, sender: usize, to: usize) -> bool {
        sender != to
    }

    /// Relay fan-out: seals message `m` of the device at `pos` of group `chat` into a
    /// complete GROUP_SEND frame in `out`.
    ///
    /// # Errors
    /// When the group has no sealing state for that device, or its cipher refuses.
    fn seal_group(
        &mut self,
        cx: &mut Ctx<'_>,
        chat: usize,
        pos: usize,
        m: Timed,
        out: &mut BytesMut,
    ) -> Result<(), SealError>;

    /// Relay fan-out: whether group `chat` carries messages without pairwise sessions
    /// (MLS, once created); groups of the others need one of their sessions up.
    fn group_up(&self, _chat: usize) -> bool {
        false
    }
}

/// The protocol a shard runs: one arm per protocol, dispatched by `match`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Protocol {
    /// Noise sessions, sender-key groups.
    Noise(noise::Noise),
    /// Olm sessions.
    #[cfg(feature = "olm")]
    Olm(olm::Olm),
    /// Megolm groups over Olm sessions.
    #[cfg(feature = "megolm")]
    Megolm(megolm::Megolm),
    /// MLS groups.
    #[cfg(feature = "mls")]
    Mls(mls::Mls),
    /// No end-to-end encryption.
    Plaintext(plaintext::Plaintext),
}

/// Runs `$e` with `$p` bound to the protocol inside `$self`.
macro_rules! each {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Protocol::Noise($p) => $e,
            #[cfg(feature = "olm")]
            Protocol::Olm($p) => $e,
            #[cfg(feature = "megolm")]
            Protocol::Megolm($p) => $e,
            #[cfg(feature = "mls")]
            Protocol::Mls($p) => $e,
            Protocol::Plaintext($p) => $e,
        }
    };
}

impl Protocol {
    /// The shard's protocol state for its `chats`, `devices` and `sessions` pairwise
    /// sessions (built by the layout), as `plan` says.
    ///
    /// # Errors
    /// When the OS has no randomness for group keys, or a library cannot make a member.
    pub fn new(plan: &ProtocolPlan, chats: &[Chat], devices: &[Device], sessions: usize) -> Result<Protocol, String> {
        use sealproto::Protocol as P;
        let _ = sessions;
        Ok(match plan.protocol {
            #[cfg(feature = "olm")]
            P::Olm => Protocol::Olm(olm::Olm::new(devices.len(), sessions)),
            #[cfg(feature = "megolm")]
            P::Megolm => Protocol::Megolm(megolm::Megolm::new(plan, chats, devices.len(), sessions)),
            #[cfg(feature = "mls")]
            P::Mls => Protocol::Mls(mls::Mls::new(plan, chats, devices)?),
            P::Plaintext => Protocol::Plaintext(plaintext::Plaintext::new(chats)),
            _ => Protocol::Noise(noise::Noise::new(plan, chats).map_err(|e| format!("no randomness: {e}"))?),
        })
    }

    /// Group keys (or joins) this shard's groups expect before the set-up is over.
    pub fn keys_expected(plan: &ProtocolPlan, chats: &[Chat]) -> usize {
        let per_group = |c: &Chat| match plan.protocol {
            sealproto::Protocol::Mls => c.devices - 1, // Welcomes to process
            sealproto::Protocol::Plaintext => 0,       // nothing to hand out
            _ => c.sending * (c.devices - 1),
        };
        chats.iter().filter(|c| c.relay_fanout()).map(per_group).sum()
    }

    /// See [`SessionProtocol::device_up`].
    pub fn device_up(&mut self, cx: &mut Ctx<'_>, client: usize, now: u64) {
        each!(self, p => p.device_up(cx, client, now))
    }

    /// See [`SessionProtocol::on_reply`].
    pub fn on_reply(&mut self, cx: &mut Ctx<'_>, frame: &Incoming<'_>, now: u64) -> bool {
        each!(self, p => p.on_reply(cx, frame, now))
    }

    /// See [`SessionProtocol::on_body`].
    #[inline]
    pub fn on_body(&mut self, cx: &mut Ctx<'_>, client: usize, body: Body<'_>, now: u64) {
        each!(self, p => p.on_body(cx, client, body, now))
    }

    /// See [`SessionProtocol::before_group_send`].
    #[inline]
    pub fn before_group_send(&mut self, cx: &mut Ctx<'_>, chat: usize) {
        each!(self, p => p.before_group_send(cx, chat))
    }

    /// See [`SessionProtocol::recipient`].
    #[inline]
    pub fn recipient(&self, chat: usize, sender: usize, to: usize) -> bool {
        each!(self, p => p.recipient(chat, sender, to))
    }

    /// See [`SessionProtocol::seal_group`].
    ///
    /// # Errors
    /// As the protocol's.
    #[inline]
    pub fn seal_group(
        &mut self,
        cx: &mut Ctx<'_>,
        chat: usize,
        pos: usize,
        m: Timed,
        out: &mut BytesMut,
    ) -> Result<(), SealError> {
        each!(self, p => p.seal_group(cx, chat, pos, m, out))
    }

    /// See [`SessionProtocol::group_up`].
    pub fn group_up(&self, chat: usize) -> bool {
        each!(self, p => p.group_up(chat))
    }
}

/// What protects one end of a pairwise session once its protocol has set it up: the
/// per-message enum (one arm per protocol that has pairwise sessions).
///
/// The Noise variant (~450 B: both halves, the replay window) stays inline: the end is
/// boxed already, and boxing the transport too would add a pointer chase to every message.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Cipher {
    /// A Noise transport.
    Noise(noise::NoiseEnd),
    /// An Olm session.
    #[cfg(feature = "olm")]
    Olm(Box<olm::OlmEnd>),
    /// No cipher: the plaintext travels as it is.
    Plain(plaintext::PlainEnd),
}

impl Cipher {
    /// The E2E kind of a conversation message it seals.
    #[inline]
    pub fn message_kind(&self) -> E2eKind {
        match self {
            Cipher::Noise(_) => E2eKind::Transport,
            #[cfg(feature = "olm")]
            Cipher::Olm(_) => E2eKind::Olm,
            Cipher::Plain(_) => E2eKind::Plain,
        }
    }

    /// Appends the sealed message to `out` (which holds the frame's headers, up to
    /// [`pairwise::TRANSPORT_AT`]): a plaintext of `size` bytes that starts with `stamp`,
    /// then `extra`, then `text` (zeros, or the message's words).
    ///
    /// # Errors
    /// When the cipher refuses (counter exhausted) or the plaintext cannot hold the stamp.
    #[inline]
    pub fn seal(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        extra: &[u8],
        text: Text<'_>,
    ) -> Result<(), SealError> {
        match self {
            Cipher::Noise(e) => e.seal(out, size, stamp, extra, text),
            #[cfg(feature = "olm")]
            Cipher::Olm(e) => e.seal_timed(out, size, stamp, extra, text),
            Cipher::Plain(e) => e.seal(out, size, stamp, extra, text),
        }
    }

    /// As [`Cipher::seal`] for a franked message (`crypto.franking`): seals the plaintext
    /// followed by `fk`, and returns the commitment to the plaintext (and, when `timed`,
    /// the time committing took, ns). Noise transports only (the plan allows no other).
    ///
    /// # Errors
    /// As [`Cipher::seal`]; [`SealError::Aead`] for a cipher that does not frank.
    #[inline]
    pub fn seal_franked(
        &mut self,
        out: &mut BytesMut,
        size: usize,
        stamp: Stamp,
        fk: &sealcore::franking::FrankingKey,
        text: Text<'_>,
        timed: bool,
    ) -> Result<(sealcore::franking::Commitment, Option<u64>), SealError> {
        match self {
            Cipher::Noise(e) => e.seal_franked(out, size, stamp, fk, text, timed),
            _ => Err(SealError::Aead),
        }
    }

    /// Opens a message in place; returns its plaintext.
    ///
    /// # Errors
    /// The cipher's refusal (`Replay`, `Auth`, `TooOld`, ...).
    #[inline]
    pub fn open<'a>(&mut self, data: &'a mut [u8]) -> Result<&'a mut [u8], OpenError> {
        match self {
            Cipher::Noise(e) => e.open(data),
            #[cfg(feature = "olm")]
            Cipher::Olm(e) => e.open(data),
            Cipher::Plain(e) => e.open(data),
        }
    }
}
