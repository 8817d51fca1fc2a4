//! The wire protocol the driver's clients speak to their target, behind one seam: the
//! target's choice ([`Wire`], `relay.wire` in a scenario), what each wire can do (its
//! [`Capabilities`], which the scenario's plan checks before anything connects), and one
//! file per wire — [`sealbench`] (the reference relay's own protocol, `docs/PROTOCOL.md`),
//! [`mqtt`] (MQTT 3.1.1 over WebSocket, `docs/TARGETS.md`) and [`xmpp`] (XMPP over
//! WebSocket, RFC 7395, `docs/TARGETS.md`). A wire is a sans-IO
//! codec ([`RelayProtocol`]); [`Wire`] dispatches to it by `match` (no `dyn` call per
//! message). Adding a wire is a file, a [`Wire`] arm and a row of the capability table.
//!
//! Frames are written body first: a sender seals the end-to-end body at [`BODY_AT`] of its
//! buffer, behind [`HEADER_ROOM`] bytes kept free, and the wire then writes its header
//! (whose length may depend on the body's, as MQTT's remaining length does) right in front
//! of the body and advances the buffer to it ([`Wire::finish_send`]) — no copy, no
//! allocation.
//!
//! Also here: [`RequestId`], the driver's own bookkeeping carried in every frame's
//! request id (the relay echoes it in ACK and ERROR frames), encoded and decoded once.
//!
//! This module imports nothing of the crate above it: the scenario's plan reads the
//! choice and the capability table from here.
//!
//! # Layout
//! - [`sealbench`] — sealbench's relay protocol, version 1 (and its key directory).
//! - [`mqtt`] — MQTT 3.1.1 over WebSocket (Mosquitto): a hand-written codec.
//! - [`xmpp`] — XMPP over WebSocket (RFC 7395; Prosody): a hand-written codec, text frames.

pub mod mqtt;
pub mod sealbench;
pub mod xmpp;

pub use crate::target::{Capabilities, Capability, Wire};
pub use mqtt::Mqtt311;
pub use sealbench::Sealbench1;
pub use xmpp::Xmpp;

use bytes::BytesMut;
use sealcore::frame::{self, FrameError};

/// Longest decimal u64 (the digits of a device id in a topic or an address).
pub(crate) const MAX_DIGITS: usize = 20;

/// Writes `v` in decimal into the end of `buf`; returns where it starts.
pub(crate) fn decimal(mut v: u64, buf: &mut [u8; MAX_DIGITS]) -> usize {
    let mut at = MAX_DIGITS;
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return at;
        }
    }
}

/// Which end of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Starts the handshake.
    Initiator,
    /// Answers it.
    Responder,
}

impl Side {
    /// Both sides, initiator first.
    pub const BOTH: [Side; 2] = [Side::Initiator, Side::Responder];

    /// 0 for the initiator, 1 for the responder (index into per-side arrays).
    pub fn index(self) -> usize {
        match self {
            Side::Initiator => 0,
            Side::Responder => 1,
        }
    }

    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        }
    }
}

/// The relay group id of conversation `chat` (0 is reserved).
pub fn group_id(chat: u32) -> u64 {
    u64::from(chat) + 1
}

/// What a request id refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestId {
    /// A transport message: its conversation, sending side and sequence number (the low
    /// [`RequestId::SEQ_BITS`] bits of it).
    Message {
        /// Global conversation id.
        conv: u32,
        /// Who sent it.
        side: Side,
        /// Sequence number, truncated to `SEQ_BITS`.
        seq: u64,
    },
    /// A handshake message or key-directory request of a conversation (local or global
    /// index, as the sender chose).
    Control(u32),
    /// A group message (relay fan-out) of a conversation.
    Group(u32),
    /// A set-up operation of one device (a session protocol's key publication, a claim of
    /// that device's key, a message to it), by its local index.
    Device(DeviceOp, u32),
    /// Anything else (0: the relay could not tell which request an error belongs to).
    Unknown,
}

/// What a [`RequestId::Device`] request does (a session protocol's set-up operations,
/// told apart in the relay's answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    /// The device publishes keys (an identity, a key pool's items, a key package); the
    /// answer tells that they are in the directory.
    Publish,
    /// The device publishes more keys (a first batch before the one that counts, a top-up):
    /// nothing waits for the answer.
    Refill,
    /// Another device claims one of the device's pooled keys.
    Claim,
    /// A set-up message addressed to the device (an MLS Welcome).
    Welcome,
}

impl DeviceOp {
    const ALL: [DeviceOp; 4] = [DeviceOp::Publish, DeviceOp::Refill, DeviceOp::Claim, DeviceOp::Welcome];
}

const CONTROL_BIT: u64 = 1 << 63;
/// With [`CONTROL_BIT`]: a device's set-up operation; its [`DeviceOp`] at [`OP_SHIFT`].
const DEVICE_BIT: u64 = 1 << 61;
const OP_SHIFT: u32 = 32;
const MESSAGE_BIT: u64 = 1 << 62;
const CONV_SHIFT: u32 = 30;
const SIDE_BIT: u64 = 1 << 29;

impl RequestId {
    /// Bits of the sequence number a message's request id keeps.
    pub const SEQ_BITS: u32 = 29;

    /// The 64-bit request id.
    pub fn encode(self) -> u64 {
        match self {
            RequestId::Group(c) => CONTROL_BIT | MESSAGE_BIT | u64::from(c),
            RequestId::Message { conv, side, seq } => {
                let side = if side == Side::Responder { SIDE_BIT } else { 0 };
                MESSAGE_BIT | u64::from(conv) << CONV_SHIFT | side | (seq & ((1 << Self::SEQ_BITS) - 1))
            }
            RequestId::Control(c) => CONTROL_BIT | u64::from(c),
            RequestId::Device(op, c) => CONTROL_BIT | DEVICE_BIT | (op as u64) << OP_SHIFT | u64::from(c),
            RequestId::Unknown => 0,
        }
    }

    /// Reads a request id back.
    pub fn decode(raw: u64) -> RequestId {
        if raw & CONTROL_BIT != 0 && raw & MESSAGE_BIT != 0 {
            RequestId::Group(raw as u32)
        } else if raw & CONTROL_BIT != 0 && raw & DEVICE_BIT != 0 {
            match DeviceOp::ALL.get(((raw & !(CONTROL_BIT | DEVICE_BIT)) >> OP_SHIFT) as usize) {
                Some(&op) => RequestId::Device(op, raw as u32),
                None => RequestId::Unknown,
            }
        } else if raw & CONTROL_BIT != 0 {
            RequestId::Control(raw as u32)
        } else if raw & MESSAGE_BIT != 0 {
            let side = if raw & SIDE_BIT != 0 { Side::Responder } else { Side::Initiator };
            RequestId::Message { conv: (raw >> CONV_SHIFT) as u32, side, seq: raw & ((1 << Self::SEQ_BITS) - 1) }
        } else {
            RequestId::Unknown
        }
    }
}

/// A frame from the relay, as the driver needs it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A delivery: the opaque body starts at this offset of the frame.
    Deliver {
        /// Offset of the body.
        body_at: usize,
        /// The sender's relay id.
        sender: u64,
        /// It was stored while the recipient was offline.
        stored: bool,
        /// The server wants this delivery acknowledged with this packet id (MQTT QoS 1:
        /// the receiver answers with [`Wire::receipt`]).
        receipt: Option<u16>,
    },
    /// The relay accepted a request.
    Ack(RequestId),
    /// The server accepted a send it names by the sender's lane and the low bits of the
    /// message's sequence number (MQTT's 16-bit packet id: see [`Route::lane`]).
    LaneAck {
        /// The sending device's lane (its index among its sessions).
        lane: u16,
        /// The message's sequence number, its low `seq_bits` bits.
        seq: u64,
        /// How many bits of the sequence number `seq` keeps.
        seq_bits: u32,
    },
    /// The relay refused a request.
    Refused {
        /// Which request.
        request: RequestId,
        /// The relay's error code.
        code: u16,
    },
    /// A key from the directory.
    Key {
        /// Which request asked for it.
        request: RequestId,
        /// The key bytes.
        key: &'a [u8],
    },
    /// A key from a directory whose answer names the key's owner rather than the request
    /// (MQTT: the retained message on the owner's key topic): the shard finds the session
    /// of the receiving device that asked for it.
    KeyOf {
        /// The device whose key it is (its relay id).
        owner: u64,
        /// The key bytes.
        key: &'a [u8],
    },
    /// An item claimed from a key pool (Olm one-time key or fallback).
    Claimed {
        /// Which request claimed it.
        request: RequestId,
        /// The pool had no one-time item left: this is its fallback.
        fallback: bool,
        /// The item.
        item: &'a [u8],
    },
    /// The answer to a key-pool publish: one-time items the pool holds now.
    PoolStatus {
        /// Which request published.
        request: RequestId,
        /// One-time items in the pool.
        available: u32,
    },
    /// The relay's answer to a REPORT (sealbench's wire): `sealcore::frame::REPORT_*`.
    ReportResult(u8),
    /// A frame the driver has no use for (counted as malformed where it arrives).
    Unexpected,
    /// A frame the wire expects and that carries nothing for the driver (XMPP: the server
    /// reflecting the device's own presence): passed over, not counted.
    Ignored,
    /// Not a frame of this protocol.
    Malformed,
}

/// Bytes kept free in front of every end-to-end body for the wire's header: at least the
/// longest header of any wire (checked below: XMPP's, with its JID and message id, is the
/// longest).
pub const HEADER_ROOM: usize = 160;
/// Where a sender seals the end-to-end body in its buffer (the wire's header ends here).
pub const BODY_AT: usize = HEADER_ROOM;

const _: () = assert!(
    Sealbench1::MAX_HEADER_LEN <= HEADER_ROOM
        && Mqtt311::MAX_HEADER_LEN <= HEADER_ROOM
        && Xmpp::MAX_HEADER_LEN <= HEADER_ROOM
);

/// Where a send goes and what names it: what a wire needs to write its header.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The driver's name for the send (echoed by a wire that echoes request ids).
    pub request: RequestId,
    /// Ask the server to acknowledge it (a wire that always acknowledges ignores this).
    pub want_ack: bool,
    /// The sending device's id (a wire whose deliveries do not name the sender carries it).
    pub from: u64,
    /// The recipient device's id.
    pub to: u64,
    /// The send's lane: the index of its session among the sending device's sessions. A
    /// wire whose acks carry a short packet id (MQTT: 16 bits) builds it from the lane and
    /// the low bits of the sequence number, and reports acks as [`Incoming::LaneAck`].
    pub lane: u16,
}

/// One step of a log-in: a frame to send and what its answer is called in errors.
pub type LoginStep = (Vec<u8>, &'static str);

/// A wire protocol: a sans-IO codec, no state.
pub trait RelayProtocol {
    /// What it offers.
    const CAPABILITIES: Capabilities;
    /// The WebSocket subprotocol to ask for in the upgrade (and to see in the answer).
    const SUBPROTOCOL: Option<&'static str>;
    /// Its frames are WebSocket text frames (XMPP), not binary ones.
    const TEXT: bool = false;
    /// The longest header it writes in front of an end-to-end body.
    const MAX_HEADER_LEN: usize;

    /// Completes a send in `out`, which holds [`HEADER_ROOM`] free bytes and then the
    /// end-to-end body: writes the header right in front of the body and advances `out`
    /// to it, so that `out` is the frame.
    ///
    /// # Errors
    /// `out` is shorter than [`HEADER_ROOM`], or the frame is too long for the wire.
    fn finish_send(out: &mut BytesMut, route: &Route) -> Result<(), FrameError>;

    /// Completes a group send from device `from` in `out` (as [`finish_send`](Self::finish_send)):
    /// the server fans the body out to group `group`'s members.
    ///
    /// # Errors
    /// As [`finish_send`](Self::finish_send).
    fn finish_group_send(out: &mut BytesMut, request: RequestId, group: u64, from: u64) -> Result<(), FrameError>;

    /// Classifies a frame from the server (deliveries are recognised on the per-message
    /// path without decoding the rest).
    fn decode(frame: &[u8]) -> Incoming<'_>;

    /// The frames of a log-in, in order, each answered before the next is sent: device `id`
    /// (with the relay's token, if it wants one) publishing `key` and joining `group`.
    ///
    /// # Errors
    /// Something asked of the log-in that this wire cannot do (the plan refuses such
    /// scenarios first), said in words.
    fn login(
        id: u64,
        token: Option<&[u8]>,
        key: Option<&[u8; 32]>,
        group: Option<u64>,
    ) -> anyhow::Result<Vec<LoginStep>>;

    /// The frames of a reconnection of device `id` (it logged in earlier in the run and
    /// went offline; what it published and joined then is still there): by default the
    /// log-in without a key or a group. A wire whose server keeps a session (MQTT, clean
    /// session off) resumes it instead, so that what was queued is handed to the shard.
    ///
    /// # Errors
    /// As [`login`](Self::login).
    fn resume(id: u64, token: Option<&[u8]>) -> anyhow::Result<Vec<LoginStep>> {
        Self::login(id, token, None, None)
    }

    /// The frame that asks the key directory for device `owner`'s static key, answered with
    /// [`Incoming::Key`] (naming `request`) or [`Incoming::KeyOf`]; `None` when the wire has
    /// no key directory (the plan refuses what needs one).
    fn key_fetch(_request: RequestId, _owner: u64) -> Option<bytes::Bytes> {
        None
    }

    /// Reads the answer to a log-in step: how many stored messages follow it (0 when the
    /// wire does not say).
    ///
    /// # Errors
    /// A refusal (with the server's code and reason) or an unexpected answer.
    fn logged_in(answer: &[u8], what: &str) -> anyhow::Result<u32>;

    /// The frame that acknowledges a delivery the server asked a receipt for, if the wire
    /// has one (allocation-free: a static frame).
    fn receipt(packet: u16) -> Option<bytes::Bytes>;
}

/// Runs `$e` with `$w` bound to the wire's codec type.
macro_rules! each_wire {
    ($self:expr, $w:ident => $e:expr) => {
        match $self {
            Wire::Sealbench => {
                type $w = Sealbench1;
                $e
            }
            Wire::Mqtt => {
                type $w = Mqtt311;
                $e
            }
            Wire::Xmpp => {
                type $w = Xmpp;
                $e
            }
        }
    };
}

impl Wire {
    /// sealbench's routed header length: where the body starts in a frame of sealbench's
    /// wire.
    pub const ROUTED_HEADER_LEN: usize = frame::ROUTED_HEADER_LEN;

    /// See [`RelayProtocol::SUBPROTOCOL`].
    pub fn subprotocol(self) -> Option<&'static str> {
        each_wire!(self, W => W::SUBPROTOCOL)
    }

    /// The frame a wire sends once its log-in steps are answered, without waiting for an
    /// answer (XMPP's initial presence, see [`Xmpp::after_login`]).
    pub fn after_login(self) -> Option<&'static [u8]> {
        (self == Wire::Xmpp).then(Xmpp::after_login)
    }

    /// See [`RelayProtocol::TEXT`].
    pub fn text(self) -> bool {
        each_wire!(self, W => W::TEXT)
    }

    /// Whether `frame` comes before a log-in step's answer rather than being it (XMPP's
    /// `<open/>` before `<stream:features>`).
    pub fn login_preamble(self, frame: &[u8]) -> bool {
        self == Wire::Xmpp && Xmpp::login_preamble(frame)
    }

    /// Puts the end-to-end body of a delivery (`frame`, the body at `body_at` as
    /// [`Incoming::Deliver`] said) into `buf`, a reused buffer; returns where in `buf` it
    /// starts. Binary wires copy the frame; XMPP decodes its base64 body.
    ///
    /// # Errors
    /// The body cannot be read (said in words).
    #[inline]
    pub fn open_body(self, frame: &[u8], body_at: usize, buf: &mut Vec<u8>) -> Result<usize, &'static str> {
        match self {
            Wire::Xmpp => Xmpp::open_body(frame, body_at, buf).map(|()| 0),
            Wire::Sealbench | Wire::Mqtt => {
                buf.clear();
                buf.extend_from_slice(frame);
                Ok(body_at)
            }
        }
    }

    /// See [`RelayProtocol::finish_send`].
    ///
    /// # Errors
    /// As the wire's.
    #[inline]
    pub fn finish_send(self, out: &mut BytesMut, route: &Route) -> Result<(), FrameError> {
        each_wire!(self, W => W::finish_send(out, route))
    }

    /// See [`RelayProtocol::finish_group_send`].
    ///
    /// # Errors
    /// As the wire's.
    #[inline]
    pub fn finish_group_send(
        self,
        out: &mut BytesMut,
        request: RequestId,
        group: u64,
        from: u64,
    ) -> Result<(), FrameError> {
        each_wire!(self, W => W::finish_group_send(out, request, group, from))
    }

    /// See [`RelayProtocol::decode`].
    #[inline]
    pub fn decode(self, frame: &[u8]) -> Incoming<'_> {
        each_wire!(self, W => W::decode(frame))
    }

    /// See [`RelayProtocol::login`].
    ///
    /// # Errors
    /// As the wire's.
    pub fn login(
        self,
        id: u64,
        token: Option<&[u8]>,
        key: Option<&[u8; 32]>,
        group: Option<u64>,
    ) -> anyhow::Result<Vec<LoginStep>> {
        each_wire!(self, W => W::login(id, token, key, group))
    }

    /// See [`RelayProtocol::resume`].
    ///
    /// # Errors
    /// As the wire's.
    pub fn resume(self, id: u64, token: Option<&[u8]>) -> anyhow::Result<Vec<LoginStep>> {
        each_wire!(self, W => W::resume(id, token))
    }

    /// See [`RelayProtocol::key_fetch`].
    pub fn key_fetch(self, request: RequestId, owner: u64) -> Option<bytes::Bytes> {
        each_wire!(self, W => <W as RelayProtocol>::key_fetch(request, owner))
    }

    /// See [`RelayProtocol::logged_in`].
    ///
    /// # Errors
    /// As the wire's.
    pub fn logged_in(self, answer: &[u8], what: &str) -> anyhow::Result<u32> {
        each_wire!(self, W => W::logged_in(answer, what))
    }

    /// See [`RelayProtocol::receipt`].
    #[inline]
    pub fn receipt(self, packet: u16) -> Option<bytes::Bytes> {
        each_wire!(self, W => W::receipt(packet))
    }
}

/// Where the header of `header_len` bytes starts so that it ends at [`BODY_AT`].
///
/// # Errors
/// `out` has no body room, or the header does not fit the room.
#[inline]
pub(crate) fn header_start(out: &BytesMut, header_len: usize) -> Result<usize, FrameError> {
    if out.len() < BODY_AT || header_len > HEADER_ROOM {
        return Err(FrameError::BufferTooSmall);
    }
    Ok(BODY_AT - header_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_round_trip_and_never_collide_with_zero() {
        for side in Side::BOTH {
            for (conv, seq) in [(0, 0), (7, 1), (u32::MAX, (1 << RequestId::SEQ_BITS) - 1)] {
                let id = RequestId::Message { conv, side, seq };
                assert_ne!(id.encode(), 0, "the first message of conversation 0 is still a message");
                assert_eq!(RequestId::decode(id.encode()), id);
            }
        }
        assert_eq!(RequestId::decode(RequestId::Control(42).encode()), RequestId::Control(42));
        for op in DeviceOp::ALL {
            let id = RequestId::Device(op, u32::MAX);
            assert_eq!(RequestId::decode(id.encode()), id);
            assert_ne!(RequestId::decode(id.encode()), RequestId::Control(u32::MAX));
        }
        assert_eq!(RequestId::decode(RequestId::Group(42).encode()), RequestId::Group(42));
        assert_eq!(RequestId::decode(0), RequestId::Unknown);
    }
}
