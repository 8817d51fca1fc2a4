//! A driver shard: one OS thread with its own single-threaded tokio runtime, owning a
//! slice of the conversations (both ends of each) and its own recorder. Nothing on the
//! per-message path is shared with another shard: no lock, no atomic.
//!
//! Phases: connect (paced) → handshakes → wait for the common start time → open-loop
//! sending on the schedule → cooldown (drain) → close.

use super::client::{self, QUEUE, Source};
use super::conversation::{CONTROL_REQUEST, Conversation};
use super::recorder::{Counters, Histograms, MAX_CODE, Metric};
use super::schedule::{Rng, Schedule};
use super::{Control, ShardEvent, ShardSpec};
use crate::clock::{Ticker, now_ns, thread_cpu_ns};
use crate::scenario::Senders;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sealcore::frame::{self, FLAG_ACK, Frame};
use sealcore::payload::{self, E2eKind};
use sealcore::{OpenError, Pattern};
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
const CRYPTO_SAMPLE: u64 = 16;
/// A handshake with no answer for this long has failed.
const HANDSHAKE_TIMEOUT_NS: u64 = 20_000_000_000;

/// One simulated client of this shard.
#[derive(Debug)]
struct Client {
    /// Relay id.
    id: u64,
    /// Its conversation (index into `convs`) and side (0 initiator, 1 responder).
    conv: usize,
    side: usize,
    /// Its outgoing queue (None until connected, and after it died).
    tx: Option<mpsc::Sender<Bytes>>,
}

/// Everything one shard's tasks share (single-threaded: `Rc<RefCell<_>>`).
struct State {
    clients: Vec<Client>,
    convs: Vec<Conversation>,
    /// Interval histograms (moved to the coordinator every second).
    hist: Histograms,
    /// Cumulative counters.
    counters: Counters,
    /// Histograms record samples whose intended time is at or after this (warm-up end).
    measure_from: u64,
    /// Shutting down: disconnects are expected.
    closing: bool,
    ack: bool,
    crypto_tick: u64,
    connected: usize,
    handshakes_pending: usize,
    /// Reused buffer for opening deliveries.
    scratch: Vec<u8>,
    /// IK / NK: the initiator fetches the responder's key from the directory first.
    needs_key: bool,
    /// Per conversation: its handshake has been started.
    begun: Vec<bool>,
    /// When the first handshake started and the last one finished (initiator side).
    hs_first: Option<u64>,
    hs_last: u64,
    /// The first connect or registration failure, for the coordinator's error message.
    first_error: Option<String>,
}

impl State {
    fn send_to(&mut self, client: usize, frame: Bytes) -> bool {
        let Some(tx) = self.clients[client].tx.as_ref() else { return false };
        self.counters.bytes_sent += frame.len() as u64;
        tx.try_send(frame).is_ok()
    }

    fn on_frame(&mut self, client: usize, data: Bytes, now: u64) {
        self.counters.bytes_received += data.len() as u64;
        let Ok(ty) = frame::peek_type(&data) else {
            self.counters.malformed += 1;
            return;
        };
        match ty {
            frame::FrameType::Deliver => self.on_deliver(client, data, now),
            frame::FrameType::Ack => {
                if let Ok(Frame::Ack { request_id }) = frame::decode(&data) {
                    self.on_ack(request_id, now);
                }
            }
            frame::FrameType::Error => {
                if let Ok(Frame::Error { request_id, code, reason }) = frame::decode(&data) {
                    if request_id & CONTROL_REQUEST == 0 && request_id != 0 {
                        let c = (code as usize).min(MAX_CODE - 1);
                        self.counters.refused[c] += 1;
                    } else {
                        self.counters.other_errors += 1;
                        tracing::debug!(code, reason, "relay error on a control frame");
                    }
                }
            }
            frame::FrameType::Key => {
                if let Ok(Frame::Key { key, .. }) = frame::decode(&data) {
                    let c = self.clients[client].conv;
                    if let Ok(k) = <[u8; 32]>::try_from(key) {
                        self.convs[c].remote_static = Some(k);
                        self.start_handshake(c, now);
                    } else {
                        self.fail_handshake(c);
                    }
                }
            }
            _ => self.counters.malformed += 1,
        }
    }

    fn on_ack(&mut self, request_id: u64, now: u64) {
        if request_id & CONTROL_REQUEST != 0 {
            return;
        }
        let conv_id = (request_id >> 32) as u32;
        let side = ((request_id >> 31) & 1) as usize;
        let seq = request_id & 0x7fff_ffff;
        if let Some(c) = self.conv_index(conv_id) {
            if let Some(t) = self.convs[c].sent_at(side, seq) {
                if t >= self.measure_from {
                    self.hist.record(Metric::RelayAck, now.saturating_sub(t));
                }
            }
        }
    }

    fn conv_index(&self, conv_id: u32) -> Option<usize> {
        // Conversations of a shard are sorted by id.
        self.convs.binary_search_by_key(&conv_id, |c| c.id).ok()
    }

    fn on_deliver(&mut self, client: usize, data: Bytes, now: u64) {
        // Open in a reused scratch buffer: the frame is a slice of tungstenite's shared
        // read buffer, so it cannot be opened in place, and a copy per message must not
        // cost an allocation.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&data);
        self.on_deliver_in(client, &mut buf, now);
        self.scratch = buf;
    }

    fn on_deliver_in(&mut self, client: usize, buf: &mut [u8], now: u64) {
        if buf.len() < frame::ROUTED_HEADER_LEN {
            self.counters.malformed += 1;
            return;
        }
        let body = &mut buf[frame::ROUTED_HEADER_LEN..];
        let Ok((kind, conv_id, _)) = payload::parse_e2e(body) else {
            self.counters.malformed += 1;
            return;
        };
        let (c, side) = (self.clients[client].conv, self.clients[client].side);
        if self.convs[c].id != conv_id {
            self.counters.malformed += 1;
            return;
        }
        let data = &mut body[payload::E2E_HEADER_LEN..];
        match kind {
            E2eKind::Transport => {
                let timed = self.crypto_tick % CRYPTO_SAMPLE == 0;
                self.crypto_tick += 1;
                let t0 = if timed { now_ns() } else { 0 };
                match self.convs[c].open(side, data) {
                    Ok((stamp, reordered)) => {
                        let done = now_ns();
                        self.counters.delivered += 1;
                        if reordered {
                            self.counters.reordered += 1;
                        }
                        if stamp.intended_ns >= self.measure_from {
                            if timed {
                                self.hist.record(Metric::Open, done - t0);
                            }
                            self.hist.record(Metric::E2e, now.saturating_sub(stamp.intended_ns));
                            self.hist.record(Metric::E2eRaw, now.saturating_sub(stamp.actual_ns));
                        }
                    }
                    Err(OpenError::Replay) => self.counters.duplicated += 1,
                    Err(OpenError::Auth) => self.counters.auth_failed += 1,
                    Err(OpenError::TooOld | OpenError::TooFarAhead) => self.counters.too_old += 1,
                    Err(_) => self.counters.malformed += 1,
                }
            }
            E2eKind::Handshake => {
                let msg = data.to_vec();
                let settled_before = self.convs[c].hs_finished;
                let result = self.convs[c].on_handshake(side, &msg, now);
                if !settled_before && self.convs[c].hs_finished {
                    // Both ends now hold their transports: the conversation is set up.
                    self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
                }
                match result {
                    Ok(p) => {
                        if let Some(out) = p.reply {
                            let from = self.convs[c].client(usize::from(!out.from_initiator));
                            self.send_to(from, out.frame.freeze());
                        }
                        if let Some(ns) = p.initiator_done_ns {
                            self.hist.record(Metric::Handshake, ns);
                            self.counters.handshakes_ok += 1;
                            self.hs_last = self.hs_last.max(now);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(conversation = conv_id, error = %e, "handshake failed");
                        self.fail_handshake(c);
                    }
                }
            }
            _ => self.counters.malformed += 1,
        }
    }

    fn fail_handshake(&mut self, c: usize) {
        if !self.convs[c].hs_finished {
            self.convs[c].hs_finished = true;
            self.counters.handshakes_failed += 1;
            self.handshakes_pending = self.handshakes_pending.saturating_sub(1);
        }
    }

    /// Starts conversation `c`'s handshake once both its clients are connected — as soon as
    /// they are, so that a paced connect phase gives paced handshakes (and `connect_rate = 0`
    /// a storm).
    fn begin(&mut self, c: usize, now: u64) {
        let (ini, resp) = (self.convs[c].initiator, self.convs[c].responder);
        if self.begun[c] || self.clients[ini].tx.is_none() || self.clients[resp].tx.is_none() {
            return;
        }
        self.begun[c] = true;
        if self.needs_key {
            let f = Frame::KeyFetch { request_id: CONTROL_REQUEST | c as u64, client: self.clients[resp].id };
            let mut buf = vec![0u8; f.encoded_len()];
            let _ = f.encode(&mut buf);
            self.hs_first.get_or_insert(now);
            if !self.send_to(ini, buf.into()) {
                self.fail_handshake(c);
            }
        } else {
            self.start_handshake(c, now);
        }
    }

    fn start_handshake(&mut self, c: usize, now: u64) {
        self.hs_first.get_or_insert(now);
        match self.convs[c].start(now) {
            Ok(out) => {
                let from = self.convs[c].initiator;
                if !self.send_to(from, out.frame.freeze()) {
                    self.fail_handshake(c);
                }
            }
            Err(_) => self.fail_handshake(c),
        }
    }

    fn on_disconnect(&mut self, client: usize) {
        self.clients[client].tx = None;
        self.connected = self.connected.saturating_sub(1);
        if !self.closing {
            self.counters.disconnects += 1;
        }
    }
}

/// One sender of the schedule: a conversation direction (or both, alternating).
struct Sender {
    conv: usize,
    side: usize,
    alternate: bool,
    sched: Schedule,
    next_ns: u64,
}

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
        crypto_tick: 0,
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

fn build_senders(st: &State, plan: &crate::scenario::Plan, seed: u64, shard: usize) -> Vec<Sender> {
    let mut v = Vec::new();
    for (c, conv) in st.convs.iter().enumerate() {
        if !conv.ready() {
            continue;
        }
        let stream = u64::from(conv.id) << 1;
        let mk = |rate: f64, s: u64| Schedule::new(rate, plan.arrival, Rng::new(seed ^ shard as u64, stream | s));
        match plan.senders {
            Senders::Initiator => v.push(Sender {
                conv: c,
                side: 0,
                alternate: false,
                sched: mk(plan.rate_per_conversation, 0),
                next_ns: 0,
            }),
            Senders::Alternating => v.push(Sender {
                conv: c,
                side: 0,
                alternate: true,
                sched: mk(plan.rate_per_conversation, 0),
                next_ns: 0,
            }),
            Senders::Both => {
                let r = plan.rate_per_conversation / 2.0;
                v.push(Sender { conv: c, side: 0, alternate: false, sched: mk(r, 0), next_ns: 0 });
                v.push(Sender { conv: c, side: 1, alternate: false, sched: mk(r, 1), next_ns: 0 });
            }
        }
    }
    v
}

/// Sends one due message of `s` if its client can take it; returns the sender's next due
/// time (the same intended time again, slightly later, when its queue is full).
fn send_one(st: &mut State, s: &mut Sender, sizes: &[(usize, f64)], buf: &mut BytesMut) -> Option<u64> {
    let client = st.convs[s.conv].client(s.side);
    let tx = st.clients[client].tx.as_ref()?;
    if tx.capacity() == 0 {
        // Back-pressure: keep the intended time (the message is late, not skipped).
        st.counters.backlogged += 1;
        return Some(now_ns() + 200_000);
    }
    let intended = s.next_ns;
    let size = s.sched.size(sizes);
    let timed = st.crypto_tick % CRYPTO_SAMPLE == 0;
    st.crypto_tick += 1;
    let actual = now_ns();
    let flags = if st.ack { FLAG_ACK } else { 0 };
    let measuring = intended >= st.measure_from;
    match st.convs[s.conv].seal(s.side, size, intended, actual, flags, buf) {
        Ok(_) => {}
        Err(_) => {
            st.counters.other_errors += 1;
            return None;
        }
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
        s.side = 1 - s.side;
    }
    s.next_ns = intended + s.sched.gap();
    Some(s.next_ns)
}
