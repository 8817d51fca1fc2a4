//! MQTT 3.1.1 over WebSocket (subprotocol `mqtt`, one MQTT packet per binary frame): a
//! hand-written codec for the few packets a simulated device needs, exactly as
//! `docs/TARGETS.md` lists them byte for byte.
//!
//! - Log-in: CONNECT (client id `sb<device id>`, clean session **off** so that the broker
//!   keeps the device's subscription and queues its messages while it is away, keep-alive
//!   65,535 s so that no PINGREQ is due in a run shorter than 18 hours) → CONNACK; then
//!   SUBSCRIBE to `u/<device id>` at QoS 1 → SUBACK.
//! - A send: PUBLISH at QoS 1 to `u/<recipient id>`; its payload is the sender's id (u64,
//!   little-endian: MQTT deliveries do not name the publisher) and then the end-to-end
//!   body. The broker's PUBACK is the server ack (`relay_ack`).
//! - A delivery: PUBLISH at QoS 1, answered with PUBACK (a static frame: nothing is
//!   allocated per message).
//!
//! A PUBACK names its PUBLISH by a 16-bit packet id: the high 7 bits are the send's lane
//! plus one (the index of its session among the sender's sessions, so the ack finds its
//! session), the low 9 bits the low bits of the message's sequence number. Lanes past 125
//! and set-up messages share the marker 127, whose acks are not timed. Packet ids repeat
//! while earlier ones are in flight: the MQTT spec asks for unique ids among a client's
//! unacknowledged QoS 1 publishes, but a broker keeps no state for inbound QoS 1 (it
//! answers and forwards), so what a repeat costs is that ack's timing only.
//!
//! - A relay-fan-out group is the topic `g/<group>`: its members subscribe to it at log-in
//!   (QoS 1), a group send is a PUBLISH to it, and the broker sends it to every member —
//!   the sender too (MQTT 3.1.1 has no "no local"): the driver drops its own copies.
//!
//! - The key directory (Noise IK / NK): a device that has a static key publishes it at
//!   log-in as a retained QoS 1 PUBLISH on `k/<device id>`; a fetch is a SUBSCRIBE to the
//!   owner's key topic at QoS 0, which the broker answers with the retained key
//!   ([`Incoming::KeyOf`]), and an UNSUBSCRIBE in the same WebSocket message.
//! - A reconnection resumes the session (CONNECT alone): what the broker queued meanwhile
//!   follows CONNACK, unmarked — the shard counts it as stored from what it owes the device.
//!
//! What this adapter lacks (its capability table): the broker neither marks nor counts
//! queued deliveries (the driver counts them itself), and no consume-once keys (a retained
//! message is handed to every subscriber, never once).

use super::{
    BODY_AT, Capabilities, Incoming, LoginStep, MAX_DIGITS, RelayProtocol, RequestId, Route, decimal, header_start,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use sealcore::frame::FrameError;

/// MQTT 3.1.1 over WebSocket.
#[derive(Debug, Clone, Copy)]
pub struct Mqtt311;

/// Packet types (the high nibble of the first byte).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGRESP: u8 = 13;
/// First byte of a QoS 1 PUBLISH (no DUP, no RETAIN).
const PUBLISH_QOS1: u8 = PUBLISH << 4 | 1 << 1;
/// Bytes of the sender's id at the front of a PUBLISH payload.
pub const SENDER_LEN: usize = 8;
/// Keep-alive asked for in CONNECT, seconds (the most MQTT allows: no PINGREQ is needed).
pub const KEEP_ALIVE_S: u16 = u16::MAX;
/// The largest remaining length MQTT can say (four varint bytes).
const MAX_REMAINING: usize = 268_435_455;
/// Low bits of the sequence number a packet id keeps.
pub const PACKET_SEQ_BITS: u32 = 9;
/// The lane marker of sends whose acks are not timed (set-up messages, lanes past 125).
const UNTIMED_LANE: u16 = 127;
/// Packet ids of the key directory's packets: the key's retained PUBLISH at log-in, and a
/// fetch's SUBSCRIBE and UNSUBSCRIBE (their acks are told apart from a send's PUBACK by
/// type, and from the log-in's SUBACKs by being read after it).
const KEY_PUBLISH_ID: u16 = 3;
const KEY_FETCH_ID: u16 = 4;
/// First byte of a retained QoS 1 PUBLISH (a key).
const PUBLISH_QOS1_RETAIN: u8 = PUBLISH_QOS1 | 1;

/// Every PUBACK there can be, by packet id: a receipt is a static frame, not an allocation.
static PUBACKS: [[u8; 4]; 1 << 16] = {
    let mut t = [[0u8; 4]; 1 << 16];
    let mut i = 0;
    while i < t.len() {
        t[i] = [PUBACK << 4, 2, (i >> 8) as u8, i as u8];
        i += 1;
    }
    t
};

/// The MQTT client id of device `id`.
pub fn client_id(id: u64) -> String {
    format!("sb{id}")
}

/// The topic device `id` receives on.
pub fn inbox(id: u64) -> String {
    format!("u/{id}")
}

/// The packet id of a send: its lane and the low bits of its sequence number (see the
/// module's documentation); never 0.
pub fn packet_id(route: &Route) -> u16 {
    match route.request {
        RequestId::Message { seq, .. } if route.lane < UNTIMED_LANE - 1 => {
            (route.lane + 1) << PACKET_SEQ_BITS | (seq as u16 & ((1 << PACKET_SEQ_BITS) - 1))
        }
        _ => UNTIMED_LANE << PACKET_SEQ_BITS,
    }
}

/// Bytes of the varint of `n` (MQTT's remaining length).
fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes the varint of `n` into the front of `out`; returns its length.
fn put_varint(mut n: usize, out: &mut [u8]) -> usize {
    let mut i = 0;
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out[i] = b;
        i += 1;
        if n == 0 {
            return i;
        }
    }
}

/// Reads a varint at `at`: its value and the offset after it.
fn read_varint(data: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for shift in [0, 7, 14, 21] {
        let b = *data.get(at)?;
        at += 1;
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, at));
        }
    }
    None
}

/// A whole packet: its first byte and body (after the remaining length), which must end
/// the frame (one packet per WebSocket frame).
fn packet(data: &[u8]) -> Option<(u8, &[u8])> {
    let (&first, _) = data.split_first()?;
    let (len, at) = read_varint(data, 1)?;
    (at + len == data.len()).then_some((first, &data[at..]))
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// A packet: first byte, remaining length, `body`.
fn encode(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 1 + varint_len(body.len()) + body.len()];
    out[0] = first;
    let n = put_varint(body.len(), &mut out[1..]);
    out[1 + n..].copy_from_slice(body);
    out
}

/// A length-prefixed string.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_u16(s.len() as u16);
    out.extend_from_slice(s.as_bytes());
}

/// A received PUBLISH: the sender's id at the front of the payload, then the body.
fn publish(first: u8, body: &[u8], frame_len: usize) -> Incoming<'_> {
    let qos = (first >> 1) & 3;
    let Some(topic_len) = u16_at(body, 0) else { return Incoming::Malformed };
    let mut at = 2 + usize::from(topic_len);
    let receipt = match qos {
        0 => None,
        1 => match u16_at(body, at) {
            Some(pid) => {
                at += 2;
                Some(pid)
            }
            None => return Incoming::Malformed,
        },
        // Never granted (the subscription asks for QoS 1), and QoS 2 needs PUBREC.
        _ => return Incoming::Malformed,
    };
    if at > body.len() {
        return Incoming::Malformed;
    }
    // A key topic's message (the retained key a fetch subscribed to): its payload is the
    // key alone. Deliveries' topics (`u/`, `g/`) are told apart by their first letter.
    if body.get(2) == Some(&b'k') {
        return match (key_owner(&body[2..2 + usize::from(topic_len)]), receipt) {
            (Some(owner), None) => Incoming::KeyOf { owner, key: &body[at..] },
            _ => Incoming::Malformed,
        };
    }
    // Offsets into the whole frame: the fixed header is what the body is not.
    let header = frame_len - body.len();
    match body.get(at..at + SENDER_LEN) {
        Some(s) => Incoming::Deliver {
            body_at: header + at + SENDER_LEN,
            sender: u64::from_le_bytes(s.try_into().unwrap_or([0; 8])),
            stored: false,
            receipt,
        },
        // Acknowledged all the same (the broker would send it again), then counted as
        // malformed where the body is read: there is none.
        None => Incoming::Deliver { body_at: frame_len, sender: 0, stored: false, receipt },
    }
}

/// The device whose key topic `k/<id>` is (`None`: not a key topic).
fn key_owner(topic: &[u8]) -> Option<u64> {
    let digits = topic.strip_prefix(b"k/")?;
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The topic device `id`'s static public key is kept on (a retained message).
pub fn key_topic(id: u64) -> String {
    format!("k/{id}")
}

/// Completes a QoS 1 PUBLISH to topic `<prefix><id>` in `out` (the body at [`BODY_AT`]):
/// the header right in front of the body, `out` advanced to it.
#[inline]
fn finish_publish(out: &mut BytesMut, prefix: &[u8; 2], id: u64, pid: u16, from: u64) -> Result<(), FrameError> {
    let mut digits = [0u8; MAX_DIGITS];
    let d = decimal(id, &mut digits);
    let topic_len = 2 + MAX_DIGITS - d;
    let body_len = out.len().checked_sub(BODY_AT).ok_or(FrameError::BufferTooSmall)?;
    let remaining = 2 + topic_len + 2 + SENDER_LEN + body_len;
    if remaining > MAX_REMAINING {
        return Err(FrameError::BadLength);
    }
    let header_len = 1 + varint_len(remaining) + 2 + topic_len + 2 + SENDER_LEN;
    let at = header_start(out, header_len)?;
    let h = &mut out[at..BODY_AT];
    h[0] = PUBLISH_QOS1;
    let mut i = 1 + put_varint(remaining, &mut h[1..]);
    h[i..i + 2].copy_from_slice(&(topic_len as u16).to_be_bytes());
    h[i + 2..i + 4].copy_from_slice(prefix);
    i += 4;
    h[i..i + MAX_DIGITS - d].copy_from_slice(&digits[d..]);
    i += MAX_DIGITS - d;
    h[i..i + 2].copy_from_slice(&pid.to_be_bytes());
    h[i + 2..i + 2 + SENDER_LEN].copy_from_slice(&from.to_le_bytes());
    out.advance(at);
    Ok(())
}

/// What a reconnection's CONNECT is called (its CONNACK must say the session is there).
const RESUME: &str = "CONNECT (resuming its session)";

/// CONNECT of device `id`: protocol name and level 4 (3.1.1), flags 0 (clean session off,
/// no will, no user name or password), keep-alive, then the client id.
fn connect(id: u64) -> Vec<u8> {
    let mut connect = Vec::with_capacity(32);
    put_str(&mut connect, "MQTT");
    connect.put_u8(4);
    connect.put_u8(0);
    connect.put_u16(KEEP_ALIVE_S);
    put_str(&mut connect, &client_id(id));
    encode(CONNECT << 4, &connect)
}

/// The topic group `group` is fanned out on.
pub fn group_topic(group: u64) -> String {
    format!("g/{group}")
}

impl RelayProtocol for Mqtt311 {
    const CAPABILITIES: Capabilities = crate::target::MQTT;
    const SUBPROTOCOL: Option<&'static str> = Some("mqtt");
    /// PUBLISH: first byte, a remaining length of at most 4 bytes, the topic `u/` and 20
    /// digits with its length, the packet id, the sender's id.
    const MAX_HEADER_LEN: usize = 1 + 4 + 2 + 2 + MAX_DIGITS + 2 + SENDER_LEN;

    #[inline]
    fn finish_send(out: &mut BytesMut, route: &Route) -> Result<(), FrameError> {
        finish_publish(out, b"u/", route.to, packet_id(route), route.from)
    }

    #[inline]
    fn finish_group_send(out: &mut BytesMut, _request: RequestId, group: u64, from: u64) -> Result<(), FrameError> {
        finish_publish(out, b"g/", group, UNTIMED_LANE << PACKET_SEQ_BITS, from)
    }

    #[inline]
    fn decode(data: &[u8]) -> Incoming<'_> {
        let Some((first, body)) = packet(data) else { return Incoming::Malformed };
        match first >> 4 {
            PUBLISH => publish(first, body, data.len()),
            PUBACK => match u16_at(body, 0) {
                Some(pid) if body.len() == 2 => {
                    let lane = pid >> PACKET_SEQ_BITS;
                    if lane == 0 || lane == UNTIMED_LANE {
                        return Incoming::Ack(RequestId::Unknown);
                    }
                    let seq = u64::from(pid & ((1 << PACKET_SEQ_BITS) - 1));
                    Incoming::LaneAck { lane: lane - 1, seq, seq_bits: PACKET_SEQ_BITS }
                }
                _ => Incoming::Malformed,
            },
            // A key fetch's SUBSCRIBE (QoS 0 granted, or a failure) and UNSUBSCRIBE.
            SUBACK => match body {
                [a, b, 0] if u16::from_be_bytes([*a, *b]) == KEY_FETCH_ID => Incoming::Ack(RequestId::Unknown),
                [a, b, code] if u16::from_be_bytes([*a, *b]) == KEY_FETCH_ID => {
                    Incoming::Refused { request: RequestId::Unknown, code: u16::from(*code) }
                }
                _ => Incoming::Unexpected,
            },
            UNSUBACK if body == KEY_FETCH_ID.to_be_bytes() => Incoming::Ack(RequestId::Unknown),
            CONNACK | UNSUBACK | PINGRESP => Incoming::Unexpected,
            _ => Incoming::Malformed,
        }
    }

    fn login(
        id: u64,
        token: Option<&[u8]>,
        key: Option<&[u8; 32]>,
        group: Option<u64>,
    ) -> anyhow::Result<Vec<LoginStep>> {
        if token.is_some() {
            anyhow::bail!("MQTT log-in: the broker takes no sealbench auth token (relay.auth_secret)");
        }
        // SUBSCRIBE (its fixed flags are 0b0010): packet id 1, the inbox at QoS 1.
        let mut subscribe = Vec::with_capacity(32);
        subscribe.put_u16(1);
        put_str(&mut subscribe, &inbox(id));
        subscribe.put_u8(1);
        let mut steps = vec![(connect(id), "CONNECT"), (encode(SUBSCRIBE << 4 | 2, &subscribe), "SUBSCRIBE")];
        // A group member also subscribes to the group's topic (packet id 2).
        if let Some(group) = group {
            let mut join = Vec::with_capacity(32);
            join.put_u16(2);
            put_str(&mut join, &group_topic(group));
            join.put_u8(1);
            steps.push((encode(SUBSCRIBE << 4 | 2, &join), "SUBSCRIBE to the group"));
        }
        // The key directory: the device's static public key, published retained on its key
        // topic (the broker keeps the last one and hands it to each new subscriber).
        if let Some(key) = key {
            let mut publish = Vec::with_capacity(64);
            put_str(&mut publish, &key_topic(id));
            publish.put_u16(KEY_PUBLISH_ID);
            publish.extend_from_slice(key);
            steps.push((encode(PUBLISH_QOS1_RETAIN, &publish), "PUBLISH of the key (retained)"));
        }
        Ok(steps)
    }

    /// A reconnection is CONNECT alone: the broker kept the session (clean session off),
    /// its subscriptions and what was queued for it, which follows CONNACK and is the
    /// shard's to read (a SUBSCRIBE would make the log-in pass over it).
    fn resume(id: u64, token: Option<&[u8]>) -> anyhow::Result<Vec<LoginStep>> {
        if token.is_some() {
            anyhow::bail!("MQTT log-in: the broker takes no sealbench auth token (relay.auth_secret)");
        }
        Ok(vec![(connect(id), RESUME)])
    }

    /// SUBSCRIBE to the owner's key topic at QoS 0 (the broker answers SUBACK and then the
    /// retained key) and UNSUBSCRIBE from it (UNSUBACK), in one WebSocket message: the
    /// retained message is queued before the UNSUBSCRIBE is read, and no later publish on the
    /// topic reaches the device (nor a later run's, as the subscription would outlive this
    /// one in a persistent session).
    fn key_fetch(_request: RequestId, owner: u64) -> Option<Bytes> {
        let topic = key_topic(owner);
        let mut subscribe = Vec::with_capacity(32);
        subscribe.put_u16(KEY_FETCH_ID);
        put_str(&mut subscribe, &topic);
        subscribe.put_u8(0);
        let mut unsubscribe = Vec::with_capacity(32);
        unsubscribe.put_u16(KEY_FETCH_ID);
        put_str(&mut unsubscribe, &topic);
        let mut both = encode(SUBSCRIBE << 4 | 2, &subscribe);
        both.extend_from_slice(&encode(UNSUBSCRIBE << 4 | 2, &unsubscribe));
        Some(both.into())
    }

    fn logged_in(answer: &[u8], what: &str) -> anyhow::Result<u32> {
        let Some((first, body)) = packet(answer) else {
            anyhow::bail!("unexpected answer to {what}: not an MQTT packet ({} bytes)", answer.len())
        };
        match (first >> 4, body) {
            // Resuming, the broker must still hold the session: without it the device's
            // subscriptions and queued messages are gone (a broker restarted without
            // persistence, or one that expires sessions).
            (CONNACK, [flags, 0]) if what == RESUME && flags & 1 == 0 => anyhow::bail!(
                "{what}: the broker kept no session for this client id (CONNACK session-present 0): \
                 what was queued for it while it was offline is gone"
            ),
            (CONNACK, [_flags, 0]) => Ok(0),
            (CONNACK, [_, code]) => {
                let why = match code {
                    1 => "unacceptable protocol version",
                    2 => "client identifier rejected",
                    3 => "server unavailable",
                    4 => "bad user name or password",
                    5 => "not authorized",
                    _ => "unknown return code",
                };
                anyhow::bail!("{what} refused by the broker (CONNACK {code}: {why})")
            }
            (SUBACK, [_, _, 1]) => Ok(0),
            (PUBACK, [_, _]) => Ok(0),
            (SUBACK, [_, _, code]) => anyhow::bail!(
                "{what} refused by the broker (SUBACK {code:#04x}: {}): deliveries need QoS 1",
                if *code == 0 { "granted QoS 0 only" } else { "failure" }
            ),
            (t, _) => anyhow::bail!("unexpected answer to {what}: MQTT packet type {t}"),
        }
    }

    #[inline]
    fn receipt(packet: u16) -> Option<Bytes> {
        Some(Bytes::from_static(&PUBACKS[usize::from(packet)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::wire::{Side, Wire};

    fn sent(to: u64, from: u64, lane: u16, seq: u64, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::zeroed(BODY_AT);
        out.extend_from_slice(body);
        let request = RequestId::Message { conv: 1, side: Side::Initiator, seq };
        Wire::Mqtt.finish_send(&mut out, &Route { request, want_ack: true, from, to, lane }).unwrap();
        out
    }

    #[test]
    fn a_publish_is_laid_out_byte_for_byte() {
        let f = sent(42, 7, 0, 3, b"body");
        let mut want = vec![0x32, 2 + 4 + 2 + 8 + 4, 0, 4];
        want.extend_from_slice(b"u/42");
        want.extend_from_slice(&[1 << 1, 3]); // lane 0 → marker 1, sequence 3
        want.extend_from_slice(&7u64.to_le_bytes());
        want.extend_from_slice(b"body");
        assert_eq!(&f[..], &want[..]);
    }

    #[test]
    fn what_is_published_is_what_a_subscriber_decodes() {
        for (to, size) in [(1, 0), (u64::MAX, 100), (12_345, 20_000), (9, 3_000_000)] {
            let body = vec![0xa5; size];
            let f = sent(to, 99, 2, 5, &body);
            // A broker forwards the PUBLISH as it came (its packet id is its own).
            match Wire::Mqtt.decode(&f) {
                Incoming::Deliver { body_at, sender, stored, receipt } => {
                    assert_eq!((sender, stored, &f[body_at..]), (99, false, &body[..]));
                    assert_eq!(
                        receipt,
                        Some(packet_id(&Route {
                            request: RequestId::Message { conv: 1, side: Side::Initiator, seq: 5 },
                            want_ack: true,
                            from: 99,
                            to,
                            lane: 2,
                        }))
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_puback_names_the_lane_and_the_sequence_numbers_low_bits() {
        let f = sent(1, 2, 5, 1_000 + 512 * 3, b"x");
        // 0x32, remaining length, topic length, `u/1`: the packet id is at 7.
        let pid = u16::from_be_bytes([f[7], f[8]]);
        let ack = Wire::Mqtt.receipt(pid).unwrap();
        assert_eq!(&ack[..], &[0x40, 2, f[7], f[8]]);
        assert_eq!(Wire::Mqtt.decode(&ack), Incoming::LaneAck { lane: 5, seq: 1_000 % 512, seq_bits: PACKET_SEQ_BITS });
        // A set-up message's ack is not timed.
        let route = Route { request: RequestId::Control(3), want_ack: false, from: 1, to: 2, lane: 0 };
        let ack = Wire::Mqtt.receipt(packet_id(&route)).unwrap();
        assert_eq!(Wire::Mqtt.decode(&ack), Incoming::Ack(RequestId::Unknown));
    }

    #[test]
    fn login_frames_and_answers() -> anyhow::Result<()> {
        let steps = Wire::Mqtt.login(12, None, None, None)?;
        let mut connect = vec![0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0xff, 0xff, 0, 4];
        connect.extend_from_slice(b"sb12");
        assert_eq!(steps[0].0, connect);
        let mut subscribe = vec![0x82, 9, 0, 1, 0, 4];
        subscribe.extend_from_slice(b"u/12");
        subscribe.push(1);
        assert_eq!(steps[1].0, subscribe);
        assert_eq!(Wire::Mqtt.logged_in(&[0x20, 2, 0, 0], "CONNECT")?, 0);
        assert_eq!(Wire::Mqtt.logged_in(&[0x90, 3, 0, 1, 1], "SUBSCRIBE")?, 0);
        let refused = Wire::Mqtt.logged_in(&[0x20, 2, 0, 5], "CONNECT").unwrap_err();
        assert!(format!("{refused}").contains("not authorized"), "{refused}");
        let qos0 = Wire::Mqtt.logged_in(&[0x90, 3, 0, 1, 0], "SUBSCRIBE").unwrap_err();
        assert!(format!("{qos0}").contains("QoS 0"), "{qos0}");
        Ok(())
    }

    #[test]
    fn the_key_directory_is_a_retained_message_on_a_key_topic() -> anyhow::Result<()> {
        let key = [7u8; 32];
        let steps = Wire::Mqtt.login(12, None, Some(&key), None)?;
        assert_eq!(steps.len(), 3, "CONNECT, SUBSCRIBE, then the key");
        // PUBLISH, QoS 1, RETAIN · remaining length · `k/12` · packet id 3 · the key.
        let mut publish = vec![0x33, 2 + 4 + 2 + 32, 0, 4];
        publish.extend_from_slice(b"k/12");
        publish.extend_from_slice(&[0, 3]);
        publish.extend_from_slice(&key);
        assert_eq!(steps[2].0, publish);
        assert_eq!(Wire::Mqtt.logged_in(&[0x40, 2, 0, 3], steps[2].1)?, 0, "its PUBACK ends the log-in");
        // A fetch: SUBSCRIBE `k/12` at QoS 0, then UNSUBSCRIBE from it, in one message.
        let fetch = Wire::Mqtt.key_fetch(RequestId::Control(5), 12).expect("MQTT has a key directory");
        let mut want = vec![0x82, 9, 0, 4, 0, 4];
        want.extend_from_slice(b"k/12");
        want.extend_from_slice(&[0, 0xa2, 8, 0, 4, 0, 4]);
        want.extend_from_slice(b"k/12");
        assert_eq!(&fetch[..], &want[..]);
        // What the broker answers: SUBACK, the retained key (QoS 0, RETAIN), UNSUBACK.
        assert_eq!(Wire::Mqtt.decode(&[0x90, 3, 0, 4, 0]), Incoming::Ack(RequestId::Unknown));
        assert!(matches!(Wire::Mqtt.decode(&[0x90, 3, 0, 4, 0x80]), Incoming::Refused { code: 0x80, .. }));
        assert_eq!(Wire::Mqtt.decode(&[0xb0, 2, 0, 4]), Incoming::Ack(RequestId::Unknown));
        let mut retained = vec![0x31, 2 + 4 + 32, 0, 4];
        retained.extend_from_slice(b"k/12");
        retained.extend_from_slice(&key);
        assert_eq!(Wire::Mqtt.decode(&retained), Incoming::KeyOf { owner: 12, key: &key });
        // A key topic that names no device is malformed.
        assert_eq!(Wire::Mqtt.decode(&[0x31, 5, 0, 3, b'k', b'/', b'x']), Incoming::Malformed);
        assert!(Wire::Sealbench.key_fetch(RequestId::Control(5), 12).is_some());
        Ok(())
    }

    #[test]
    fn a_reconnection_resumes_the_session_with_connect_alone() -> anyhow::Result<()> {
        let steps = Wire::Mqtt.resume(12, None)?;
        assert_eq!(steps.len(), 1, "no SUBSCRIBE: the session kept it, and queued messages follow CONNACK");
        assert_eq!(steps[0].0, Wire::Mqtt.login(12, None, None, None)?[0].0, "the same CONNECT");
        assert_eq!(Wire::Mqtt.logged_in(&[0x20, 2, 1, 0], steps[0].1)?, 0);
        let gone = Wire::Mqtt.logged_in(&[0x20, 2, 0, 0], steps[0].1).unwrap_err();
        assert!(format!("{gone}").contains("kept no session"), "{gone}");
        // A first log-in does not care whether an earlier session was there.
        assert_eq!(Wire::Mqtt.logged_in(&[0x20, 2, 0, 0], "CONNECT")?, 0);
        Ok(())
    }

    #[test]
    fn a_group_send_publishes_to_the_groups_topic_and_members_subscribe_to_it() -> anyhow::Result<()> {
        let mut out = BytesMut::zeroed(BODY_AT);
        out.extend_from_slice(b"body");
        Wire::Mqtt.finish_group_send(&mut out, RequestId::Group(4), 5, 77)?;
        let mut want = vec![0x32, 2 + 3 + 2 + 8 + 4, 0, 3, b'g', b'/', b'5', 0xfe, 0];
        want.extend_from_slice(&77u64.to_le_bytes());
        want.extend_from_slice(b"body");
        assert_eq!(&out[..], &want[..]);
        let steps = Wire::Mqtt.login(12, None, None, Some(5))?;
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[2].0, [0x82, 8, 0, 2, 0, 3, b'g', b'/', b'5', 1]);
        Ok(())
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for f in
            [&[][..], &[0x32], &[0x32, 0xff, 0xff, 0xff, 0xff, 0xff], &[0x32, 3, 0, 9, 1], &[0x40, 1, 0], &[0xf0, 0]]
        {
            assert!(matches!(Wire::Mqtt.decode(f), Incoming::Malformed), "{f:?}");
            assert!(Wire::Mqtt.logged_in(f, "CONNECT").is_err());
        }
        // A PUBLISH too short for the sender's id is still acknowledged (and has no body).
        match Wire::Mqtt.decode(&[0x32, 7, 0, 3, b'u', b'/', b'1', 0, 9]) {
            Incoming::Deliver { body_at: 9, receipt: Some(9), .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
