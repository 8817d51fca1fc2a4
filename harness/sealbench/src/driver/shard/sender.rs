//! The open-loop senders of a shard, one per conversation: who sends each message, and
//! sending it — one copy per recipient device over pairwise sessions (1:1 conversations
//! and client fan-out), or one sealed message the relay fans out (relay fan-out).

use super::state::State;
use crate::clock::now_ns;
use crate::driver::content::{Corpus, Text};
use crate::driver::protocol::{Outlet, Timed};
use crate::driver::recorder::{LATE_SEND_NS, Metric};
use crate::driver::schedule::{Rng, Schedule};
use crate::scenario::population::ChatKind;
use crate::scenario::{Plan, Senders};
use bytes::BytesMut;
use sealcore::payload::PLAINTEXT_HEADER_LEN;

/// Bytes franking adds to a franked SEND: the franking key sealed inside, the trailer
/// beside the ciphertext (`docs/PROTOCOL.md` §6.1).
const FRANKING_BYTES: u64 = (sealcore::franking::KEY_LEN + sealcore::franking::TRAILER_LEN) as u64;

/// The schedule of one conversation.
pub(super) struct Sender {
    pub(super) chat: usize,
    pub(super) sched: Schedule,
    /// Picks the sending user and device.
    rng: Rng,
    pub(super) next_ns: u64,
}

/// One sender per conversation whose devices are set up (a conversation none of whose
/// sessions came up sends nothing: its handshakes are counted as failed).
pub(super) fn build_senders(st: &State, plan: &crate::scenario::Plan, seed: u64, shard: usize) -> Vec<Sender> {
    let mut v = Vec::new();
    for (c, chat) in st.chats.iter().enumerate() {
        let first = chat.first_client;
        let any_up =
            st.devices[first..first + chat.devices].iter().any(|d| d.sessions.iter().any(|&s| st.sessions[s].ready()));
        if !any_up && !st.protocol.group_up(c) {
            continue;
        }
        let stream = u64::from(chat.id) << 1;
        // Each conversation's sender carries its share of the aggregate rate; its schedule
        // scales the run's rate profile by that share.
        let sched = Schedule::new(
            plan.share_of(plan.rate_per_conversation),
            plan.scenario.traffic.arrival,
            Rng::new(seed ^ shard as u64, stream),
        );
        v.push(Sender { chat: c, sched, rng: Rng::new(seed ^ shard as u64, stream | 1), next_ns: 0 });
    }
    v
}

/// The user who sends the next message of conversation `c`.
fn next_user(st: &mut State, s: &mut Sender, senders: Senders) -> usize {
    let chat = &mut st.chats[s.chat];
    match (chat.kind, senders) {
        (ChatKind::Direct, Senders::Initiator) => 0,
        (ChatKind::Direct, Senders::Alternating) => {
            chat.turn ^= 1;
            chat.turn ^ 1
        }
        _ => (s.rng.next_u64() % chat.sending_users.max(1) as u64) as usize,
    }
}

/// An online device of `user` in conversation `c` (a random one when it has several).
fn online_device(st: &State, c: usize, user: usize, rng: &mut Rng) -> Option<usize> {
    let chat = &st.chats[c];
    let devices = chat.users[user].clone();
    let n = devices.len();
    let start = (rng.next_u64() % n.max(1) as u64) as usize;
    (0..n).map(|k| devices.start + (start + k) % n).find(|&p| st.net.online(chat.first_client + p))
}

/// Sends one due message of `s` if its device can take it; returns the sender's next due
/// time (the same intended time again, slightly later, when the device's queue is full;
/// None when the run has nothing more for it). `corpus`: the shard's text (None: zeros).
pub(super) fn send_one(
    st: &mut State,
    s: &mut Sender,
    plan: &Plan,
    corpus: Option<&Corpus>,
    buf: &mut BytesMut,
) -> Option<u64> {
    let c = s.chat;
    let user = next_user(st, s, plan.scenario.traffic.senders);
    let Some(pos) = online_device(st, c, user, &mut s.rng) else {
        // Every device of the sending user is offline: the user does not send.
        st.books.counters.skipped_offline += 1;
        s.next_ns = s.sched.next(&plan.profile)?;
        return Some(s.next_ns);
    };
    let client = st.chats[c].first_client + pos;
    let relay = st.chats[c].relay_fanout();
    let frames = if relay { 1 } else { st.chats[c].routes[pos].len() };
    if !st.net.online(client) {
        return None;
    }
    if st.net.capacity(client) < frames {
        // Back-pressure: keep the intended time (the message is late, not skipped).
        st.books.counters.backlogged += 1;
        return Some(now_ns() + 200_000);
    }
    let intended = s.next_ns;
    let size = s.sched.size(&plan.sizes);
    let m = Timed { size, msg: 0, intended_ns: intended, actual_ns: now_ns(), text: Text::ZEROS };
    let actual = m.actual_ns;
    let sent = if relay { send_to_group(st, c, pos, m, corpus, buf) } else { send_copies(st, c, pos, m, corpus, buf) };
    let done = now_ns();
    let books = &mut st.books;
    books.counters.messages += 1;
    if actual.saturating_sub(intended) > LATE_SEND_NS {
        books.counters.late_sends += 1;
    }
    if books.measures(intended) {
        books.hist.record(Metric::ScheduleLag, actual.saturating_sub(intended));
        books.counters.sent_measured += sent;
        if frames >= 2 || relay {
            books.hist.record_tagged(Metric::FanoutSeal, &st.chats[c].tags, done - actual);
        }
    }
    s.next_ns = s.sched.next(&plan.profile)?;
    Some(s.next_ns)
}

/// Client fan-out (and every 1:1 message): one copy per recipient device, sealed over the
/// sender's session with it. Returns the copies sent.
fn send_copies<'a>(
    st: &mut State,
    c: usize,
    pos: usize,
    mut m: Timed<'a>,
    corpus: Option<&'a Corpus>,
    buf: &mut BytesMut,
) -> u64 {
    let client = st.chats[c].first_client + pos;
    let routes = st.chats[c].routes[pos].len();
    let online = (0..routes)
        .filter(|&k| {
            let (session, side) = st.chats[c].routes[pos][k];
            st.net.online(st.sessions[session].client(side.peer()))
        })
        .count();
    let (msg, dropped) = st.chats[c].outboxes[pos].open(m.intended_ns, online as u32);
    st.books.counters.fanout_incomplete += u64::from(dropped);
    m.msg = msg;
    m.text = text_of(corpus, st.chats[c].id, pos, msg);
    let planted = u64::from(m.text.planted(m.size.saturating_sub(PLAINTEXT_HEADER_LEN)));
    let measuring = st.books.measures(m.intended_ns);
    let mut sent = 0;
    for k in 0..routes {
        let (session, side) = st.chats[c].routes[pos][k];
        if !st.sessions[session].ready() {
            continue; // its set-up failed (counted there)
        }
        let t = st.books.seal_timed();
        let t0 = now_ns();
        let frank_ns = match st.sessions[session].seal_timing(side, m, st.ack, t && measuring, buf) {
            Ok(ns) => ns,
            Err(_) => {
                st.books.counters.other_errors += 1;
                continue;
            }
        };
        if t && measuring {
            st.books.hist.record(Metric::Seal, now_ns() - t0);
        }
        if let Some(ns) = frank_ns {
            st.books.hist.record(Metric::Frank, ns);
        }
        if st.sessions[session].franked() {
            st.books.counters.franking_bytes += FRANKING_BYTES;
        }
        let to = st.sessions[session].client(side.peer());
        st.books.owed[to] += 1;
        st.books.counters.sent += 1;
        st.books.counters.keywords_planted += planted;
        sent += 1;
        // A closed queue (the device died): counted as sent, it will be lost.
        st.net.send(client, buf.split().freeze());
    }
    sent
}

/// Relay fan-out: one message sealed by the group's protocol; the relay delivers it to
/// every other member device (with membership churn, to every device that is a member at
/// the sender's epoch). Returns the copies that implies.
fn send_to_group<'a>(
    st: &mut State,
    c: usize,
    pos: usize,
    mut m: Timed<'a>,
    corpus: Option<&'a Corpus>,
    buf: &mut BytesMut,
) -> u64 {
    let client = st.chats[c].first_client + pos;
    let (devices, first) = (st.chats[c].devices, st.chats[c].first_client);
    // What the protocol has due first (a commit, a member leaving).
    {
        let (p, mut cx) = st.split();
        p.before_group_send(&mut cx, c);
    }
    let members = (0..devices).filter(|&p| st.protocol.recipient(c, pos, p)).count() as u64;
    // The fan-out is measured over the members online now (an offline one's copy is stored
    // by the server and arrives as `offline_e2e`: MQTT topics with churn).
    let online = (0..devices).filter(|&p| st.protocol.recipient(c, pos, p) && st.net.online(first + p)).count();
    let (msg, dropped) = st.chats[c].outboxes[pos].open(m.intended_ns, online as u32);
    st.books.counters.fanout_incomplete += u64::from(dropped);
    m.msg = msg;
    m.text = text_of(corpus, st.chats[c].id, pos, msg);
    let t = st.books.seal_timed();
    let t0 = now_ns();
    let sealed = {
        let (p, mut cx) = st.split();
        p.seal_group(&mut cx, c, pos, m, buf)
    };
    if sealed.is_err() {
        st.books.counters.other_errors += 1;
        return 0;
    }
    if t && st.books.measures(m.intended_ns) {
        st.books.hist.record(Metric::Seal, now_ns() - t0);
    }
    for p in 0..devices {
        if st.protocol.recipient(c, pos, p) {
            st.books.owed[first + p] += 1;
        }
    }
    st.books.counters.sent += members;
    st.books.counters.keywords_planted += u64::from(m.text.planted(m.size.saturating_sub(PLAINTEXT_HEADER_LEN)));
    st.net.send(client, buf.split().freeze());
    members
}

/// The text of message `msg` of the device at `pos` in conversation `chat` (zeros without
/// a corpus): the same whatever the protocol, as it depends on nothing else.
#[inline]
fn text_of(corpus: Option<&Corpus>, chat: u32, pos: usize, msg: u32) -> Text<'_> {
    corpus.map_or(Text::ZEROS, |k| k.text(chat, pos, msg))
}
