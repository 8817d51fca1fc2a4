//! Every protocol run without sockets, through a recording [`Outlet`] and a relay in
//! miniature (routing sends and group sends, a key directory with pools): set-up, a refused
//! reply, a message opened, a replay refused.

use super::*;
use crate::driver::ChatSpec;
use crate::driver::books::Books;
use crate::driver::recorder::Histograms;
use crate::driver::wire::{DeviceOp, RequestId, Side};
use crate::scenario::Fanout;
use crate::scenario::population::ChatKind;
use bytes::Bytes;
use sealcore::frame::{self, ErrorCode, Frame};
use sealcore::payload;
use sealcore::{AeadKind, HashKind, Pattern, StaticKeypair, Suite, TransportMode};
use std::collections::{HashMap, VecDeque};

/// The frames handlers sent, in order, and which devices are online.
#[derive(Default)]
struct Recorder {
    online: Vec<bool>,
    sent: VecDeque<(usize, Bytes)>,
}

impl Outlet for Recorder {
    fn send(&mut self, client: usize, frame: Bytes) -> bool {
        if !self.online[client] {
            return false;
        }
        self.sent.push_back((client, frame));
        true
    }

    fn online(&self, client: usize) -> bool {
        self.online[client]
    }
}

/// A key pool in the directory: one-time items, and the fallback.
type Pool = (VecDeque<Vec<u8>>, Option<Vec<u8>>);

/// One conversation's worth of a shard, with no sockets.
struct World {
    books: Books,
    net: Recorder,
    devices: Vec<Device>,
    sessions: Vec<Conversation>,
    chats: Vec<Chat>,
    out: BytesMut,
    protocol: Protocol,
    /// The relay's key directory: keys by client id, and pools (one-time items, fallback).
    keys: HashMap<u64, Vec<u8>>,
    pools: HashMap<(u64, u8), Pool>,
    /// Claims are refused with this code.
    refuse_claims: Option<ErrorCode>,
    /// Bodies delivered so far: (device, sender id, body after the routed header).
    delivered: Vec<(usize, u64, Vec<u8>)>,
    /// The relay's franking secret: it stamps franked SENDs and verifies REPORTs…
    relay_key: sealcore::franking::RelayKey,
    /// …and what each REPORT gave.
    reports: Vec<Result<(), sealcore::franking::ReportRefusal>>,
    /// Franked SENDs are handed to this before they are routed (a tampering relay).
    tamper: Option<fn(&mut Vec<u8>)>,
    now: u64,
}

fn plan(protocol: sealproto::Protocol, pattern: Pattern) -> ProtocolPlan {
    let suite = Suite::new(pattern, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    ProtocolPlan {
        protocol,
        suite,
        mode: TransportMode::Noise { rekey_every: 0 },
        fetch_responder_key: protocol == sealproto::Protocol::Noise && pattern.needs_remote_static(),
        megolm_rotate_after: 100,
        megolm_leave_every: 0,
        mls_self_update_every: 0,
        mls_churn_every: 0,
        franking: None,
    }
}

impl World {
    /// One conversation of `n` single-device users, the first `sending` of them senders:
    /// 1:1 for two devices without `relay`, else a group.
    fn new(plan: ProtocolPlan, n: usize, sending: usize, relay: bool) -> World {
        let kind = match (relay, n) {
            (true, _) => ChatKind::Group { fanout: Fanout::Relay, size: n as u32 },
            (false, 2) => ChatKind::Direct,
            (false, _) => ChatKind::Group { fanout: Fanout::Client, size: n as u32 },
        };
        let (mut sessions, mut pairs) = (Vec::new(), Vec::new());
        let pairwise = !relay || plan.pairwise_in_groups();
        for a in (0..n).filter(|_| pairwise) {
            for b in a + 1..n {
                if a >= sending && b >= sending {
                    continue;
                }
                let keys = [Some(StaticKeypair::generate().unwrap()), Some(StaticKeypair::generate().unwrap())];
                let id = sessions.len();
                sessions.push(Conversation::new(
                    id as u32,
                    a,
                    b,
                    [a as u64 + 1, b as u64 + 1],
                    plan.suite,
                    plan.mode,
                    keys,
                ));
                pairs.push((a, b, id));
            }
        }
        for s in &mut sessions {
            s.set_franking(plan.franking);
        }
        let users = (0..n).map(|i| i..i + 1).collect();
        let chats = vec![Chat::new(&ChatSpec { id: 0, kind, first_client: 0, users, sending, sessions: pairs })];
        let devices: Vec<Device> = (0..n)
            .map(|i| Device {
                id: i as u64 + 1,
                chat: 0,
                pos: i,
                sessions: (0..sessions.len()).filter(|&s| sessions[s].side_of(i).is_some()).collect(),
            })
            .collect();
        let protocol = Protocol::new(&plan, &chats, &devices, sessions.len()).unwrap();
        let mut books = Books::new(Histograms::new(), n, sessions.len(), Protocol::keys_expected(&plan, &chats));
        (books.send_from, books.measure_from) = (0, 0);
        World {
            books,
            net: Recorder { online: vec![false; n], sent: VecDeque::new() },
            devices,
            sessions,
            chats,
            out: BytesMut::new(),
            protocol,
            keys: HashMap::new(),
            pools: HashMap::new(),
            refuse_claims: None,
            delivered: Vec::new(),
            relay_key: sealcore::franking::RelayKey::new([9; 32]),
            reports: Vec::new(),
            tamper: None,
            now: 1_000,
        }
    }

    fn split(&mut self) -> (&mut Protocol, Ctx<'_>) {
        let cx = Ctx {
            books: &mut self.books,
            net: &mut self.net,
            devices: &self.devices,
            sessions: &mut self.sessions,
            chats: &mut self.chats,
            out: &mut self.out,
        };
        (&mut self.protocol, cx)
    }

    fn tick(&mut self) -> u64 {
        self.now += 1_000;
        self.now
    }

    /// Every device comes up, and the relay carries everything until nothing moves.
    fn all_up(&mut self) {
        for i in 0..self.devices.len() {
            self.net.online[i] = true;
            let now = self.tick();
            let (p, mut cx) = self.split();
            p.device_up(&mut cx, i, now);
            self.relay();
        }
    }

    /// Carries every frame sent so far, and what it provokes, as the relay would.
    fn relay(&mut self) {
        for _ in 0..100_000 {
            let Some((from, f)) = self.net.sent.pop_front() else { return };
            self.route(from, &f);
        }
        panic!("the protocol kept sending");
    }

    fn route(&mut self, from: usize, f: &[u8]) {
        let id = self.devices[from].id;
        match frame::decode(f).expect("a frame the relay can decode") {
            Frame::Send { recipient, body, flags, .. } if flags & frame::FLAG_FRANKED != 0 => {
                // Stamped as the relay stamps it (time: the world's clock), then tampered with.
                let mut body = body.to_vec();
                assert!(self.relay_key.stamp_trailer(&mut body, id, recipient, self.now));
                if let Some(tamper) = self.tamper {
                    tamper(&mut body);
                }
                self.deliver((recipient - 1) as usize, id, &body);
            }
            Frame::Send { recipient, body, .. } => self.deliver((recipient - 1) as usize, id, body),
            Frame::Report { sender, recipient, time_ns, commitment, stamp, franking_key, message, .. } => {
                let ctx = sealcore::franking::Context { sender, recipient, time_ns };
                let group = crate::driver::wire::group_id(self.chats[0].id);
                assert!(recipient == id || recipient == group, "the recipient (or its group) reports");
                self.reports.push(self.relay_key.verify_report(message, franking_key, commitment, ctx, stamp));
            }
            Frame::GroupSend { body, flags, group, .. } => {
                let mut body = body.to_vec();
                if flags & frame::FLAG_FRANKED != 0 {
                    assert!(self.relay_key.stamp_trailer(&mut body, id, group, self.now));
                }
                for to in (0..self.devices.len()).filter(|&d| d != from) {
                    self.deliver(to, id, &body);
                }
            }
            Frame::KeyPublish { key, .. } => {
                self.keys.insert(id, key.to_vec());
            }
            Frame::KeyFetch { request_id, client } => match self.keys.get(&client).cloned() {
                Some(key) => self.answer(Incoming::Key { request: RequestId::decode(request_id), key: &key }),
                None => self.refuse(request_id, ErrorCode::NoSuchKey),
            },
            Frame::KeysPublish { request_id, pool, flags, items, .. } => {
                let entry = self.pools.entry((id, pool)).or_default();
                for item in frame::key_items(items) {
                    if flags & frame::POOL_FLAG_FALLBACK != 0 {
                        entry.1 = Some(item.to_vec());
                    } else {
                        entry.0.push_back(item.to_vec());
                    }
                }
                let available = entry.0.len() as u32;
                self.answer(Incoming::PoolStatus { request: RequestId::decode(request_id), available });
            }
            Frame::KeyClaim { request_id, client, pool } => {
                if let Some(code) = self.refuse_claims {
                    return self.refuse(request_id, code);
                }
                let entry = self.pools.entry((client, pool)).or_default();
                let (item, fallback) = match entry.0.pop_front() {
                    Some(item) => (item, false),
                    None => (entry.1.clone().expect("a fallback"), true),
                };
                let request = RequestId::decode(request_id);
                self.answer(Incoming::Claimed { request, fallback, item: &item });
            }
            other => panic!("the relay in miniature has no use for {other:?}"),
        }
    }

    fn answer(&mut self, frame: Incoming<'_>) {
        let now = self.tick();
        let (p, mut cx) = self.split();
        assert!(p.on_reply(&mut cx, &frame, now), "{frame:?} was not the protocol's");
    }

    fn refuse(&mut self, request_id: u64, code: ErrorCode) {
        let now = self.tick();
        let frame = Incoming::Refused { request: RequestId::decode(request_id), code: code as u16 };
        let (p, mut cx) = self.split();
        // A refusal the protocol does not take is the shard's (counted as an error there).
        if !p.on_reply(&mut cx, &frame, now) {
            cx.books.counters.other_errors += 1;
        }
    }

    fn deliver(&mut self, to: usize, sender: u64, body: &[u8]) {
        self.delivered.push((to, sender, body.to_vec()));
        self.open(to, sender, body.to_vec());
    }

    /// Hands `body` (an E2E body) to device `to`'s protocol, as the shard does.
    fn open(&mut self, to: usize, sender: u64, mut body: Vec<u8>) {
        let (kind, conv, _) = payload::parse_e2e(&body).expect("an E2E header");
        let now = self.tick();
        let body = Body { kind, conv, data: &mut body[payload::E2E_HEADER_LEN..], sender, stored: false };
        let (p, mut cx) = self.split();
        p.on_body(&mut cx, to, body, now);
    }

    /// Device `pos` sends one message of `size` bytes: over each of its pairwise sessions,
    /// or once to its relay-fan-out group.
    fn send(&mut self, pos: usize, size: usize) {
        let now = self.tick();
        let m = Timed { size, msg: 0, intended_ns: now, actual_ns: now, text: crate::driver::content::Text::ZEROS };
        let mut buf = BytesMut::new();
        if self.chats[0].relay_fanout() {
            let (p, mut cx) = self.split();
            p.before_group_send(&mut cx, 0);
            p.seal_group(&mut cx, 0, pos, m, &mut buf).expect("sealed");
            cx.send(pos, buf.split().freeze());
        } else {
            for k in 0..self.chats[0].routes[pos].len() {
                let (s, side) = self.chats[0].routes[pos][k];
                self.sessions[s].seal(side, m, false, &mut buf).expect("sealed");
                self.books.owed[self.sessions[s].client(side.peer())] += 1;
                self.net.send(pos, buf.split().freeze());
            }
        }
        self.relay();
    }

    /// The last body delivered to a device other than `pos`, as it was sent.
    fn last_delivered_body(&self) -> (usize, u64, Vec<u8>) {
        self.delivered.last().cloned().expect("something was delivered")
    }
}

/// Set up, one message opened by every recipient, and a replay of the last one refused
/// as a duplicate, for the protocol of `w` (a conversation of `n` devices, device 0 sends).
fn opens_once_and_refuses_a_replay(mut w: World, recipients: u64) {
    w.all_up();
    assert!(
        !w.books.setting_up(),
        "set-up ended: {} sessions, {} keys pending",
        w.books.handshakes_pending,
        w.books.keys_pending
    );
    assert_eq!(w.books.counters.handshakes_failed, 0);
    w.send(0, 64);
    let c = &w.books.counters;
    assert_eq!(c.delivered, recipients, "every recipient opened it");
    assert_eq!((c.malformed, c.auth_failed, c.not_ready), (0, 0, 0));
    let (to, sender, body) = w.last_delivered_body();
    w.open(to, sender, body);
    assert_eq!(w.books.counters.delivered, recipients, "a replay is not delivered again");
    assert_eq!(w.books.counters.duplicated, 1, "a replay is counted as a duplicate");
}

#[test]
fn noise_xx_sets_up_opens_and_refuses_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Noise, Pattern::XX), 2, 2, false);
    opens_once_and_refuses_a_replay(w, 1);
}

#[test]
fn noise_ik_fetches_the_responders_key_first() {
    let mut w = World::new(plan(sealproto::Protocol::Noise, Pattern::IK), 2, 2, false);
    // The responder's static key is in the directory (published at registration).
    let public = w.sessions[0].keys[1].as_ref().unwrap().public;
    w.keys.insert(2, public.to_vec());
    opens_once_and_refuses_a_replay(w, 1);
}

#[test]
fn noise_ik_fails_a_session_whose_key_is_not_a_key() {
    let mut w = World::new(plan(sealproto::Protocol::Noise, Pattern::IK), 2, 2, false);
    w.keys.insert(2, vec![7; 31]);
    w.all_up();
    assert_eq!(w.books.counters.handshakes_failed, 1);
    assert!(!w.books.setting_up());
}

#[test]
fn noise_ik_leaves_a_refused_key_fetch_to_the_shard() {
    let mut w = World::new(plan(sealproto::Protocol::Noise, Pattern::IK), 2, 2, false);
    w.all_up(); // the directory has no key: the fetch is refused
    assert_eq!(w.books.counters.other_errors, 1);
    assert_eq!(w.books.handshakes_pending, 1, "the deadline fails it");
}

#[test]
fn noise_sender_keys_open_a_relay_fanout_message_at_every_member() {
    let w = World::new(plan(sealproto::Protocol::Noise, Pattern::XX), 4, 1, true);
    opens_once_and_refuses_a_replay(w, 3);
}

#[test]
fn a_forged_pairwise_message_is_counted_and_not_delivered() {
    let mut w = World::new(plan(sealproto::Protocol::Noise, Pattern::XX), 2, 2, false);
    w.all_up();
    w.send(0, 64);
    let (to, sender, mut body) = w.last_delivered_body();
    // A counter not seen yet (so the window lets it through to the tag) on the same bytes.
    body[payload::E2E_HEADER_LEN] ^= 0x40;
    w.open(to, sender, body);
    assert_eq!((w.books.counters.delivered, w.books.counters.auth_failed), (1, 1));
}

#[cfg(feature = "olm")]
#[test]
fn olm_sets_up_from_a_claimed_key_opens_and_refuses_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Olm, Pattern::XX), 2, 2, false);
    opens_once_and_refuses_a_replay(w, 1);
}

#[cfg(feature = "olm")]
#[test]
fn olm_fails_a_session_whose_claim_is_refused() {
    let mut w = World::new(plan(sealproto::Protocol::Olm, Pattern::XX), 2, 2, false);
    w.refuse_claims = Some(ErrorCode::NoSuchKey);
    w.all_up();
    assert_eq!(w.books.counters.handshakes_failed, 1);
    assert_eq!(w.books.counters.other_errors, 0, "the protocol took the refusal");
    assert!(!w.books.setting_up());
}

#[cfg(feature = "megolm")]
#[test]
fn megolm_shares_keys_over_olm_opens_and_refuses_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Megolm, Pattern::XX), 4, 1, true);
    opens_once_and_refuses_a_replay(w, 3);
}

#[cfg(feature = "megolm")]
#[test]
fn megolm_fails_the_olm_sessions_whose_claims_are_refused() {
    let mut w = World::new(plan(sealproto::Protocol::Megolm, Pattern::XX), 3, 1, true);
    w.refuse_claims = Some(ErrorCode::NoSuchKey);
    w.all_up();
    assert_eq!(w.books.counters.handshakes_failed, 2);
    assert_eq!(w.books.keys_pending, 2, "no key could be shared");
}

#[cfg(feature = "mls")]
#[test]
fn mls_creates_the_group_opens_and_refuses_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Mls, Pattern::XX), 3, 1, true);
    opens_once_and_refuses_a_replay(w, 2);
}

#[cfg(feature = "mls")]
#[test]
fn mls_counts_a_refused_key_package_claim() {
    let mut w = World::new(plan(sealproto::Protocol::Mls, Pattern::XX), 3, 1, true);
    w.refuse_claims = Some(ErrorCode::NoSuchKey);
    w.all_up();
    assert_eq!(w.books.counters.handshakes_failed, 2, "one per claim refused");
    assert_eq!(w.books.counters.other_errors, 0, "the protocol took the refusals");
    assert!(!w.protocol.group_up(0));
}

#[test]
fn plaintext_sessions_are_ready_at_once_open_and_refuse_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Plaintext, Pattern::XX), 2, 2, false);
    opens_once_and_refuses_a_replay(w, 1);
}

#[test]
fn plaintext_groups_need_no_keys_open_and_refuse_a_replay() {
    let w = World::new(plan(sealproto::Protocol::Plaintext, Pattern::XX), 4, 2, true);
    opens_once_and_refuses_a_replay(w, 3);
}

#[test]
fn plaintext_asks_the_relay_nothing_and_takes_none_of_its_answers() {
    let mut w = World::new(plan(sealproto::Protocol::Plaintext, Pattern::XX), 2, 2, false);
    w.all_up();
    assert_eq!(w.books.counters.handshakes_ok, 0, "no handshake happened");
    assert!(!w.books.setting_up());
    w.refuse(RequestId::Control(0).encode(), ErrorCode::NoSuchKey);
    assert_eq!(w.books.counters.other_errors, 1, "a refusal is the shard's to count");
    // What the relay carried is readable: the stamp in the clear after the E2E header.
    w.send(0, 64);
    let (_, _, body) = w.last_delivered_body();
    let stamp = sealcore::payload::Stamp::read(&body[payload::E2E_HEADER_LEN..]).unwrap();
    assert_eq!(stamp.intended_ns, w.now - 1_000, "the intended send time, readable by the relay");
}

#[test]
fn a_message_stamped_with_zeros_is_delivered_without_a_latency() {
    // What an independent client may send (docs/PROTOCOL.md §3.1: "zeros are fine").
    let mut w = World::new(plan(sealproto::Protocol::Noise, Pattern::XX), 2, 2, false);
    w.all_up();
    w.books.send_from = 1; // this run's sending began after time 0
    let m = Timed { size: 64, msg: 0, intended_ns: 0, actual_ns: 0, text: crate::driver::content::Text::ZEROS };
    let mut buf = BytesMut::new();
    w.sessions[0].seal(Side::Initiator, m, false, &mut buf).unwrap();
    w.net.send(0, buf.split().freeze());
    w.relay();
    let c = &w.books.counters;
    assert_eq!((c.delivered, c.bad_timestamp), (1, 1), "delivered, and counted as foreign");
    assert!(w.books.hist.get(crate::driver::recorder::Metric::E2e).is_empty(), "no latency from another clock");
}

#[test]
fn device_requests_never_look_like_session_requests() {
    let id = RequestId::Device(DeviceOp::Publish, 0);
    assert_ne!(RequestId::decode(id.encode()), RequestId::Control(0));
    let _ = Side::BOTH;
}

fn franking(report_share: f64) -> ProtocolPlan {
    let franking = Some(crate::scenario::FrankingPlan { report_share, seed: 11 });
    ProtocolPlan { franking, ..plan(sealproto::Protocol::Noise, Pattern::XX) }
}

#[test]
fn franked_messages_open_and_each_report_verifies_at_the_relay() {
    let mut w = World::new(franking(1.0), 2, 2, false);
    w.all_up();
    for _ in 0..3 {
        w.send(0, 64);
    }
    w.send(1, 200);
    let c = &w.books.counters;
    assert_eq!((c.delivered, c.franking_mismatch, c.auth_failed, c.malformed), (4, 0, 0, 0));
    assert_eq!(c.reports_sent, 4, "every message reported at a share of 1");
    assert_eq!(w.reports, vec![Ok(()); 4], "the relay verifies every report");
    // A franked frame is 104 bytes longer than the same message unfranked.
    let (_, _, franked) = w.last_delivered_body();
    let mut plain = World::new(plan(sealproto::Protocol::Noise, Pattern::XX), 2, 2, false);
    plain.all_up();
    plain.send(1, 200);
    let (_, _, unfranked) = plain.last_delivered_body();
    assert_eq!(franked.len() - unfranked.len(), 104);
}

#[test]
fn a_franked_message_with_an_altered_commitment_is_counted_by_name_and_not_delivered() {
    let mut w = World::new(franking(0.0), 2, 2, false);
    w.all_up();
    // The commitment is the trailer's first 32 bytes: one bit of it flipped on the way.
    w.tamper = Some(|body| {
        let at = body.len() - sealcore::franking::TRAILER_LEN;
        body[at + 5] ^= 0x04;
    });
    w.send(0, 64);
    let c = &w.books.counters;
    assert_eq!((c.delivered, c.franking_mismatch, c.auth_failed), (0, 1, 0));
    assert_eq!(c.reports_sent, 0);
}

#[test]
fn a_franked_message_with_an_altered_stamp_opens_but_its_report_is_refused_as_stamp() {
    let mut w = World::new(franking(1.0), 2, 2, false);
    w.all_up();
    // The recipient cannot check the relay's stamp; the relay can, when it is reported.
    w.tamper = Some(|body| {
        let last = body.len() - 1;
        body[last] ^= 0x01;
    });
    w.send(0, 64);
    assert_eq!((w.books.counters.delivered, w.books.counters.franking_mismatch), (1, 0));
    assert_eq!(w.reports, vec![Err(sealcore::franking::ReportRefusal::Stamp)]);
}

#[test]
fn a_franked_message_cut_short_or_with_an_altered_ciphertext_is_refused_not_delivered() {
    let mut w = World::new(franking(0.0), 2, 2, false);
    w.all_up();
    w.tamper = Some(|body| body[payload::E2E_HEADER_LEN + 9] ^= 0x01); // inside the ciphertext
    w.send(0, 64);
    w.tamper = Some(|body| body.truncate(sealcore::franking::TRAILER_LEN - 1));
    w.send(0, 64);
    let c = &w.books.counters;
    assert_eq!((c.delivered, c.auth_failed, c.malformed, c.franking_mismatch), (0, 1, 1, 0));
}

#[test]
fn franked_relay_fanout_group_messages_open_at_every_member_and_their_reports_verify() {
    let mut w = World::new(franking(1.0), 4, 1, true);
    w.all_up();
    w.send(0, 64);
    let c = &w.books.counters;
    assert_eq!((c.delivered, c.franking_mismatch, c.auth_failed, c.malformed), (3, 0, 0, 0));
    assert_eq!(c.reports_sent, 3, "each member reports at a share of 1");
    assert_eq!(w.reports, vec![Ok(()); 3], "stamped once for the group, verified for each member");
    assert_eq!(c.franking_bytes, 104);
}
