//! sealbench's relay protocol, version 1 (`docs/PROTOCOL.md` §4): binary frames with a
//! fixed 19-byte routed header, request ids echoed in ACK and ERROR frames, HELLO →
//! WELCOME with the count of stored messages, and the relay's key directory with its
//! consume-once key pools (only this wire has one: [`Sealbench1::key_fetch`] and the
//! other key-directory frames are its own, used by the protocols the plan allows only
//! here).

use super::{BODY_AT, Capabilities, Incoming, LoginStep, RelayProtocol, RequestId, Route, header_start};
use bytes::{Buf, Bytes, BytesMut};
use sealcore::frame::{self, Frame, FrameError, FrameType};

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
    const CAPABILITIES: Capabilities = crate::target::SEALBENCH;
    const SUBPROTOCOL: Option<&'static str> = None;
    const MAX_HEADER_LEN: usize = frame::ROUTED_HEADER_LEN;

    #[inline]
    fn finish_send(out: &mut BytesMut, route: &Route) -> Result<(), FrameError> {
        let at = header_start(out, frame::ROUTED_HEADER_LEN)?;
        let flags = if route.want_ack { frame::FLAG_ACK } else { 0 };
        frame::write_send_header(&mut out[at..BODY_AT], route.request.encode(), flags, route.to)?;
        out.advance(at);
        Ok(())
    }

    #[inline]
    fn finish_group_send(out: &mut BytesMut, request: RequestId, group: u64, _from: u64) -> Result<(), FrameError> {
        let at = header_start(out, frame::ROUTED_HEADER_LEN)?;
        frame::write_group_send_header(&mut out[at..BODY_AT], request.encode(), 0, group)?;
        out.advance(at);
        Ok(())
    }

    fn decode(data: &[u8]) -> Incoming<'_> {
        match frame::peek_type(data) {
            Ok(FrameType::Deliver) if data.len() >= frame::ROUTED_HEADER_LEN => {
                // The shared routed header: version, type, sender u64, flags u8, group u64.
                let sender = u64::from_le_bytes(data[2..10].try_into().unwrap_or([0; 8]));
                let stored = data[10] & frame::FLAG_STORED != 0;
                Incoming::Deliver { body_at: frame::ROUTED_HEADER_LEN, sender, stored, receipt: None }
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
                Ok(Frame::ReportResult { result, .. }) => Incoming::ReportResult(result),
                Ok(_) => Incoming::Unexpected,
                Err(_) => Incoming::Malformed,
            },
            Err(_) => Incoming::Malformed,
        }
    }

    fn login(
        id: u64,
        token: Option<&[u8]>,
        key: Option<&[u8; 32]>,
        group: Option<u64>,
    ) -> anyhow::Result<Vec<LoginStep>> {
        let mut steps = vec![(encode(&Frame::Hello { client_id: id, token: token.unwrap_or(&[]) }), "HELLO")];
        if let Some(key) = key {
            steps.push((encode(&Frame::KeyPublish { request_id: RequestId::Control(0).encode(), key }), "KEY_PUBLISH"));
        }
        if let Some(group) = group {
            steps.push((encode(&Frame::GroupJoin { request_id: RequestId::Control(0).encode(), group }), "GROUP_JOIN"));
        }
        Ok(steps)
    }

    fn key_fetch(request: RequestId, owner: u64) -> Option<Bytes> {
        Some(encode(&Frame::KeyFetch { request_id: request.encode(), client: owner }).into())
    }

    fn logged_in(answer: &[u8], what: &str) -> anyhow::Result<u32> {
        match frame::decode(answer)? {
            Frame::Welcome { stored, .. } => Ok(stored),
            Frame::Ack { .. } => Ok(0),
            Frame::Error { code, reason, .. } => anyhow::bail!("{what} refused ({code}): {reason}"),
            other => anyhow::bail!("unexpected answer to {what}: {:?}", other.frame_type()),
        }
    }

    fn receipt(_packet: u16) -> Option<Bytes> {
        None
    }
}

impl Sealbench1 {
    /// Asks the directory for `client`'s key (its identity bundle, for Olm).
    pub fn key_fetch(request: RequestId, client: u64) -> Bytes {
        <Self as RelayProtocol>::key_fetch(request, client).unwrap_or_default()
    }

    /// Publishes a key of any length (≤ 256 bytes) in the directory: an Olm identity bundle.
    pub fn key_publish_bytes(request: RequestId, key: &[u8]) -> Bytes {
        encode(&Frame::KeyPublish { request_id: request.encode(), key }).into()
    }

    /// Publishes `items` to this client's key pool `pool` (or, `fallback`, replaces the
    /// pool's fallback with the single item).
    pub fn keys_publish(request: RequestId, pool: u8, fallback: bool, items: &[&[u8]]) -> Bytes {
        let mut raw = Vec::new();
        // Items longer than the protocol allows are a caller's defect: they are left out,
        // and the relay answers with the count it took.
        let count = frame::put_key_items(items.iter().copied(), &mut raw).unwrap_or(0);
        let flags = if fallback { frame::POOL_FLAG_FALLBACK } else { 0 };
        let items = if count == 0 { &[][..] } else { &raw[..] };
        encode(&Frame::KeysPublish { request_id: request.encode(), pool, flags, items, count }).into()
    }

    /// Claims one item of `client`'s key pool `pool`.
    pub fn key_claim(request: RequestId, client: u64, pool: u8) -> Bytes {
        encode(&Frame::KeyClaim { request_id: request.encode(), client, pool }).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::wire::{Side, Wire};

    #[test]
    fn a_send_header_carries_the_request_id_and_the_ack_flag() -> Result<(), FrameError> {
        let mut buf = BytesMut::zeroed(BODY_AT + 4);
        let req = RequestId::Message { conv: 3, side: Side::Responder, seq: 9 };
        Wire::Sealbench.finish_send(&mut buf, &Route { request: req, want_ack: true, from: 1, to: 77, lane: 0 })?;
        match frame::decode(&buf)? {
            Frame::Send { request_id, flags, recipient, body } => {
                assert_eq!((RequestId::decode(request_id), flags & frame::FLAG_ACK, recipient), (req, 1, 77));
                assert_eq!(body.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_group_send_header_ends_where_the_body_starts() -> Result<(), FrameError> {
        let mut buf = BytesMut::zeroed(BODY_AT);
        buf.extend_from_slice(b"body");
        Wire::Sealbench.finish_group_send(&mut buf, RequestId::Group(4), 5, 1)?;
        match frame::decode(&buf)? {
            Frame::GroupSend { group, body, .. } => assert_eq!((group, body), (5, &b"body"[..])),
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_buffer_without_header_room_is_refused_not_a_panic() {
        let mut buf = BytesMut::zeroed(BODY_AT - 1);
        let route = Route { request: RequestId::Unknown, want_ack: false, from: 1, to: 2, lane: 0 };
        assert_eq!(Wire::Sealbench.finish_send(&mut buf, &route), Err(FrameError::BufferTooSmall));
    }
}
