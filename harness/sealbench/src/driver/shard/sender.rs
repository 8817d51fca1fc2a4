//! The open-loop senders of a shard, one per conversation: who sends each message, and
//! sending it — one copy per recipient device over pairwise sessions (1:1 conversations
//! and client fan-out), or one sealed message the relay fans out (relay fan-out).

use super::CRYPTO_SAMPLE;
use super::state::State;
use crate::clock::now_ns;
use crate::driver::conversation::{Timed, seal_group_message};
use crate::driver::layout::group_id;
use crate::driver::recorder::{LATE_SEND_NS, Metric};
use crate::driver::schedule::{Rng, Schedule};
use crate::scenario::population::ChatKind;
use crate::scenario::{Plan, Senders};
use bytes::BytesMut;

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
            st.clients[first..first + chat.devices].iter().any(|d| d.sessions.iter().any(|&s| st.convs[s].ready()));
        #[cfg(feature = "mls")]
        let any_up = any_up || chat.mls.as_ref().is_some_and(|g| g.created);
        if !any_up {
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
    (0..n).map(|k| devices.start + (start + k) % n).find(|&p| st.clients[chat.first_client + p].tx.is_some())
}

/// Sends one due message of `s` if its device can take it; returns the sender's next due
/// time (the same intended time again, slightly later, when the device's queue is full;
/// None when the run has nothing more for it).
pub(super) fn send_one(st: &mut State, s: &mut Sender, plan: &Plan, buf: &mut BytesMut) -> Option<u64> {
    let c = s.chat;
    let user = next_user(st, s, plan.scenario.traffic.senders);
    let Some(pos) = online_device(st, c, user, &mut s.rng) else {
        // Every device of the sending user is offline: the user does not send.
        st.counters.skipped_offline += 1;
        s.next_ns = s.sched.next(&plan.profile)?;
        return Some(s.next_ns);
    };
    let client = st.chats[c].first_client + pos;
    let relay = st.chats[c].relay_fanout();
    let frames = if relay { 1 } else { st.chats[c].routes[pos].len() };
    let tx = st.clients[client].tx.as_ref()?;
    if tx.capacity() < frames {
        // Back-pressure: keep the intended time (the message is late, not skipped).
        st.counters.backlogged += 1;
        return Some(now_ns() + 200_000);
    }
    let intended = s.next_ns;
    let m = Timed { size: s.sched.size(&plan.sizes), msg: 0, intended_ns: intended, actual_ns: now_ns() };
    let actual = m.actual_ns;
    let sent = if relay { send_to_group(st, c, pos, m, buf) } else { send_copies(st, c, pos, m, buf) };
    let done = now_ns();
    st.counters.messages += 1;
    if actual.saturating_sub(intended) > LATE_SEND_NS {
        st.counters.late_sends += 1;
    }
    if st.measures(intended) {
        st.hist.record(Metric::ScheduleLag, actual.saturating_sub(intended));
        st.counters.sent_measured += sent;
        if frames >= 2 || relay {
            let tags = &st.chats[c].tags;
            st.hist.record_tagged(Metric::FanoutSeal, tags, done - actual);
        }
    }
    s.next_ns = s.sched.next(&plan.profile)?;
    Some(s.next_ns)
}

/// Whether this seal is the one in `CRYPTO_SAMPLE` that is timed.
fn timed(st: &mut State) -> bool {
    let t = st.seal_tick.is_multiple_of(CRYPTO_SAMPLE);
    st.seal_tick += 1;
    t
}

/// Client fan-out (and every 1:1 message): one copy per recipient device, sealed over the
/// sender's session with it. Returns the copies sent.
fn send_copies(st: &mut State, c: usize, pos: usize, mut m: Timed, buf: &mut BytesMut) -> u64 {
    let client = st.chats[c].first_client + pos;
    let routes = st.chats[c].routes[pos].len();
    let online = (0..routes)
        .filter(|&k| {
            let (session, side) = st.chats[c].routes[pos][k];
            st.clients[st.convs[session].client(side.peer())].tx.is_some()
        })
        .count();
    let (msg, dropped) = st.chats[c].outboxes[pos].open(m.intended_ns, online as u32);
    st.counters.fanout_incomplete += u64::from(dropped);
    m.msg = msg;
    let measuring = st.measures(m.intended_ns);
    let mut sent = 0;
    for k in 0..routes {
        let (session, side) = st.chats[c].routes[pos][k];
        if !st.convs[session].ready() {
            continue; // its handshake failed (counted there)
        }
        let t = timed(st);
        let t0 = now_ns();
        if st.convs[session].seal(side, m, st.ack, buf).is_err() {
            st.counters.other_errors += 1;
            continue;
        }
        if t && measuring {
            st.hist.record(Metric::Seal, now_ns() - t0);
        }
        let to = st.convs[session].client(side.peer());
        st.clients[to].owed += 1;
        st.counters.sent += 1;
        sent += 1;
        // A closed queue (the device died): counted as sent, it will be lost.
        st.send_to(client, buf.split().freeze());
    }
    sent
}

/// Whether the device at `to` of relay-fan-out group `c` is a recipient of what the device
/// at `sender` sends now: any other device, but with membership churn only a member (MLS:
/// at the sender's epoch; Megolm: one that has not left).
fn recipient(st: &State, c: usize, sender: usize, to: usize) -> bool {
    if to == sender {
        return false;
    }
    #[cfg(feature = "megolm")]
    if let Some(g) = st.chats[c].megolm.as_ref() {
        return !g.departed(to);
    }
    #[cfg(feature = "mls")]
    if let Some(g) = st.chats[c].mls.as_ref() {
        return g.recipient(sender, to);
    }
    let _ = (st, c);
    true
}

/// Relay fan-out: one message sealed with the sender's key; the relay delivers it to
/// every other member device. Returns the copies that implies.
fn send_to_group(st: &mut State, c: usize, pos: usize, mut m: Timed, buf: &mut BytesMut) -> u64 {
    let client = st.chats[c].first_client + pos;
    let (chat_id, devices, first) = (st.chats[c].id, st.chats[c].devices, st.chats[c].first_client);
    // MLS: the creator's commits due first; then the copies are for the members at the
    // sender's epoch (membership churn changes who they are).
    #[cfg(feature = "mls")]
    super::mls::commit_due(st, c);
    // Megolm: a member that leaves first (every sender rotates).
    #[cfg(feature = "megolm")]
    super::megolm::leave_if_due(st, c);
    let members = (0..devices).filter(|&p| recipient(st, c, pos, p)).count() as u64;
    let (msg, dropped) = st.chats[c].outboxes[pos].open(m.intended_ns, members as u32);
    st.counters.fanout_incomplete += u64::from(dropped);
    m.msg = msg;
    let t = timed(st);
    let t0 = now_ns();
    #[cfg(feature = "megolm")]
    let sealed = super::megolm::seal(st, c, pos, m, buf);
    #[cfg(not(feature = "megolm"))]
    let sealed = None;
    #[cfg(feature = "mls")]
    let sealed = sealed.or_else(|| super::mls::seal(st, c, pos, m, buf));
    let sealed = match sealed {
        Some(r) => r,
        None => {
            let Some(keys) = st.chats[c].sender_keys.as_mut() else { return 0 };
            seal_group_message(&mut keys.out[pos], chat_id, group_id(chat_id), m, buf)
        }
    };
    if sealed.is_err() {
        st.counters.other_errors += 1;
        return 0;
    }
    if t && st.measures(m.intended_ns) {
        st.hist.record(Metric::Seal, now_ns() - t0);
    }
    for p in 0..devices {
        if recipient(st, c, pos, p) {
            st.clients[first + p].owed += 1;
        }
    }
    st.counters.sent += members;
    st.send_to(client, buf.split().freeze());
    members
}
