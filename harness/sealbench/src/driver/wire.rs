//! The relay protocol as the driver's clients speak it, behind one small interface:
//! encode a send, decode what arrives, register, publish and fetch a key. Everything the
//! driver knows about frames is here; a second relay protocol is one more implementation
//! of [`RelayProtocol`] in a file of its own, selected by the [`Wire`] alias.
//!
//! Also here: [`RequestId`], the driver's own bookkeeping carried in every frame's
//! request id (the relay echoes it in ACK and ERROR frames), encoded and decoded once.

use bytes::Bytes;
use sealcore::frame::{self, Frame, FrameError, FrameType};

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
    },
    /// The relay accepted a request.
    Ack(RequestId),
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
    /// A frame the driver has no use for (counted as malformed where it arrives).
    Unexpected,
    /// Not a frame of this protocol.
    Malformed,
}

/// The relay protocol the driver speaks: a sans-IO codec, no state.
pub trait RelayProtocol {
    /// Bytes in front of the end-to-end body of a send (and of a delivery).
    const ROUTED_HEADER_LEN: usize;

    /// Writes the header of a send to `to` into the front of `out` (the body follows it).
    ///
    /// # Errors
    /// `out` is shorter than the header.
    fn write_send_header(out: &mut [u8], request: RequestId, want_ack: bool, to: u64) -> Result<(), FrameError>;

    /// Writes the header of a group send (the relay fans the body out to the members).
    ///
    /// # Errors
    /// `out` is shorter than the header.
    fn write_group_send_header(out: &mut [u8], request: RequestId, group: u64) -> Result<(), FrameError>;

    /// Joins a group (relay fan-out).
    fn group_join(group: u64) -> Vec<u8>;

    /// Classifies a frame from the relay (only deliveries are on the per-message path:
    /// they are recognised without decoding).
    fn decode(frame: &[u8]) -> Incoming<'_>;

    /// The registration frame of client `id` (with its token, if the relay wants one).
    fn hello(id: u64, token: Option<&[u8]>) -> Vec<u8>;

    /// Publishes this client's static public key in the directory.
    fn key_publish(key: &[u8; 32]) -> Vec<u8>;

    /// Asks the directory for `client`'s key.
    fn key_fetch(request: RequestId, client: u64) -> Bytes;

    /// Publishes a key of any length (≤ 256 bytes) in the directory: an Olm identity bundle.
    fn key_publish_bytes(request: RequestId, key: &[u8]) -> Bytes;

    /// Publishes `items` to this client's key pool `pool` (or, `fallback`, replaces the
    /// pool's fallback with the single item).
    fn keys_publish(request: RequestId, pool: u8, fallback: bool, items: &[&[u8]]) -> Bytes;

    /// Claims one item of `client`'s key pool `pool`.
    fn key_claim(request: RequestId, client: u64, pool: u8) -> Bytes;

    /// Reads the answer to [`hello`](Self::hello), [`key_publish`](Self::key_publish) or
    /// [`group_join`](Self::group_join): how many stored messages follow (a WELCOME's count;
    /// 0 for other answers).
    ///
    /// # Errors
    /// A refusal (with the relay's code and reason) or an unexpected answer.
    fn registered(answer: &[u8], what: &str) -> anyhow::Result<u32>;
}

/// The relay protocol in use: sealbench's own, version 1 (`docs/PROTOCOL.md`).
pub type Wire = Sealbench1;

/// sealbench's relay protocol, version 1.
#[derive(Debug, Clone, Copy)]
pub struct Sealbench1;

fn encode(f: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; f.encoded_len()];
    // The buffer is exactly `encoded_len` long, so encoding cannot run short.
    let _ = f.encode(&mut buf);
    buf
}

impl RelayProtocol for Sealbench1 {
    const ROUTED_HEADER_LEN: usize = frame::ROUTED_HEADER_LEN;

    fn write_send_header(out: &mut [u8], request: RequestId, want_ack: bool, to: u64) -> Result<(), FrameError> {
        let flags = if want_ack { frame::FLAG_ACK } else { 0 };
        frame::write_send_header(out, request.encode(), flags, to)
    }

    fn write_group_send_header(out: &mut [u8], request: RequestId, group: u64) -> Result<(), FrameError> {
        frame::write_group_send_header(out, request.encode(), 0, group)
    }

    fn group_join(group: u64) -> Vec<u8> {
        encode(&Frame::GroupJoin { request_id: RequestId::Control(0).encode(), group })
    }

    fn decode(data: &[u8]) -> Incoming<'_> {
        match frame::peek_type(data) {
            Ok(FrameType::Deliver) if data.len() >= frame::ROUTED_HEADER_LEN => {
                // The shared routed header: version, type, sender u64, flags u8, group u64.
                let sender = u64::from_le_bytes(data[2..10].try_into().unwrap_or([0; 8]));
                let stored = data[10] & frame::FLAG_STORED != 0;
                Incoming::Deliver { body_at: frame::ROUTED_HEADER_LEN, sender, stored }
            }
            Ok(_) => match frame::decode(data) {
                Ok(Frame::Ack { request_id }) => Incoming::Ack(RequestId::decode(request_id)),
                Ok(Frame::Error { request_id, code, .. }) => {
                    Incoming::Refused { request: RequestId::decode(request_id), code }
                }
                Ok(Frame::Key { request_id, key, .. }) => Incoming::Key { request: RequestId::decode(request_id), key },
                Ok(Frame::Claimed { request_id, source, item, .. }) => Incoming::Claimed {
                    request: RequestId::decode(request_id),
                    fallback: source == frame::CLAIM_FALLBACK,
                    item,
                },
                Ok(Frame::PoolStatus { request_id, available, .. }) => {
                    Incoming::PoolStatus { request: RequestId::decode(request_id), available }
                }
                Ok(_) => Incoming::Unexpected,
                Err(_) => Incoming::Malformed,
            },
            Err(_) => Incoming::Malformed,
        }
    }

    fn hello(id: u64, token: Option<&[u8]>) -> Vec<u8> {
        encode(&Frame::Hello { client_id: id, token: token.unwrap_or(&[]) })
    }

    fn key_publish(key: &[u8; 32]) -> Vec<u8> {
        encode(&Frame::KeyPublish { request_id: RequestId::Control(0).encode(), key })
    }

    fn key_fetch(request: RequestId, client: u64) -> Bytes {
        encode(&Frame::KeyFetch { request_id: request.encode(), client }).into()
    }

    fn key_publish_bytes(request: RequestId, key: &[u8]) -> Bytes {
        encode(&Frame::KeyPublish { request_id: request.encode(), key }).into()
    }

    fn keys_publish(request: RequestId, pool: u8, fallback: bool, items: &[&[u8]]) -> Bytes {
        let mut raw = Vec::new();
        // Items longer than the protocol allows are a caller's defect: they are left out,
        // and the relay answers with the count it took.
        let count = frame::put_key_items(items.iter().copied(), &mut raw).unwrap_or(0);
        let flags = if fallback { frame::POOL_FLAG_FALLBACK } else { 0 };
        let items = if count == 0 { &[][..] } else { &raw[..] };
        encode(&Frame::KeysPublish { request_id: request.encode(), pool, flags, items, count }).into()
    }

    fn key_claim(request: RequestId, client: u64, pool: u8) -> Bytes {
        encode(&Frame::KeyClaim { request_id: request.encode(), client, pool }).into()
    }

    fn registered(answer: &[u8], what: &str) -> anyhow::Result<u32> {
        match frame::decode(answer)? {
            Frame::Welcome { stored, .. } => Ok(stored),
            Frame::Ack { .. } => Ok(0),
            Frame::Error { code, reason, .. } => anyhow::bail!("{what} refused ({code}): {reason}"),
            other => anyhow::bail!("unexpected answer to {what}: {:?}", other.frame_type()),
        }
    }
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

    #[test]
    fn a_send_header_carries_the_request_id_and_the_ack_flag() -> Result<(), FrameError> {
        let mut buf = vec![0u8; Wire::ROUTED_HEADER_LEN + 4];
        let req = RequestId::Message { conv: 3, side: Side::Responder, seq: 9 };
        Wire::write_send_header(&mut buf, req, true, 77)?;
        match frame::decode(&buf)? {
            Frame::Send { request_id, flags, recipient, body } => {
                assert_eq!((RequestId::decode(request_id), flags & frame::FLAG_ACK, recipient), (req, 1, 77));
                assert_eq!(body.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }
}
