//! The writing side of a connection, polled by the connection's own task beside its
//! reading side (one task per connection: a second task and the channel between them
//! were ~2.5 KB that every idle connection carried).
//!
//! It drains the connection's queue into the socket, one flush per batch; when the queue
//! is empty, it takes the client's stored frames from its mailbox (flow control: the
//! mailbox moves only as fast as the socket takes it, and a frame leaves the mailbox only
//! once it has been written). At the end, [`finish`] hands what it could not write back
//! to the mailbox and closes with the code the reading side decided.

use super::Shared;
use super::registry::Peer;
use bytes::Bytes;
use futures_util::{Sink as _, SinkExt};
use sealcore::frame::{FLAG_GROUP, FrameType};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub(super) type Sink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, Message>;

/// Frames written per flush.
const WRITE_BATCH: usize = 256;
/// Batches written per poll before the writing side lets the reading side run.
const BATCHES_PER_POLL: usize = 4;
/// Stored frames taken from the mailbox per flush, and their bytes (at least one frame).
const MAIL_BATCH: usize = 64;
const MAIL_BATCH_BYTES: usize = 256 * 1024;
/// How long a closing connection may take to finish the batch it is writing, and then
/// its last frames and the close frame (a client that does not read never takes them).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the reader ended, and how the writer should close.
pub(super) type CloseWith = Option<(CloseCode, &'static str)>;

/// What the writing side has to say to the connection's task.
pub(super) enum Written {
    /// The socket failed: the connection ends, without a close frame.
    Failed,
    /// Another connection's task marked this one a slow consumer.
    Killed,
}

/// The writing side of one connection.
pub(super) struct Writer<S> {
    sink: Sink<S>,
    /// The batch being written: fed to the sink up to `fed`, then flushed. Its frames come
    /// from the queue, or from the mailbox when `mail`.
    batch: Vec<Bytes>,
    fed: usize,
    mail: bool,
    /// Set by the idle ping: once the queue is next empty, give the batch's and the
    /// queue's memory back.
    release: bool,
    bytes_out: u64,
}

impl<S: super::Io> Writer<S> {
    pub(super) fn new(sink: Sink<S>) -> Self {
        Writer { sink, batch: Vec::new(), fed: 0, mail: false, release: false, bytes_out: 0 }
    }

    /// The connection has been silent for half its idle timeout: the memory its writing
    /// side holds goes back once what it is writing now is written.
    pub(super) fn release_when_idle(&mut self) {
        self.release = true;
    }

    /// Writes what the connection's queue holds, then (when it is empty) the client's
    /// stored frames; `Pending` once there is nothing left or the socket is full. Also
    /// watches `ConnCtl::killed`: the waker registered here is the one every other task
    /// wakes for this connection.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>, shared: &Shared, me: &Peer) -> Poll<Written> {
        let ctl = &me.ctl;
        ctl.waker.register(cx.waker());
        if ctl.killed.load(Ordering::Acquire) {
            return Poll::Ready(Written::Killed);
        }
        let mut batches = 0;
        while batches < BATCHES_PER_POLL {
            if !self.batch.is_empty() {
                if !ready!(self.poll_batch(cx, shared, me)) {
                    return Poll::Ready(Written::Failed);
                }
                batches += 1;
                continue;
            }
            // What the queue holds goes out before the mailbox: WELCOME is queued there
            // before the id is set, and it must precede the stored frames. (Registration
            // runs in this task, between two polls of this function, so it cannot queue
            // WELCOME and set the id between the queue's check and the id's, as it could
            // when the writer was a task of its own.)
            if ctl.take_queued(&mut self.batch, WRITE_BATCH) > 0 {
                self.mail = false;
                continue;
            }
            let id = ctl.id.load(Ordering::Acquire);
            if id != 0 && ctl.mail_pending.load(Ordering::Acquire) {
                shared.registry.peek_mail(id, ctl, &mut self.batch, MAIL_BATCH, MAIL_BATCH_BYTES);
                self.mail = true;
                continue;
            }
            if std::mem::take(&mut self.release) {
                self.batch = Vec::new();
                ctl.release_queue();
            }
            return Poll::Pending;
        }
        // Still more to write: let the reading side (and other tasks) run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Feeds the rest of the batch to the sink and flushes it; then the frames are done
    /// with (the queue's bytes given back, or the stored frames taken out of the mailbox).
    /// `Ready(false)` when the socket failed (the batch stays, to be handed back).
    fn poll_batch(&mut self, cx: &mut Context<'_>, shared: &Shared, me: &Peer) -> Poll<bool> {
        while self.fed < self.batch.len() {
            if ready!(Pin::new(&mut self.sink).poll_ready(cx)).is_err() {
                return Poll::Ready(false);
            }
            let m = self.batch[self.fed].clone();
            self.fed += 1;
            if Pin::new(&mut self.sink).start_send(to_message(m)).is_err() {
                return Poll::Ready(false);
            }
        }
        if ready!(Pin::new(&mut self.sink).poll_flush(cx)).is_err() {
            return Poll::Ready(false);
        }
        let len: usize = self.batch.iter().map(|b| b.len()).sum();
        self.bytes_out += len as u64;
        if self.mail {
            // By identity, not by count: a closing older connection of this id may have
            // put its leftovers in front of these frames meanwhile.
            let id = me.ctl.id.load(Ordering::Acquire);
            shared.registry.written(id, &self.batch, &shared.metrics);
            shared.metrics.mailbox_delivered.inc_by(self.batch.len() as u64);
        } else {
            me.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        }
        self.batch.clear();
        self.fed = 0;
        if self.bytes_out > 1 << 20 {
            shared.metrics.bytes_out.inc_by(std::mem::take(&mut self.bytes_out));
        }
        Poll::Ready(true)
    }
}

/// Ends the writing side after the reading side ended with `close` (`failed`: the
/// writing side itself failed). The batch being written is finished first (at most
/// [`CLOSE_GRACE`]); then what was not written is sorted: direct deliveries go back to the
/// mailbox and the id goes offline, before the close frame; everything else (acks,
/// errors, pings, group deliveries) still goes out before the close frame on an orderly
/// close (at most another [`CLOSE_GRACE`]), or is dropped and counted.
pub(super) async fn finish<S: super::Io>(mut w: Writer<S>, shared: &Shared, me: &Peer, close: CloseWith, failed: bool) {
    let written = !failed
        && (w.batch.is_empty()
            || tokio::time::timeout(CLOSE_GRACE, poll_fn(|cx| w.poll_batch(cx, shared, me))).await.unwrap_or(false));
    let mut pending = Vec::new();
    if !w.mail {
        // Stored frames not written stay stored (they leave the mailbox only once written).
        pending.append(&mut w.batch);
    }
    me.ctl.close_queue(&mut pending);
    let (back, rest): (Vec<Bytes>, Vec<Bytes>) = pending.into_iter().partition(|b| is_direct_deliver(b));
    let mut dropped = rest.iter().filter(|b| !b.is_empty()).count() as u64;
    let back_len: usize = back.iter().map(|b| b.len()).sum();
    // The direct deliveries go back to the mailbox, and the id goes offline, *before* the
    // close frame: a client that sees our close frame and connects again at once finds
    // every frame this connection did not write counted in its WELCOME and waiting for it
    // (handing them back after the close frame let a quick reconnection register first,
    // with a `stored` count short of them, and a client that then read exactly that many
    // left them behind).
    hand_back(shared, me, back);
    if written {
        let close = close.unwrap_or((CloseCode::Normal, "bye"));
        let last = async {
            for m in rest.iter().filter(|b| !b.is_empty()) {
                if w.sink.feed(to_message(m.clone())).await.is_err() {
                    return;
                }
                w.bytes_out += m.len() as u64;
                dropped -= 1;
            }
            let frame = CloseFrame { code: close.0, reason: close.1.into() };
            let _ = w.sink.send(Message::Close(Some(frame))).await;
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, last).await;
    }
    let m = &shared.metrics;
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

/// A 1:1 DELIVER (not a group one): the frames the relay acknowledged to a sender.
fn is_direct_deliver(b: &[u8]) -> bool {
    b.get(1) == Some(&(FrameType::Deliver as u8)) && b.get(10).is_some_and(|f| f & FLAG_GROUP == 0)
}

/// Queued in place of a frame to make the writer send a WebSocket ping (no protocol frame
/// is empty, so an empty buffer cannot be mistaken for one).
pub(super) const PING: Bytes = Bytes::new();

/// A queued buffer as a WebSocket message: frames are binary messages, the empty buffer
/// is a ping. (The queue holds bare `Bytes`, 32 bytes a slot, rather than tungstenite's
/// 56-byte `Message`.)
fn to_message(b: Bytes) -> Message {
    if b.is_empty() { Message::Ping(b) } else { Message::Binary(b) }
}
