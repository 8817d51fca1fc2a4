//! The adversarial relay mode: each action happens at its configured fraction, only to
//! E2E transport messages, and the relay's counts are exactly what a receiver observes.

use futures_util::{SinkExt, StreamExt};
use sealbench::relay::{Adversary, Relay, RelayConfig};
use sealcore::frame::{self, FLAG_ACK, Frame};
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn send(ws: &mut Ws, f: Frame<'_>) -> TestResult {
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf)?;
    ws.send(Message::Binary(buf.into())).await?;
    Ok(())
}

async fn hello(addr: std::net::SocketAddr, id: u64) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    send(&mut ws, Frame::Hello { client_id: id, token: &[] }).await?;
    let m = tokio::time::timeout(Duration::from_secs(2), ws.next()).await?.ok_or("ended")??;
    assert!(matches!(frame::decode(&m.into_data())?, Frame::Welcome { .. }));
    Ok(ws)
}

/// A transport-kind E2E body: kind 2, conversation, counter = seq, then filler and a "tag".
fn body(seq: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0xA5u8; len];
    b[0] = 2;
    b[1..5].copy_from_slice(&1u32.to_le_bytes());
    b[5..13].copy_from_slice(&seq.to_le_bytes());
    b
}

#[tokio::test]
async fn each_adversary_action_happens_at_its_fraction_and_is_counted_exactly() -> TestResult {
    let adversary = Adversary {
        tamper: 0.05,
        replay: 0.05,
        duplicate: 0.05,
        drop: 0.05,
        reorder: 0.05,
        delay: 0.05,
        delay_by: Duration::from_millis(30),
        seed: 7,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(RelayConfig { adversary: Some(adversary), ..RelayConfig::default() });
    let metrics = relay.metrics();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay.serve(listener, async move {
        let _ = rx.await;
    }));
    let mut a = hello(addr, 1).await?;
    let mut b = hello(addr, 2).await?;
    let n = 4000u64;
    let len = 64;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(800), b.next()).await {
            if let Message::Binary(f) = m
                && let Frame::Deliver { body, .. } = frame::decode(&f)?
            {
                got.push(body.to_vec());
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(got)
    });
    // A handshake-kind message is never touched.
    let mut hs = body(u64::MAX, len);
    hs[0] = 1;
    send(&mut a, Frame::Send { request_id: 0, flags: 0, recipient: 2, body: &hs }).await?;
    for seq in 0..n {
        send(&mut a, Frame::Send { request_id: seq + 1, flags: FLAG_ACK, recipient: 2, body: &body(seq, len) }).await?;
        if seq % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await; // spread over > delay_by
        }
    }
    // Every send is ACKed, dropped ones included.
    let mut acks = 0;
    while acks < n {
        let m = tokio::time::timeout(Duration::from_secs(5), a.next()).await?.ok_or("ended")??;
        if matches!(frame::decode(&m.into_data())?, Frame::Ack { .. }) {
            acks += 1;
        }
    }
    let got = reader.await??;
    let c = metrics.adversary_counts();
    let _ = stop.send(());
    let _ = server.await;

    assert_eq!(got[0], hs, "the handshake message passed untouched, first");
    let (mut copies, mut tampered, mut late) = (HashMap::<u64, u64>::new(), 0u64, 0u64);
    let mut highest = None::<u64>;
    for f in &got[1..] {
        let seq = u64::from_le_bytes(f[5..13].try_into()?);
        if f[..] != body(seq, len)[..] {
            tampered += 1;
        }
        let k = copies.entry(seq).or_default();
        *k += 1;
        if *k == 1 {
            if highest.is_some_and(|h| h > seq) {
                late += 1;
            }
            highest = highest.max(Some(seq));
        }
    }
    let dropped = n - copies.len() as u64;
    let extra: u64 = copies.values().map(|k| k - 1).sum();
    let frac = |x: u64| x as f64 / n as f64;
    for (name, x) in [
        ("tampered", c.tampered),
        ("replayed", c.replayed),
        ("duplicated", c.duplicated),
        ("dropped", c.dropped),
        ("reordered", c.reordered),
        ("delayed", c.delayed),
    ] {
        assert!((frac(x) - 0.05).abs() < 0.02, "{name}: {x} of {n}");
    }
    assert_eq!(tampered, c.tampered, "tampered bodies seen");
    assert_eq!(dropped, c.dropped, "messages never seen");
    assert_eq!(extra, c.replayed + c.duplicated, "second copies seen");
    // Arrived after a later one: every reordered and delayed message (a delayed one near
    // the very end may have no later one to overtake it).
    assert!(late <= c.reordered + c.delayed && late + 3 >= c.reordered + c.delayed, "{late} vs {c:?}");
    Ok(())
}
