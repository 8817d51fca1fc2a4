//! The writing side of a connection: drains the connection's bounded queue into the
//! socket, one flush per batch, and closes it with the code the reader decided.

use super::Shared;
use super::registry::Peer;
use bytes::Bytes;
use futures_util::SinkExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub(super) type Sink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

/// Frames written per flush.
const WRITE_BATCH: usize = 256;

/// Why the reader ended, and how the writer should close.
pub(super) type CloseWith = Option<(CloseCode, &'static str)>;

pub(super) async fn finish_writer(mut writer: JoinHandle<()>, close_tx: watch::Sender<CloseWith>, close: CloseWith) {
    let _ = close_tx.send(Some(close.unwrap_or((CloseCode::Normal, "bye"))));
    // A writer stuck on a client that does not read gets one second, then is aborted.
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer).await.is_err() {
        writer.abort();
    }
}

pub(super) async fn write_loop(
    shared: Arc<Shared>,
    mut sink: Sink,
    mut rx: mpsc::Receiver<Bytes>,
    me: Peer,
    mut close_rx: watch::Receiver<CloseWith>,
) {
    let mut bytes_out = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = close_rx.changed() => {
                let close = (*close_rx.borrow()).unwrap_or((CloseCode::Normal, "bye"));
                // Frames already queued (errors, acks) go out before the close frame.
                while let Ok(m) = rx.try_recv() {
                    if sink.feed(to_message(m)).await.is_err() { break; }
                }
                let frame = CloseFrame { code: close.0, reason: close.1.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
            m = rx.recv() => {
                let Some(m) = m else { break };
                let mut n = 0;
                let mut next = Some(m);
                let mut failed = false;
                while let Some(m) = next.take() {
                    let len = m.len();
                    if sink.feed(to_message(m)).await.is_err() { failed = true; break; }
                    me.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    bytes_out += len as u64;
                    n += 1;
                    if n < WRITE_BATCH { next = rx.try_recv().ok(); }
                }
                if failed || sink.flush().await.is_err() {
                    break;
                }
                if bytes_out > 1 << 20 {
                    shared.metrics.bytes_out.inc_by(std::mem::take(&mut bytes_out));
                }
            }
        }
    }
    shared.metrics.bytes_out.inc_by(bytes_out);
    rx.close();
    let mut dropped = 0;
    while rx.try_recv().is_ok() {
        dropped += 1;
    }
    shared.metrics.dropped_on_close.inc_by(dropped);
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
