//! The open-loop senders of a shard: one per conversation direction (or one alternating),
//! and sending one due message.

use super::CRYPTO_SAMPLE;
use super::state::State;
use crate::clock::now_ns;
use crate::driver::recorder::{LATE_SEND_NS, Metric};
use crate::driver::schedule::{Rng, Schedule};
use crate::driver::wire::Side;
use crate::scenario::Senders;
use bytes::BytesMut;

/// One sender of the schedule: a conversation direction (or both, alternating).
pub(super) struct Sender {
    pub(super) conv: usize,
    pub(super) side: Side,
    pub(super) alternate: bool,
    pub(super) sched: Schedule,
    pub(super) next_ns: u64,
}

pub(super) fn build_senders(st: &State, plan: &crate::scenario::Plan, seed: u64, shard: usize) -> Vec<Sender> {
    let mut v = Vec::new();
    for (c, conv) in st.convs.iter().enumerate() {
        if !conv.ready() {
            continue;
        }
        let stream = u64::from(conv.id) << 1;
        // Each sender carries its share of the aggregate rate; its schedule scales the
        // run's rate profile by that share.
        let mk = |rate: f64, s: u64| {
            Schedule::new(plan.share_of(rate), plan.scenario.traffic.arrival, Rng::new(seed ^ shard as u64, stream | s))
        };
        match plan.scenario.traffic.senders {
            Senders::Initiator => v.push(Sender {
                conv: c,
                side: Side::Initiator,
                alternate: false,
                sched: mk(plan.rate_per_conversation, 0),
                next_ns: 0,
            }),
            Senders::Alternating => v.push(Sender {
                conv: c,
                side: Side::Initiator,
                alternate: true,
                sched: mk(plan.rate_per_conversation, 0),
                next_ns: 0,
            }),
            Senders::Both => {
                let r = plan.rate_per_conversation / 2.0;
                v.push(Sender { conv: c, side: Side::Initiator, alternate: false, sched: mk(r, 0), next_ns: 0 });
                v.push(Sender { conv: c, side: Side::Responder, alternate: false, sched: mk(r, 1), next_ns: 0 });
            }
        }
    }
    v
}

/// Sends one due message of `s` if its client can take it; returns the sender's next due
/// time (the same intended time again, slightly later, when its queue is full).
pub(super) fn send_one(
    st: &mut State,
    s: &mut Sender,
    plan: &crate::scenario::Plan,
    buf: &mut BytesMut,
) -> Option<u64> {
    let client = st.convs[s.conv].client(s.side);
    let tx = st.clients[client].tx.as_ref()?;
    if tx.capacity() == 0 {
        // Back-pressure: keep the intended time (the message is late, not skipped).
        st.counters.backlogged += 1;
        return Some(now_ns() + 200_000);
    }
    let intended = s.next_ns;
    let size = s.sched.size(&plan.sizes);
    let timed = st.seal_tick % CRYPTO_SAMPLE == 0;
    st.seal_tick += 1;
    let actual = now_ns();

    let measuring = st.measures(intended);
    match st.convs[s.conv].seal(s.side, size, intended, actual, st.ack, buf) {
        Ok(_) => {}
        Err(_) => {
            st.counters.other_errors += 1;
            return None;
        }
    }
    if actual.saturating_sub(intended) > LATE_SEND_NS {
        st.counters.late_sends += 1;
    }
    if measuring {
        let sealed = now_ns();
        if timed {
            st.hist.record(Metric::Seal, sealed - actual);
        }
        st.hist.record(Metric::ScheduleLag, actual.saturating_sub(intended));
        st.counters.sent_measured += 1;
    }
    st.counters.sent += 1;
    let frame = buf.split().freeze();
    if !st.send_to(client, frame) {
        // Queue closed (client died): counted as sent, it will be lost.
        return None;
    }
    if s.alternate {
        s.side = s.side.peer();
    }
    s.next_ns = s.sched.next(&plan.profile)?;
    Some(s.next_ns)
}
