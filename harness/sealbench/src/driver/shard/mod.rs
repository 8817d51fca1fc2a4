//! A driver shard: one OS thread with its own single-threaded tokio runtime, owning a
//! slice of the conversations (both ends of each) and its own recorder. Nothing on the
//! per-message path is shared with another shard: no lock, no atomic.
//!
//! Phases: connect (paced) → handshakes → wait for the common start time → open-loop
//! sending on the schedule → cooldown (drain) → close.
//!
//! # Layout
//! - `state` — what the shard's tasks share and how received frames are handled.
//! - `sender` — the open-loop senders.

mod sender;
mod state;

use super::client::{self, QUEUE, Source};
use super::recorder::{Counters, Histograms};
use super::{Control, ShardEvent, ShardSpec};
use crate::clock::{Ticker, now_ns, thread_cpu_ns};
use bytes::BytesMut;
use futures_util::StreamExt;
use sealcore::Pattern;
use sender::{build_senders, send_one};
use state::{Client, State};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Measure seal/open time for one message in this many (a clock read costs ~25 ns, a
/// seal a few hundred: timing every one would cost more than the 2 % budget).
pub(super) const CRYPTO_SAMPLE: u64 = 16;
/// A handshake with no answer for this long has failed.
const HANDSHAKE_TIMEOUT_NS: u64 = 20_000_000_000;

/// Runs a shard to the end on the current thread.
pub fn run(spec: ShardSpec, control: Control, events: std::sync::mpsc::Sender<ShardEvent>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = events.send(ShardEvent::Failed(format!("shard {}: cannot start a runtime: {e}", spec.index)));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, shard_main(spec, control, events));
}

async fn shard_main(spec: ShardSpec, control: Control, events: std::sync::mpsc::Sender<ShardEvent>) {
    let cpu0 = thread_cpu_ns();
    let plan = spec.plan.clone();
    let state = Rc::new(RefCell::new(State {
        clients: spec.clients.iter().map(|c| Client { id: c.id, conv: c.conv, side: c.side, tx: None }).collect(),
        convs: spec.convs,
        hist: Histograms::new(),
        counters: Counters::new(),
        measure_from: u64::MAX,
        closing: false,
        ack: spec.ack,
        seal_tick: 0,
        open_tick: 0,
        connected: 0,
        handshakes_pending: 0,
        scratch: Vec::with_capacity(64 * 1024),
        needs_key: matches!(plan.pattern, Pattern::IK | Pattern::NK),
        begun: Vec::new(),
        hs_first: None,
        hs_last: 0,
        first_error: None,
    }));
    {
        // Every conversation is pending until it is set up or has failed.
        let mut st = state.borrow_mut();
        st.handshakes_pending = st.convs.len();
        st.begun = vec![false; st.convs.len()];
    }
    let ticker = match Ticker::new() {
        Ok(t) => t,
        Err(e) => {
            let _ = events.send(ShardEvent::Failed(format!("shard {}: no timerfd: {e}", spec.index)));
            return;
        }
    };

    // Interval reports, once a second, for the whole run.
    let reporter = {
        let state = state.clone();
        let events = events.clone();
        let index = spec.index;
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (hist, counters, connected) = {
                    let mut st = state.borrow_mut();
                    let h = st.hist.clone();
                    st.hist.reset();
                    (h, st.counters.clone(), st.connected)
                };
                let msg = ShardEvent::Interval { shard: index, at_ns: now_ns(), hist, counters, connected };
                if events.send(msg).is_err() {
                    break;
                }
            }
        })
    };

    // Phase 1: connect, paced.
    let gap_ns = if spec.connect_rate > 0.0 { (1e9 / spec.connect_rate) as u64 } else { 0 };
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let start = now_ns();
    let mut joins = Vec::with_capacity(spec.clients.len());
    for (i, c) in spec.clients.iter().enumerate() {
        if control.stop.load(Ordering::Relaxed) {
            break;
        }
        if gap_ns > 0 {
            let _ = ticker.sleep_until(start + gap_ns * i as u64).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let (state, target, source, id, key) = (state.clone(), spec.target.clone(), c.source, c.id, c.publish_key);
        joins.push(tokio::task::spawn_local(async move {
            let r = client::connect(&target, source, id, key).await;
            drop(permit);
            bring_up(state, i, r);
        }));
    }
    for j in joins {
        let _ = j.await;
    }
    let _ = events.send(ShardEvent::Connected { shard: spec.index });

    // Phase 2: handshakes started as pairs came up; a conversation whose clients did not
    // both connect has failed.
    {
        let mut st = state.borrow_mut();
        for c in 0..st.convs.len() {
            if !st.begun[c] {
                st.fail_handshake(c);
            }
        }
    }
    let hs_deadline = now_ns() + HANDSHAKE_TIMEOUT_NS;
    while state.borrow().handshakes_pending > 0 && now_ns() < hs_deadline && !control.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    {
        let mut st = state.borrow_mut();
        for c in 0..st.convs.len() {
            if !st.convs[c].hs_finished || !st.convs[c].ready() {
                st.fail_handshake(c);
            }
        }
    }
    let (first, last) = {
        let st = state.borrow();
        (st.hs_first.unwrap_or(0), st.hs_last)
    };
    let _ = events.send(ShardEvent::HandshakesDone { shard: spec.index, first_ns: first, last_ns: last });

    // Phase 3: wait for the common start, then send on schedule.
    let mut start_rx = control.start.clone();
    let t0 = loop {
        if let Some(t) = *start_rx.borrow() {
            break t;
        }
        if start_rx.changed().await.is_err() {
            break now_ns();
        }
    };
    let measure_from = t0 + spec.warmup_ns;
    let stop_at = measure_from + spec.duration_ns;
    state.borrow_mut().measure_from = measure_from;
    let mut senders = build_senders(&state.borrow(), &plan, spec.seed, spec.index);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(senders.len());
    for (i, s) in senders.iter_mut().enumerate() {
        s.next_ns = s.sched.first(t0);
        heap.push(Reverse((s.next_ns, i)));
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let steady_cpu0 = thread_cpu_ns();
    let steady_sent0 = state.borrow().counters.sent;
    let stall = spec.stall.map(|(after, len)| (t0 + after, t0 + after + len));
    while !control.stop.load(Ordering::Relaxed) {
        let now = now_ns();
        if now >= stop_at {
            break;
        }
        if let Some((a, b)) = stall {
            if now >= a && now < b {
                let _ = ticker.sleep_until(b).await; // the sending side is held up (test hook)
                continue;
            }
        }
        let mut sent_any = false;
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now || due >= stop_at {
                break;
            }
            heap.pop();
            let next = {
                let mut st = state.borrow_mut();
                send_one(&mut st, &mut senders[i], &plan.sizes, &mut buf)
            };
            if let Some(n) = next {
                heap.push(Reverse((n, i)));
            }
            sent_any = true;
        }
        if sent_any {
            // Let the writer and reader tasks run before sleeping again.
            tokio::task::yield_now().await;
            continue;
        }
        let wake = heap.peek().map(|r| r.0.0).unwrap_or(stop_at).min(stop_at);
        tokio::select! {
            _ = ticker.sleep_until(wake) => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {} // re-check stop regularly
        }
    }

    let steady_cpu_ns = thread_cpu_ns() - steady_cpu0;
    let steady_sent = state.borrow().counters.sent - steady_sent0;

    // Phase 4: cooldown — wait for what is in flight, then close.
    let cooldown_end = now_ns()
        + if control.stop.load(Ordering::Relaxed) { spec.cooldown_ns.min(1_000_000_000) } else { spec.cooldown_ns };
    loop {
        let c = state.borrow().counters.clone();
        if c.delivered + c.refused_total() >= c.sent
            || now_ns() >= cooldown_end
            || control.abort.load(Ordering::Relaxed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let mut st = state.borrow_mut();
        st.closing = true;
        for c in &mut st.clients {
            c.tx = None; // writers send a close frame and end
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    reporter.abort();
    let st = state.borrow();
    let _ = events.send(ShardEvent::Finished {
        shard: spec.index,
        hist: st.hist.clone(),
        counters: st.counters.clone(),
        cpu_ns: thread_cpu_ns() - cpu0,
        steady_cpu_ns,
        steady_sent,
        first_error: st.first_error.clone(),
    });
}

/// Registers a connected client in the shard and starts its reader and writer tasks.
fn bring_up(state: Rc<RefCell<State>>, i: usize, r: Result<client::Registered, client::ConnectFailure>) {
    let mut st = state.borrow_mut();
    match r {
        Ok(reg) => {
            st.counters.connects_ok += 1;
            client::record(&mut st.hist, &reg);
            let (sink, source) = reg.ws.split();
            let (tx, rx) = mpsc::channel(QUEUE);
            st.clients[i].tx = Some(tx);
            st.connected += 1;
            tokio::task::spawn_local(client::write_loop(sink, rx));
            tokio::task::spawn_local(read_loop(state.clone(), i, source));
            let c = st.clients[i].conv;
            st.begin(c, now_ns());
        }
        Err(client::ConnectFailure::Connect(e)) => {
            st.counters.connects_failed += 1;
            st.first_error.get_or_insert_with(|| format!("connect: {e:#}"));
            tracing::debug!(error = %format!("{e:#}"), "connect failed");
        }
        Err(client::ConnectFailure::Register(e)) => {
            st.counters.connects_ok += 1;
            st.counters.registers_failed += 1;
            st.first_error.get_or_insert_with(|| format!("registration: {e:#}"));
            tracing::debug!(error = %format!("{e:#}"), "registration failed");
        }
    }
}

async fn read_loop(state: Rc<RefCell<State>>, i: usize, mut source: Source) {
    while let Some(m) = source.next().await {
        match m {
            Ok(Message::Binary(b)) => {
                let now = now_ns();
                state.borrow_mut().on_frame(i, b, now);
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    state.borrow_mut().on_disconnect(i);
}
