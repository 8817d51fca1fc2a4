//! The writing side of a connection: drains the connection's bounded queue into the
//! socket, one flush per batch; when the queue is empty, takes the client's stored frames
//! from its mailbox (flow control: the mailbox moves only as fast as the socket takes
//! it, and a frame leaves the mailbox only once it has been written); at the end, closes
//! with the code the reader decided, handing what it could not write back to the mailbox
//! before the close frame.

use super::Shared;
use super::registry::Peer;
use bytes::Bytes;
use futures_util::SinkExt;
use sealcore::frame::{FLAG_GROUP, FrameType};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub(super) type Sink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, Message>;

/// Frames written per flush.
const WRITE_BATCH: usize = 256;
/// Stored frames taken from the mailbox per flush, and their bytes (at least one frame).
const MAIL_BATCH: usize = 64;
const MAIL_BATCH_BYTES: usize = 256 * 1024;
/// How long a closing connection may take to write its last frames and the close frame
/// (a client that does not read never takes them).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the reader ended, and how the writer should close.
pub(super) type CloseWith = Option<(CloseCode, &'static str)>;

/// What the reader tells its writer: one channel for both orders (a watch channel is a
/// few hundred bytes, and every connection has one).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Orders {
    /// Set when the reader ends: close with this code and reason.
    pub close: Option<(CloseCode, &'static str)>,
    /// Set when the grace period is over: the writer abandons the socket at once.
    pub stop: bool,
}

/// The writer's handles, kept by the reader.
pub(super) struct WriterHandle {
    pub task: JoinHandle<()>,
    pub orders: watch::Sender<Orders>,
}

/// Tells the writer to close with `close` and waits for it (at most twice
/// [`CLOSE_GRACE`]). The writer hands what it could not write back to the mailbox itself,
/// before its close frame.
pub(super) async fn finish_writer(mut w: WriterHandle, close: CloseWith) {
    w.orders.send_modify(|o| o.close = Some(close.unwrap_or((CloseCode::Normal, "bye"))));
    if tokio::time::timeout(CLOSE_GRACE, &mut w.task).await.is_ok() {
        return;
    }
    w.orders.send_modify(|o| o.stop = true);
    if tokio::time::timeout(CLOSE_GRACE, &mut w.task).await.is_err() {
        // Past its grace, a writer is only ever stuck on the socket, after it handed
        // its frames back.
        w.task.abort();
    }
}

struct Writer<S> {
    shared: Arc<Shared>,
    sink: Sink<S>,
    me: Peer,
    /// Watched for [`Orders::stop`] while a write waits.
    stop: watch::Receiver<Orders>,
    /// Frames from the queue fed to the sink and not yet flushed.
    in_flight: Vec<Bytes>,
    bytes_out: u64,
}

impl<S: super::Io> Writer<S> {
    async fn feed(&mut self, m: Bytes) -> bool {
        let len = m.len() as u64;
        let fut = self.sink.feed(to_message(m));
        let stop = &mut self.stop;
        let ok = tokio::select! {
            biased;
            r = fut => r.is_ok(),
            _ = stop.wait_for(|o| o.stop) => false,
        };
        if ok {
            self.bytes_out += len;
        }
        ok
    }

    async fn flush(&mut self) -> bool {
        let fut = self.sink.flush();
        let stop = &mut self.stop;
        tokio::select! {
            biased;
            r = fut => r.is_ok(),
            _ = stop.wait_for(|o| o.stop) => false,
        }
    }

    /// Writes a batch from the queue, starting with `first`. False when the socket failed.
    async fn write_queued(&mut self, first: Bytes, rx: &mut mpsc::Receiver<Bytes>) -> bool {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(m) = next.take() {
            self.in_flight.push(m.clone());
            if !self.feed(m).await {
                return false;
            }
            n += 1;
            if n < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !self.flush().await {
            return false;
        }
        let len: usize = self.in_flight.drain(..).map(|b| b.len()).sum();
        self.me.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        true
    }

    /// Writes a batch of stored frames; they leave the mailbox once flushed. False when the
    /// socket failed (they stay stored).
    async fn write_mail(&mut self) -> bool {
        let id = self.me.ctl.id.load(Ordering::Acquire);
        let batch = self.shared.registry.peek_mail(id, &self.me.ctl, MAIL_BATCH, MAIL_BATCH_BYTES);
        if batch.is_empty() {
            return true;
        }
        for m in &batch {
            if !self.feed(m.clone()).await {
                return false;
            }
        }
        if !self.flush().await {
            return false;
        }
        // By identity, not by count: a closing older connection of this id may have put
        // its leftovers in front of these frames meanwhile.
        self.shared.registry.written(id, &batch, &self.shared.metrics);
        self.shared.metrics.mailbox_delivered.inc_by(batch.len() as u64);
        true
    }
}

/// Resolves when the writer should take frames from the mailbox: it has some, and the
/// connection has registered and queued WELCOME (which must come first).
async fn mail_ready(me: &Peer) {
    loop {
        if me.ctl.mail_pending.load(Ordering::Acquire) && me.ctl.id.load(Ordering::Acquire) != 0 {
            return;
        }
        me.ctl.mail_notify.notified().await;
    }
}

pub(super) async fn write_loop<S: super::Io>(
    shared: Arc<Shared>,
    sink: Sink<S>,
    mut rx: mpsc::Receiver<Bytes>,
    me: Peer,
    mut orders: watch::Receiver<Orders>,
) {
    let stop = orders.clone();
    let mut w = Writer { shared, sink, me: me.clone(), stop, in_flight: Vec::new(), bytes_out: 0 };
    let mut closing = None;
    loop {
        tokio::select! {
            biased;
            _ = orders.changed() => {
                closing = Some(orders.borrow().close.unwrap_or((CloseCode::Normal, "bye")));
                break;
            }
            m = rx.recv() => {
                let Some(m) = m else { break };
                if !w.write_queued(m, &mut rx).await { break; }
            }
            _ = mail_ready(&me) => {
                // The queue was polled empty just before, but WELCOME may have arrived in
                // it since (it is queued before the id is set, which `mail_ready` saw):
                // whatever the queue holds now goes out before the mailbox.
                if let Ok(m) = rx.try_recv()
                    && !w.write_queued(m, &mut rx).await
                {
                    break;
                }
                if !w.write_mail().await { break; }
            }
        }
        if w.bytes_out > 1 << 20 {
            w.shared.metrics.bytes_out.inc_by(std::mem::take(&mut w.bytes_out));
        }
    }
    // What was not written: direct deliveries go back to the mailbox (below, before the
    // close frame); everything else (acks, errors, pings, group deliveries) is dropped and
    // counted. On an orderly close, acks and errors still go out before the close frame.
    rx.close();
    let mut pending: Vec<Bytes> = std::mem::take(&mut w.in_flight);
    while let Ok(m) = rx.try_recv() {
        pending.push(m);
    }
    let (back, rest): (Vec<Bytes>, Vec<Bytes>) = pending.into_iter().partition(|b| is_direct_deliver(b));
    let mut dropped = rest.iter().filter(|b| !b.is_empty()).count() as u64;
    let back_len: usize = back.iter().map(|b| b.len()).sum();
    // The direct deliveries go back to the mailbox, and the id goes offline, *before* the
    // close frame: a client that sees our close frame and connects again at once finds
    // every frame this connection did not write counted in its WELCOME and waiting for it
    // (handing them back after the close frame let a quick reconnection register first,
    // with a `stored` count short of them, and a client that then read exactly that many
    // left them behind).
    hand_back(&w.shared, &me, back);
    if let Some(close) = closing {
        for m in rest.iter().filter(|b| !b.is_empty()) {
            if !w.feed(m.clone()).await {
                break;
            }
            dropped -= 1;
        }
        let frame = CloseFrame { code: close.0, reason: close.1.into() };
        let close_msg = w.sink.send(Message::Close(Some(frame)));
        let _ = guarded(&mut w.stop, close_msg).await;
    }
    let m = &w.shared.metrics;
    m.bytes_out.inc_by(w.bytes_out);
    m.dropped_on_close.inc_by(dropped);
    let len: usize = back_len + rest.iter().map(|b| b.len()).sum::<usize>();
    me.ctl.queued_bytes.fetch_sub(len.min(me.ctl.queued_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
}

/// Puts `back` (direct DELIVER frames queued to this connection and not written, in
/// order) at the front of its client's mailbox and marks the id offline, if this
/// connection is still the id's. Acknowledged frames are kept past `mailbox_total_bytes`,
/// up to twice it.
fn hand_back(shared: &Shared, me: &Peer, back: Vec<Bytes>) {
    let id = me.ctl.id.load(Ordering::Acquire);
    if id == 0 {
        shared.metrics.dropped_on_close.inc_by(back.len() as u64);
        return;
    }
    let cap = shared.config.mailbox_total_bytes.saturating_mul(2);
    let (n, dropped) = shared.registry.unregister(id, me.ctl.generation, back, cap, &shared.metrics);
    shared.metrics.requeued_on_close.inc_by(n as u64);
    shared.metrics.dropped_on_close.inc_by(dropped as u64);
}

/// Runs `f` unless the grace period ends first (then `None`).
async fn guarded<T>(stop: &mut watch::Receiver<Orders>, f: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        r = f => Some(r),
        _ = stop.wait_for(|o| o.stop) => None,
    }
}

/// A 1:1 DELIVER (not a group one): the frames the relay acknowledged to a sender.
fn is_direct_deliver(b: &[u8]) -> bool {
    b.get(1) == Some(&(FrameType::Deliver as u8)) && b.get(10).is_some_and(|f| f & FLAG_GROUP == 0)
}

/// Queued in place of a frame to make the writer send a WebSocket ping (no protocol frame
/// is empty, so an empty buffer cannot be mistaken for one).
pub(super) const PING: Bytes = Bytes::new();

/// A queued buffer as a WebSocket message: frames are binary messages, the empty buffer
/// is a ping. (The queue holds bare `Bytes`, 32 bytes a slot, rather than tungstenite's
/// 56-byte `Message`: tokio allocates a channel's first block of slots up front, so this
/// is memory every idle connection carries.)
fn to_message(b: Bytes) -> Message {
    if b.is_empty() { Message::Ping(b) } else { Message::Binary(b) }
}
