//! A driver shard: one OS thread with its own single-threaded tokio runtime, owning a
//! slice of the conversations (both ends of each) and its own recorder. Nothing on the
//! per-message path is shared with another shard: no lock, no atomic.
//!
//! Phases: connect (paced) → handshakes → wait for the common start time → open-loop
//! sending on the schedule → cooldown (drain) → close.
//!
//! # Layout
//! - `state` — what the shard's tasks share and how received frames are routed (to the
//!   session protocol, `driver::protocol`, which this module never looks inside).
//! - `sender` — the open-loop senders.
//! - `out` — a connection's sending side: frames written by the shard, flushed per batch.

mod churn;
mod out;
mod sender;
mod state;

use super::client::{self, QUEUE, Registration, Source};
use super::content::Corpus;
use super::{Control, ShardEvent, ShardSpec};
use crate::clock::{Ticker, now_ns, thread_cpu_ns, thread_wakes};
use bytes::BytesMut;
use futures_util::StreamExt;
use sender::{build_senders, send_one};
use state::State;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Most messages one batch sends before it flushes and lets the readers run: a generator
/// far behind its schedule would otherwise write for as long as the sockets take frames,
/// starving its readers and its per-second reports.
const MAX_BATCH: u32 = 256;
/// The sending loop looks at the stop flag at least this often.
const STOP_CHECK_NS: u64 = 50_000_000;
/// After a stop, what is in flight gets at most this long to arrive.
const STOP_DRAIN_NS: u64 = 1_000_000_000;
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

/// The shard's phases in order; each reports to the coordinator when it ends.
async fn shard_main(mut spec: ShardSpec, control: Control, events: std::sync::mpsc::Sender<ShardEvent>) {
    let cpu0 = thread_cpu_ns();
    let plan = spec.plan.clone();
    let state = match State::new(&mut spec, &|chat| plan.chat_tags(chat.kind)) {
        Ok(s) => Rc::new(RefCell::new(s)),
        Err(e) => {
            let _ = events.send(ShardEvent::Failed(format!("shard {}: {e}", spec.index)));
            return;
        }
    };
    let ticker = match Ticker::new() {
        Ok(t) => t,
        Err(e) => {
            let _ = events.send(ShardEvent::Failed(format!("shard {}: no timerfd: {e}", spec.index)));
            return;
        }
    };
    let reporter =
        tokio::task::spawn_local(report_every_second(state.clone(), events.clone(), spec.index, control.clone()));
    let flusher = tokio::task::spawn_local(flush_replies(state.clone()));

    connect_all(&spec, &control, &state, &ticker).await;
    let _ = events.send(ShardEvent::Connected { shard: spec.index });

    let (first_ns, last_ns) = await_handshakes(&control, &state).await;
    let _ = events.send(ShardEvent::HandshakesDone { shard: spec.index, first_ns, last_ns });

    let t0 = await_start(&control).await;
    let steady = send_steady(&spec, &control, &state, &ticker, t0).await;

    drain_and_close(&spec, &control, &state).await;
    reporter.abort();
    flusher.abort();
    let mut st = state.borrow_mut();
    let incomplete = st.chats.iter().flat_map(|c| &c.outboxes).map(|o| o.incomplete()).sum::<u64>();
    let books = st.settle();
    books.counters.fanout_incomplete += incomplete;
    let (hist, counters) = (books.hist.clone(), books.counters.clone());
    let _ = events.send(ShardEvent::Finished {
        shard: spec.index,
        hist,
        counters,
        cpu_ns: thread_cpu_ns() - cpu0,
        steady_cpu_ns: steady.cpu_ns,
        steady_sent: steady.sent,
        steady_wakes: steady.wakes,
        first_error: st.first_error.clone(),
    });
}

/// Sends the interval's histograms and the cumulative counters once a second, for the
/// whole run (the coordinator merges them across shards).
///
/// Why on a grid anchored at the steady start: a staged run's per-stage figures add up
/// whole seconds, so a second that straddled a stage boundary used to blur each stage by
/// up to half a second of its neighbour (a ramp's stage read 5,777 msgs/s for a target of
/// 5,000). Once the steady start `t0` is known the report falls due at `t0` itself
/// (closing the set-up second early) and then at `t0 + k s`, so a stage whose length is a
/// whole number of seconds is covered by exactly its own seconds, in every shard alike
/// and in every part of a split run (they share `t0`). A late wake-up never shifts the
/// grid: the next report is the next grid point still ahead.
async fn report_every_second(
    state: Rc<RefCell<State>>,
    events: std::sync::mpsc::Sender<ShardEvent>,
    index: usize,
    control: Control,
) {
    const SECOND: u64 = 1_000_000_000;
    let mut start_rx = control.start.clone();
    let mut prev = (now_ns(), thread_cpu_ns());
    let mut next = prev.0 + SECOND;
    let mut anchored = false;
    loop {
        if !anchored && let Some(t0) = *start_rx.borrow_and_update() {
            anchored = true;
            next = if t0 > prev.0 { t0 } else { next_on_grid(t0, prev.0) };
        }
        let wait = Duration::from_nanos(next.saturating_sub(now_ns()));
        if anchored {
            tokio::time::sleep(wait).await;
        } else {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // The steady start was set: re-aim at it before this second ends.
                changed = start_rx.changed() => {
                    if changed.is_err() {
                        anchored = true;
                    }
                    continue;
                }
            }
        }
        let (hist, counters, connected) = {
            let mut st = state.borrow_mut();
            let connected = st.net.connected;
            let books = st.settle();
            let h = books.hist.clone();
            books.hist.reset();
            (h, books.counters.clone(), connected)
        };
        let (at_ns, cpu_ns) = (now_ns(), thread_cpu_ns());
        let span_ns = at_ns.saturating_sub(prev.0).max(1);
        let busy = cpu_ns.saturating_sub(prev.1) as f64 / span_ns as f64;
        prev = (at_ns, cpu_ns);
        next = if anchored { next_on_grid(next, at_ns) } else { at_ns + SECOND };
        let msg = ShardEvent::Interval { shard: index, at_ns, hist, counters, connected, busy, span_ns };
        if events.send(msg).is_err() {
            break;
        }
    }
}

/// The first point of the one-second grid through `anchor` that is later than `now`.
fn next_on_grid(anchor: u64, now: u64) -> u64 {
    const SECOND: u64 = 1_000_000_000;
    if now < anchor {
        return anchor;
    }
    anchor + ((now - anchor) / SECOND + 1) * SECOND
}

/// Phase 1: connects every client, paced at the shard's share of `connect_rate`, at most
/// 256 at once. A conversation's handshake starts as soon as both its clients are up.
async fn connect_all(spec: &ShardSpec, control: &Control, state: &Rc<RefCell<State>>, ticker: &Ticker) {
    let gap_ns = if spec.connect_rate > 0.0 { (1e9 / spec.connect_rate) as u64 } else { 0 };
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let start = now_ns();
    // Finished connects are reaped as the loop goes (at most 256 run at once): a finished
    // task's memory, sized for the whole connect future, is only freed once it is joined,
    // and holding every client's until the last connect left it resident.
    let mut joins = tokio::task::JoinSet::new();
    for (i, c) in spec.clients.iter().enumerate() {
        while joins.try_join_next().is_some() {}
        if control.stop.load(Ordering::Relaxed) {
            break;
        }
        if gap_ns > 0 {
            let _ = ticker.sleep_until(start + gap_ns * i as u64).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let (state, target, source, id) = (state.clone(), spec.target.clone(), c.source, c.id);
        let with = Registration { key: c.publish_key, group: c.group, resume: false };
        joins.spawn_local(async move {
            let r = client::connect(&target, source, id, with).await;
            drop(permit);
            bring_up(&state, i, r);
        });
    }
    while joins.join_next().await.is_some() {}
}

/// Phase 2: waits for the handshakes started as devices came up (and the sender keys of
/// relay-fan-out groups handed out over them); a session whose devices did not both
/// connect, or whose handshake did not end in time, has failed. Returns when the first
/// handshake started and the last one finished.
async fn await_handshakes(control: &Control, state: &Rc<RefCell<State>>) -> (u64, u64) {
    state.borrow_mut().fail_unbegun();
    let hs_deadline = now_ns() + HANDSHAKE_TIMEOUT_NS;
    while state.borrow().books.setting_up() && now_ns() < hs_deadline && !control.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut st = state.borrow_mut();
    st.fail_unfinished();
    (st.books.hs_first.unwrap_or(0), st.books.hs_last)
}

/// Waits for the common steady start that the coordinator sets once every shard is ready.
async fn await_start(control: &Control) -> u64 {
    let mut start_rx = control.start.clone();
    loop {
        if let Some(t) = *start_rx.borrow() {
            return t;
        }
        if start_rx.changed().await.is_err() {
            return now_ns();
        }
    }
}

/// What the sending phase cost.
struct Steady {
    /// CPU time of the shard thread while sending, ns.
    cpu_ns: u64,
    /// Messages sent in that time.
    sent: u64,
    /// Times the shard thread was woken in that time.
    wakes: Option<u64>,
}

/// Phase 3: open-loop sending from `t0` (every stage: warm-up, measured, cool-down) on
/// the plan's rate profile until its end or a stop. Every sender's next due time is in one heap.
async fn send_steady(
    spec: &ShardSpec,
    control: &Control,
    state: &Rc<RefCell<State>>,
    ticker: &Ticker,
    t0: u64,
) -> Steady {
    let plan = &spec.plan;
    let measure_from = t0 + spec.warmup_ns;
    let stop_at = t0 + spec.sending_ns;
    {
        let books = &mut state.borrow_mut().books;
        books.measure_from = measure_from;
        books.measure_until = measure_from + spec.duration_ns;
        books.send_from = t0;
    }
    let mut senders = build_senders(&state.borrow(), plan, spec.seed, spec.index);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(senders.len());
    for (i, s) in senders.iter_mut().enumerate() {
        if let Some(first) = s.sched.first(t0, &plan.profile) {
            s.next_ns = first;
            heap.push(Reverse((first, i)));
        }
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // What messages say after their stamp, prepared once for the shard (None: zeros).
    let corpus = Corpus::of(plan);
    let churn = churn::Setup::of(spec)
        .map(|setup| tokio::task::spawn_local(churn::run(setup, control.clone(), state.clone(), t0, stop_at)));
    let (cpu0, wakes0) = (thread_cpu_ns(), thread_wakes());
    let sent0 = state.borrow().books.counters.sent;
    let stall = spec.stall.map(|(after, len)| (t0 + after, t0 + after + len));
    let tick = plan.scenario.traffic.tick.as_nanos() as u64;
    let mut woke = 0u64;
    while !control.stop.load(Ordering::Relaxed) {
        let now = now_ns();
        if now >= stop_at {
            break;
        }
        if let Some((a, b)) = stall
            && now >= a
            && now < b
        {
            let _ = ticker.sleep_until(b).await; // the sending side is held up (test hook)
            continue;
        }
        let mut sent_any = false;
        let mut batch = 0;
        state.borrow_mut().net.batching = true;
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now || due >= stop_at || batch == MAX_BATCH {
                break;
            }
            batch += 1;
            heap.pop();
            let next = send_one(&mut state.borrow_mut(), &mut senders[i], plan, corpus.as_ref(), &mut buf);
            if let Some(n) = next {
                heap.push(Reverse((n, i)));
            }
            sent_any = true;
        }
        {
            // One write per connection for everything this batch put on it.
            let net = &mut state.borrow_mut().net;
            net.flush_dirty();
            net.batching = false;
        }
        // More already due (a batch cut at MAX_BATCH, or what fell due while sending): let
        // the readers run, then send it. Nothing due: straight to the sleep below, which
        // lets them run too — a yield there would cost the runtime a non-blocking
        // `epoll_wait` per tick for nothing.
        if sent_any && heap.peek().is_some_and(|r| r.0.0 <= now_ns().min(stop_at)) {
            tokio::task::yield_now().await;
            continue;
        }
        // Once per tick at most (what falls due meanwhile goes out together at the next
        // wake-up, each message with its own intended time), and every 50 ms at least, to
        // see a stop.
        let due = heap.peek().map(|r| r.0.0).unwrap_or(stop_at).min(stop_at);
        let wake = due.max(woke + tick).min(now + STOP_CHECK_NS);
        let _ = ticker.sleep_until(wake).await;
        woke = wake;
    }
    if let Some(c) = churn {
        c.abort();
    }
    let wakes = thread_wakes().zip(wakes0).map(|(w, w0)| w.saturating_sub(w0));
    Steady { cpu_ns: thread_cpu_ns() - cpu0, sent: state.borrow().books.counters.sent - sent0, wakes }
}

/// Phase 4: cooldown — waits for what is in flight (at most `cooldown`; at most 1 s after a
/// stop, whether it came before or during the cool-down; not at all after an abort), then
/// closes every connection.
async fn drain_and_close(spec: &ShardSpec, control: &Control, state: &Rc<RefCell<State>>) {
    let mut stopped = control.stop.load(Ordering::Relaxed);
    let mut cooldown_end = now_ns() + if stopped { spec.cooldown_ns.min(STOP_DRAIN_NS) } else { spec.cooldown_ns };
    loop {
        // A stop (Ctrl-C, SIGTERM) during the cool-down ends it within a second too.
        if !stopped && control.stop.load(Ordering::Relaxed) {
            stopped = true;
            cooldown_end = cooldown_end.min(now_ns() + STOP_DRAIN_NS);
        }
        let (c, held) = {
            let st = state.borrow();
            (st.books.counters.clone(), st.owed_offline())
        };
        if c.delivered + c.refused_total() + held >= c.sent
            || now_ns() >= cooldown_end
            || control.abort.load(Ordering::Relaxed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let mut st = state.borrow_mut();
        // What devices offline now are owed stays in the relay's mailboxes.
        st.books.counters.undelivered_offline = st.owed_offline();
        st.closing = true;
        for c in &mut st.net.clients {
            c.tx = None; // writers send a close frame and end
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Registers a connected client in the shard and starts its reader and writer tasks and
/// the handshakes of its sessions whose other device is up.
fn bring_up(state: &Rc<RefCell<State>>, i: usize, r: Result<client::Registered, client::ConnectFailure>) {
    match r {
        Ok(reg) => {
            {
                let books = &mut state.borrow_mut().books;
                books.counters.connects_ok += 1;
                client::record(&mut books.hist, &reg);
            }
            bring_up_reader_writer(state, i, reg);
            state.borrow_mut().device_up(i, now_ns());
        }
        Err(client::ConnectFailure::Connect(e)) => {
            let mut st = state.borrow_mut();
            st.books.counters.connects_failed += 1;
            st.first_error.get_or_insert_with(|| format!("connect: {e:#}"));
            tracing::debug!(error = %format!("{e:#}"), "connect failed");
        }
        Err(client::ConnectFailure::Register(e)) => {
            let mut st = state.borrow_mut();
            st.books.counters.connects_ok += 1;
            st.books.counters.registers_failed += 1;
            st.first_error.get_or_insert_with(|| format!("registration: {e:#}"));
            tracing::debug!(error = %format!("{e:#}"), "registration failed");
        }
    }
}

/// Makes `reg` device `i`'s current connection: its sending side and its reader.
fn bring_up_reader_writer(state: &Rc<RefCell<State>>, i: usize, reg: client::Registered) {
    let st = &mut *state.borrow_mut();
    let text = st.wire.text();
    let net = &mut st.net;
    let (sink, source) = reg.ws.split();
    net.clients[i].tx = Some(out::Out::start(sink, QUEUE.max(net.queue), text));
    net.connected += 1;
    let generation = net.clients[i].generation;
    tokio::task::spawn_local(read_loop(state.clone(), i, generation, source));
}

/// Flushes the frames written outside the schedule's batches (handshake messages, acks,
/// protocol replies): woken by the first such write, it runs after the tasks already
/// due, so every reply written by the readers of one wake-up leaves in one flush per
/// connection.
async fn flush_replies(state: Rc<RefCell<State>>) {
    std::future::poll_fn(|cx| {
        let net = &mut state.borrow_mut().net;
        net.flush_dirty();
        net.flusher = Some(cx.waker().clone());
        std::task::Poll::<()>::Pending
    })
    .await;
}

async fn read_loop(state: Rc<RefCell<State>>, i: usize, generation: u32, mut source: Source) {
    while let Some(m) = source.next().await {
        match m {
            Ok(Message::Binary(b)) => {
                let now = now_ns();
                state.borrow_mut().on_frame(i, generation, b, now);
            }
            Ok(Message::Text(t)) => {
                let now = now_ns();
                state.borrow_mut().on_frame(i, generation, t.into(), now);
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    state.borrow_mut().on_disconnect(i, generation, false);
}
