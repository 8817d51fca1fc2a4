//! A client's sending side, written by the shard itself.
//!
//! The schedule (and the reply to a received frame) hands a frame straight to the
//! connection's WebSocket sink — framed and masked into its write buffer, no channel and
//! no task wake-up per message — and the shard flushes every connection it wrote to once
//! per batch: one `send` per connection per scheduler tick, however many frames fell due
//! on it. Only when a socket cannot take more (the kernel's send buffer is full) does a
//! per-connection drain task take over, woken once, until the backlog is written; frames
//! queued meanwhile keep their order behind it.
//!
//! Why not a writer task per client fed by a channel (as before): that costs a channel
//! hop and a task wake-up for every message, which on a loaded driver is more than the
//! framing itself (see docs/PERFORMANCE.md, "the driver's write path").

use super::super::client::Sink;
use bytes::Bytes;
use futures_util::Sink as _;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Time a closing connection has to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What [`Out::send`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// In the connection's write buffer, which was clean: flush it at the end of the batch.
    Dirty,
    /// Taken (in a write buffer already due for a flush, or queued behind a backlog).
    Taken,
    /// Refused: the connection is broken (what it carried is lost with it, and counted
    /// so by the reader that sees it end).
    Refused,
}

/// The sending side of one connection (`Some` in the shard's client while it is online).
/// Dropping it closes the connection (a close frame, then the drain task ends).
#[derive(Debug)]
pub(super) struct Out {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    sink: Sink,
    /// Frames taken while the sink could not accept them, in order.
    backlog: VecDeque<Bytes>,
    /// Backlog past which [`Out::capacity`] is 0: the generator holds its messages back.
    /// Control frames (handshakes, key claims, commits) are taken beyond it — they are
    /// few, and dropping one would break a session or a group without a trace.
    limit: usize,
    /// Frames are in the sink's buffer that no flush has written yet.
    unflushed: bool,
    /// The drain task, parked while there is nothing for it.
    drain: Option<Waker>,
    /// Frames go out as text frames (the wire's choice: XMPP), not binary ones.
    text: bool,
    /// The shard dropped this connection.
    closing: bool,
    /// A write failed: the reader sees the end of the connection and takes it down.
    broken: bool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out").field("backlog", &self.backlog.len()).field("broken", &self.broken).finish()
    }
}

/// `frame` as a WebSocket message: binary, or text for a text wire (whose frames are
/// ASCII XML: one that is not UTF-8 goes as binary, which the server refuses by name).
fn message(text: bool, frame: Bytes) -> Message {
    if !text {
        return Message::Binary(frame);
    }
    // A clone of `Bytes` is a reference count, not a copy.
    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(frame.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(frame),
    }
}

impl Out {
    /// Takes over `sink` and starts its drain task on the current `LocalSet`; `limit` is
    /// the backlog at which the generator holds back; `text`: send text frames (XMPP).
    pub(super) fn start(sink: Sink, limit: usize, text: bool) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            sink,
            backlog: VecDeque::new(),
            limit,
            unflushed: false,
            drain: None,
            text,
            closing: false,
            broken: false,
        }));
        tokio::task::spawn_local(drain(inner.clone()));
        Out { inner }
    }

    /// Frames the connection can still take before the generator must hold back.
    pub(super) fn capacity(&self) -> usize {
        let i = self.inner.borrow();
        if i.broken { 0 } else { i.limit.saturating_sub(i.backlog.len()) }
    }

    /// Hands `frame` to the connection (see [`Sent`]). A data message is sent only when
    /// [`Out::capacity`] has room for it.
    pub(super) fn send(&self, frame: Bytes) -> Sent {
        let mut i = self.inner.borrow_mut();
        if i.broken {
            return Sent::Refused;
        }
        if !i.backlog.is_empty() {
            i.backlog.push_back(frame);
            return Sent::Taken;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let text = i.text;
        match Pin::new(&mut i.sink).poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => match Pin::new(&mut i.sink).start_send(message(text, frame)) {
                Ok(()) if i.unflushed => Sent::Taken,
                Ok(()) => {
                    i.unflushed = true;
                    Sent::Dirty
                }
                Err(_) => i.fail(),
            },
            Poll::Pending => {
                // The socket is full: the drain task writes the rest when it can.
                i.backlog.push_back(frame);
                i.wake_drain();
                Sent::Taken
            }
            Poll::Ready(Err(_)) => i.fail(),
        }
    }

    /// Writes what the sink buffers (one `send` for every frame of the batch); hands the
    /// rest to the drain task when the socket cannot take it all now.
    pub(super) fn flush(&self) {
        let mut i = self.inner.borrow_mut();
        if !i.unflushed || i.broken || !i.backlog.is_empty() {
            return; // nothing to write, or the drain task has it
        }
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut i.sink).poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => i.unflushed = false,
            // Polled with a no-op waker: the drain task polls again with its own.
            Poll::Pending => i.wake_drain(),
            Poll::Ready(Err(_)) => {
                i.fail();
            }
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.closing = true;
        i.wake_drain();
    }
}

impl Inner {
    fn wake_drain(&mut self) {
        if let Some(w) = self.drain.take() {
            w.wake();
        }
    }

    fn fail(&mut self) -> Sent {
        self.broken = true;
        self.backlog.clear();
        self.wake_drain();
        Sent::Refused
    }

    /// The drain task's step: writes the backlog and flushes with the task's own waker.
    /// Ready(true) when the connection is closing and everything was written, Ready(false)
    /// when it broke.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.broken {
            return Poll::Ready(false);
        }
        while !self.backlog.is_empty() {
            match Pin::new(&mut self.sink).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let frame = self.backlog.pop_front().unwrap_or_default();
                    let text = self.text;
                    if Pin::new(&mut self.sink).start_send(message(text, frame)).is_err() {
                        self.fail();
                        return Poll::Ready(false);
                    }
                    self.unflushed = true;
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    self.fail();
                    return Poll::Ready(false);
                }
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.sink).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    self.fail();
                    return Poll::Ready(false);
                }
            }
        }
        if self.closing {
            return Poll::Ready(true);
        }
        self.drain = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The connection's drain task: idle until the socket backs up or the connection closes;
/// sends the close frame at the end.
async fn drain(inner: Rc<RefCell<Inner>>) {
    let written = std::future::poll_fn(|cx| inner.borrow_mut().poll_drain(cx)).await;
    if written {
        let close = std::future::poll_fn(|cx| Pin::new(&mut inner.borrow_mut().sink).poll_close(cx));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Frames put on a connection whose reader is not reading pile up in the kernel, then
    /// in the backlog (the drain task's), then are refused at the limit; once the reader
    /// reads, every frame taken arrives, in order, and dropping the `Out` closes the
    /// connection with a close frame.
    #[test]
    fn a_full_socket_backs_up_in_order_and_loses_nothing() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio_tungstenite::accept_async(tcp).await.unwrap()
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tcp: Box<dyn crate::driver::client::Transport> = Box::new(tcp);
            let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await.unwrap();
            let mut server = server.await.unwrap();
            let (sink, _source) = ws.split();
            let out = Out::start(sink, 8, false);
            // 64 KiB frames until the backlog is full: the kernel's buffers take a few MiB.
            let frame = |n: u32| Bytes::from([n.to_be_bytes().to_vec(), vec![0u8; 64 * 1024]].concat());
            let mut taken = 0u32;
            while out.capacity() > 0 && taken < 2_000 {
                assert_ne!(out.send(frame(taken)), Sent::Refused, "a live connection takes every frame");
                taken += 1;
                if taken % 16 == 0 {
                    out.flush();
                    tokio::task::yield_now().await;
                }
            }
            assert_eq!(out.capacity(), 0, "the backlog fills: {taken} taken");
            // A control frame is taken past the limit (and arrives like the rest).
            assert_eq!(out.send(frame(taken)), Sent::Taken);
            taken += 1;
            drop(out);
            let mut next = 0u32;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let m = tokio::time::timeout_at(deadline, server.next()).await.expect("in time");
                match m {
                    Some(Ok(Message::Binary(b))) => {
                        assert_eq!(u32::from_be_bytes(b[..4].try_into().unwrap()), next, "in order");
                        next += 1;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("{e}"),
                }
            }
            assert_eq!(next, taken, "every frame taken arrived before the close");
        });
    }
}
