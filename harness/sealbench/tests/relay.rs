//! The reference relay, in process on 127.0.0.1:0, driven by real WebSocket clients.

use futures_util::{SinkExt, StreamExt};
use sealbench::relay::metrics::RelayMetrics;
use sealbench::relay::{Relay, RelayConfig};
use sealcore::frame::{self, ErrorCode, FLAG_ACK, FLAG_GROUP, FLAG_STORED, Frame};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct TestRelay {
    addr: SocketAddr,
    metrics: Arc<RelayMetrics>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestRelay {
    async fn start(config: RelayConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let relay = Relay::new(config);
        let metrics = relay.metrics();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(listener, async move {
            let _ = rx.await;
        }));
        Ok(TestRelay { addr, metrics, stop: Some(stop), task })
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn connect(addr: SocketAddr) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, f: Frame<'_>) -> TestResult {
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf)?;
    ws.send(Message::Binary(buf.into())).await?;
    Ok(())
}

/// The next binary message (skipping pings), within two seconds.
async fn recv(ws: &mut Ws) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(2), ws.next()).await?.ok_or("stream ended")??;
        match m {
            Message::Binary(b) => return Ok(b.to_vec()),
            Message::Close(c) => return Err(format!("closed: {c:?}").into()),
            _ => continue,
        }
    }
}

async fn expect_error(ws: &mut Ws, code: ErrorCode) -> TestResult {
    let b = recv(ws).await?;
    match frame::decode(&b)? {
        Frame::Error { code: c, reason, .. } => {
            assert_eq!(c, code as u16, "reason: {reason}");
            assert!(!reason.is_empty());
            Ok(())
        }
        other => Err(format!("expected error {code:?}, got {other:?}").into()),
    }
}

async fn hello(addr: SocketAddr, id: u64) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let mut ws = connect(addr).await?;
    send(&mut ws, Frame::Hello { client_id: id, token: &[] }).await?;
    let b = recv(&mut ws).await?;
    assert!(matches!(frame::decode(&b)?, Frame::Welcome { client_id, .. } if client_id == id));
    Ok(ws)
}

/// A fresh pair of clients still gets a message through (after a hostile case).
async fn assert_pair_works(addr: SocketAddr, a: u64, b: u64) -> TestResult {
    let mut wa = hello(addr, a).await?;
    let mut wb = hello(addr, b).await?;
    send(&mut wa, Frame::Send { request_id: 1, flags: FLAG_ACK, recipient: b, body: b"still alive" }).await?;
    assert_eq!(frame::decode(&recv(&mut wa).await?)?, Frame::Ack { request_id: 1 });
    let got = recv(&mut wb).await?;
    assert_eq!(frame::decode(&got)?, Frame::Deliver { sender: a, flags: 0, group: 0, body: b"still alive" });
    Ok(())
}

#[tokio::test]
async fn one_to_one_delivery_carries_sender_and_body_and_acks_the_request() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    assert_pair_works(relay.addr, 10, 11).await?;
    assert_eq!(relay.metrics.routed.get(), 1);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn group_fan_out_reaches_every_member_exactly_once() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let mut members = Vec::new();
    for id in 1..=5u64 {
        let mut ws = hello(relay.addr, id).await?;
        send(&mut ws, Frame::GroupJoin { request_id: id, group: 77 }).await?;
        assert_eq!(frame::decode(&recv(&mut ws).await?)?, Frame::Ack { request_id: id });
        members.push(ws);
    }
    send(&mut members[0], Frame::GroupSend { request_id: 9, flags: 0, group: 77, body: b"to all" }).await?;
    for ws in members.iter_mut().skip(1) {
        let f = recv(ws).await?;
        assert_eq!(frame::decode(&f)?, Frame::Deliver { sender: 1, flags: FLAG_GROUP, group: 77, body: b"to all" });
        // Exactly once: nothing else arrives.
        assert!(tokio::time::timeout(Duration::from_millis(100), ws.next()).await.is_err());
    }
    assert!(tokio::time::timeout(Duration::from_millis(100), members[0].next()).await.is_err(), "not to the sender");
    let mut outsider = hello(relay.addr, 50).await?;
    send(&mut outsider, Frame::GroupSend { request_id: 3, flags: 0, group: 77, body: b"x" }).await?;
    expect_error(&mut outsider, ErrorCode::NotAMember).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn mailbox_stores_in_order_until_registration_and_refuses_past_its_limit() -> TestResult {
    let relay = TestRelay::start(RelayConfig { mailbox_limit: 3, ..RelayConfig::default() }).await?;
    drop(hello(relay.addr, 2).await?); // known to the relay, then offline
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = hello(relay.addr, 1).await?;
    for i in 0..4u8 {
        send(&mut a, Frame::Send { request_id: i as u64, flags: FLAG_ACK, recipient: 2, body: &[i] }).await?;
    }
    for i in 0..3u64 {
        assert_eq!(frame::decode(&recv(&mut a).await?)?, Frame::Ack { request_id: i });
    }
    expect_error(&mut a, ErrorCode::MailboxFull).await?;
    let mut b = connect(relay.addr).await?;
    send(&mut b, Frame::Hello { client_id: 2, token: &[] }).await?;
    assert!(matches!(frame::decode(&recv(&mut b).await?)?, Frame::Welcome { stored: 3, .. }));
    for i in 0..3u8 {
        let f = recv(&mut b).await?;
        assert_eq!(frame::decode(&f)?, Frame::Deliver { sender: 1, flags: FLAG_STORED, group: 0, body: &[i] });
    }
    assert_eq!(relay.metrics.mailbox_depth.get(), 0);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn auth_token_is_required_and_checked() -> TestResult {
    let secret = b"s3cret".to_vec();
    let relay = TestRelay::start(RelayConfig { auth_secret: Some(secret.clone()), ..RelayConfig::default() }).await?;
    let mut bad = connect(relay.addr).await?;
    send(&mut bad, Frame::Hello { client_id: 5, token: &[0u8; 32] }).await?;
    expect_error(&mut bad, ErrorCode::AuthFailed).await?;
    assert!(recv(&mut bad).await.is_err(), "connection closed after failed auth");
    let mut none = connect(relay.addr).await?;
    send(&mut none, Frame::Hello { client_id: 5, token: &[] }).await?;
    expect_error(&mut none, ErrorCode::AuthFailed).await?;
    let mut good = connect(relay.addr).await?;
    let token = frame::auth_token(&secret, 5);
    send(&mut good, Frame::Hello { client_id: 5, token: &token }).await?;
    assert!(matches!(frame::decode(&recv(&mut good).await?)?, Frame::Welcome { client_id: 5, .. }));
    assert_eq!(relay.metrics.refused_count(ErrorCode::AuthFailed), 2);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_second_connection_claiming_a_connected_id_is_refused() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let _first = hello(relay.addr, 3).await?;
    let mut second = connect(relay.addr).await?;
    send(&mut second, Frame::Hello { client_id: 3, token: &[] }).await?;
    expect_error(&mut second, ErrorCode::DuplicateId).await?;
    assert!(recv(&mut second).await.is_err());
    assert_pair_works(relay.addr, 20, 21).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn hostile_frames_get_error_frames_and_the_connection_keeps_working() -> TestResult {
    let relay = TestRelay::start(RelayConfig { max_message: 1024, ..RelayConfig::default() }).await?;
    let mut ws = hello(relay.addr, 1).await?;
    let _peer = hello(relay.addr, 2).await?;
    // Oversize (but under the hard cap): TOO_LARGE, the connection stays.
    let big = vec![0u8; 2000];
    send(&mut ws, Frame::Send { request_id: 4, flags: 0, recipient: 2, body: &big }).await?;
    expect_error(&mut ws, ErrorCode::TooLarge).await?;
    // Unknown type, wrong version, truncated frame, lying length, text frame.
    ws.send(Message::Binary(vec![1u8, 0x7e, 0, 0].into())).await?;
    expect_error(&mut ws, ErrorCode::UnknownType).await?;
    ws.send(Message::Binary(vec![9u8, 0x02].into())).await?;
    expect_error(&mut ws, ErrorCode::UnsupportedVersion).await?;
    ws.send(Message::Binary(vec![1u8, 0x02, 1, 2, 3].into())).await?;
    expect_error(&mut ws, ErrorCode::Malformed).await?;
    let mut lying = vec![1u8, 0x06];
    lying.extend_from_slice(&1u64.to_le_bytes());
    lying.extend_from_slice(&500u16.to_le_bytes());
    ws.send(Message::Binary(lying.into())).await?;
    expect_error(&mut ws, ErrorCode::Malformed).await?;
    ws.send(Message::Text("hello?".into())).await?;
    expect_error(&mut ws, ErrorCode::TextFrame).await?;
    send(&mut ws, Frame::Send { request_id: 8, flags: 0, recipient: 1, body: b"me" }).await?;
    expect_error(&mut ws, ErrorCode::InvalidTarget).await?;
    send(&mut ws, Frame::KeyFetch { request_id: 9, client: 999 }).await?;
    expect_error(&mut ws, ErrorCode::NoSuchKey).await?;
    // The same connection still routes.
    send(&mut ws, Frame::Send { request_id: 5, flags: FLAG_ACK, recipient: 2, body: b"ok" }).await?;
    assert_eq!(frame::decode(&recv(&mut ws).await?)?, Frame::Ack { request_id: 5 });
    // Far over the cap: error, then the connection is closed (1009); others unaffected.
    let huge = vec![0u8; 8000];
    send(&mut ws, Frame::Send { request_id: 6, flags: 0, recipient: 2, body: &huge }).await?;
    expect_error(&mut ws, ErrorCode::TooLarge).await?;
    assert_pair_works(relay.addr, 30, 31).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn requests_before_hello_are_refused() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let mut ws = connect(relay.addr).await?;
    send(&mut ws, Frame::Send { request_id: 1, flags: 0, recipient: 2, body: b"x" }).await?;
    expect_error(&mut ws, ErrorCode::NotRegistered).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn key_directory_publishes_and_fetches() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let mut a = hello(relay.addr, 1).await?;
    let mut b = hello(relay.addr, 2).await?;
    send(&mut a, Frame::KeyPublish { request_id: 1, key: &[7u8; 32] }).await?;
    assert_eq!(frame::decode(&recv(&mut a).await?)?, Frame::Ack { request_id: 1 });
    send(&mut b, Frame::KeyFetch { request_id: 2, client: 1 }).await?;
    assert_eq!(frame::decode(&recv(&mut b).await?)?, Frame::Key { request_id: 2, client: 1, key: &[7u8; 32] });
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_and_its_queue_stays_bounded() -> TestResult {
    let cfg = RelayConfig { queue_bytes: 256 * 1024, queue_messages: 64, ..RelayConfig::default() };
    let relay = TestRelay::start(cfg).await?;
    let mut sender = hello(relay.addr, 1).await?;
    let _sleeper = hello(relay.addr, 2).await?; // registered, never read again
    let body = vec![0u8; 16 * 1024];
    let mut overloaded = false;
    // Bounded: at most 64 MiB offered (socket buffers absorb a few MiB first).
    for i in 0..4096u64 {
        send(&mut sender, Frame::Send { request_id: i, flags: 0, recipient: 2, body: &body }).await?;
        if let Ok(Some(Ok(Message::Binary(b)))) = tokio::time::timeout(Duration::ZERO, sender.next()).await
            && let Ok(Frame::Error { code, .. }) = frame::decode(&b)
        {
            assert_eq!(code, ErrorCode::RecipientOverloaded as u16);
            overloaded = true;
            break;
        }
    }
    assert!(overloaded, "the sender was told that the recipient could not take the message");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.metrics.queue_overflows.get(), 1);
    assert_eq!(relay.metrics.close_count("slow_consumer"), 1);
    assert_pair_works(relay.addr, 40, 41).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_storm_of_a_thousand_connects_and_disconnects_leaves_the_relay_serving() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let addr = relay.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..20u64 {
        tasks.spawn(async move {
            for k in 0..50u64 {
                let id = 1000 + w * 50 + k;
                let mut ws = hello(addr, id).await?;
                if k % 2 == 0 {
                    ws.close(None).await?;
                } // odd ones just drop the socket
            }
            TestResult::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    assert_eq!(relay.metrics.registrations.get(), 1000);
    assert_pair_works(addr, 1, 2).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while relay.metrics.connections.get() > 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(relay.metrics.connections.get() <= 2, "connections are released");
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn upgrades_past_the_connection_limit_get_http_503() -> TestResult {
    let relay = TestRelay::start(RelayConfig { max_connections: 2, ..RelayConfig::default() }).await?;
    let _a = hello(relay.addr, 1).await?;
    let _b = hello(relay.addr, 2).await?;
    let third = tokio_tungstenite::connect_async(format!("ws://{}", relay.addr)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => return Err(format!("expected HTTP 503, got {other:?}").into()),
    }
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_connections_with_going_away() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let mut ws = hello(relay.addr, 1).await?;
    relay.stop().await;
    let m = tokio::time::timeout(Duration::from_secs(2), ws.next()).await?;
    match m {
        Some(Ok(Message::Close(Some(c)))) => assert_eq!(u16::from(c.code), 1001),
        other => return Err(format!("expected close 1001, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn a_delayed_relay_holds_each_message_for_the_delay() -> TestResult {
    let relay = TestRelay::start(RelayConfig { delay: Duration::from_millis(150), ..RelayConfig::default() }).await?;
    let mut a = hello(relay.addr, 1).await?;
    let mut b = hello(relay.addr, 2).await?;
    let t0 = std::time::Instant::now();
    send(&mut a, Frame::Send { request_id: 1, flags: 0, recipient: 2, body: b"slow" }).await?;
    recv(&mut b).await?;
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150) && took < Duration::from_millis(1000), "{took:?}");
    relay.stop().await;
    Ok(())
}

/// Reads DELIVER frames until `n` have arrived (pings skipped), within `secs`.
async fn read_delivers(
    ws: &mut Ws,
    n: usize,
    secs: u64,
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while out.len() < n {
        let m = tokio::time::timeout_at(deadline, ws.next()).await?.ok_or("stream ended")??;
        match m {
            Message::Binary(b) => match frame::decode(&b)? {
                Frame::Deliver { .. } => out.push(b.to_vec()),
                other => return Err(format!("expected DELIVER, got {other:?}").into()),
            },
            Message::Close(c) => return Err(format!("closed after {} delivers: {c:?}", out.len()).into()),
            _ => {}
        }
    }
    Ok(out)
}

#[tokio::test]
async fn a_mailbox_larger_than_the_send_queue_is_delivered_whole() -> TestResult {
    // 161 × 64 KiB ≈ 10 MiB stored against an 8 MiB send queue (the defaults).
    let relay = TestRelay::start(RelayConfig::default()).await?;
    let mut b = hello(relay.addr, 2).await?;
    b.close(None).await?;
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = hello(relay.addr, 1).await?;
    let mut body = vec![0u8; 64 * 1024 - 64];
    for i in 0..161u32 {
        body[..4].copy_from_slice(&i.to_le_bytes());
        send(&mut a, Frame::Send { request_id: i.into(), flags: FLAG_ACK, recipient: 2, body: &body }).await?;
        assert_eq!(frame::decode(&recv(&mut a).await?)?, Frame::Ack { request_id: i.into() });
    }
    let mut b = connect(relay.addr).await?;
    send(&mut b, Frame::Hello { client_id: 2, token: &[] }).await?;
    assert!(matches!(frame::decode(&recv(&mut b).await?)?, Frame::Welcome { stored: 161, .. }));
    let got = read_delivers(&mut b, 161, 20).await?;
    for (i, f) in got.iter().enumerate() {
        let Frame::Deliver { sender: 1, flags, body, .. } = frame::decode(f)? else { panic!("not a delivery") };
        assert_eq!(flags, FLAG_STORED);
        assert_eq!(body[..4], (i as u32).to_le_bytes(), "in order");
    }
    // Sent after the mailbox drained: direct, not stored.
    send(&mut a, Frame::Send { request_id: 999, flags: 0, recipient: 2, body: b"later" }).await?;
    let f = read_delivers(&mut b, 1, 5).await?;
    assert_eq!(frame::decode(&f[0])?, Frame::Deliver { sender: 1, flags: 0, group: 0, body: b"later" });
    b.close(None).await?;
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect(relay.addr).await?;
    send(&mut again, Frame::Hello { client_id: 2, token: &[] }).await?;
    assert!(matches!(frame::decode(&recv(&mut again).await?)?, Frame::Welcome { stored: 0, .. }));
    assert_eq!(relay.metrics.mailbox_depth.get(), 0);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn messages_sent_while_a_mailbox_drains_arrive_after_the_stored_ones() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    drop(hello(relay.addr, 2).await?);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = hello(relay.addr, 1).await?;
    let body = vec![7u8; 32 * 1024];
    for i in 0..300u64 {
        send(&mut a, Frame::Send { request_id: i, flags: FLAG_ACK, recipient: 2, body: &body }).await?;
    }
    for i in 0..300u64 {
        assert_eq!(frame::decode(&recv(&mut a).await?)?, Frame::Ack { request_id: i });
    }
    let mut b = connect(relay.addr).await?;
    send(&mut b, Frame::Hello { client_id: 2, token: &[] }).await?;
    // Sent while the 300 stored frames are still being written.
    for i in 0..50u64 {
        send(&mut a, Frame::Send { request_id: 1000 + i, flags: 0, recipient: 2, body: &i.to_le_bytes() }).await?;
    }
    let Frame::Welcome { stored, .. } = frame::decode(&recv(&mut b).await?)? else { panic!("welcome") };
    let got = read_delivers(&mut b, 350, 20).await?;
    assert_eq!(stored, 300);
    let tail: Vec<u64> = got[300..]
        .iter()
        .map(|f| match frame::decode(f) {
            Ok(Frame::Deliver { body, .. }) => u64::from_le_bytes(body.try_into().unwrap_or([9; 8])),
            _ => u64::MAX,
        })
        .collect();
    assert_eq!(tail, (0..50).collect::<Vec<_>>(), "the later ones, in order, after every stored one");
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_reads_loses_no_acknowledged_message() -> TestResult {
    let cfg = RelayConfig { queue_bytes: 256 * 1024, queue_messages: 64, ..RelayConfig::default() };
    let relay = TestRelay::start(cfg).await?;
    let mut sender = hello(relay.addr, 1).await?;
    let mut sleeper = hello(relay.addr, 2).await?; // never reads until it is closed
    let mut body = vec![0u8; 16 * 1024];
    let mut acked = std::collections::BTreeSet::new();
    let mut overloaded = false;
    for i in 0..4096u64 {
        body[..8].copy_from_slice(&i.to_le_bytes());
        send(&mut sender, Frame::Send { request_id: i, flags: FLAG_ACK, recipient: 2, body: &body }).await?;
        while let Ok(Some(Ok(Message::Binary(b)))) = tokio::time::timeout(Duration::ZERO, sender.next()).await {
            match frame::decode(&b)? {
                Frame::Ack { request_id } => {
                    acked.insert(request_id);
                }
                Frame::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::RecipientOverloaded as u16);
                    overloaded = true;
                }
                other => return Err(format!("{other:?}").into()),
            }
        }
        if overloaded {
            break;
        }
    }
    assert!(overloaded, "the sender was told that the recipient could not take the message");
    // Collect the remaining acks (the sender's own queue is read now).
    while let Ok(Some(Ok(Message::Binary(b)))) = tokio::time::timeout(Duration::from_millis(300), sender.next()).await {
        if let Frame::Ack { request_id } = frame::decode(&b)? {
            acked.insert(request_id);
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(relay.metrics.queue_overflows.get(), 1);
    assert_eq!(relay.metrics.close_count("slow_consumer"), 1);
    // What the sleeper's socket still holds, then what its mailbox gives it back.
    let mut got = std::collections::BTreeMap::<u64, u32>::new();
    let mut count = |f: &[u8]| -> TestResult {
        if let Frame::Deliver { body, .. } = frame::decode(f)? {
            *got.entry(u64::from_le_bytes(body[..8].try_into()?)).or_default() += 1;
        }
        Ok(())
    };
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), sleeper.next()).await {
        if let Message::Binary(b) = m {
            count(&b)?;
        }
    }
    // The closed connection hands its unwritten frames back to the mailbox once its close
    // frame is out (bounded by the close grace); on a loaded machine that can come after the
    // socket went quiet. Reconnect after it, so that WELCOME counts them (a hand-back after
    // WELCOME is delivered too, but after the `stored` frames this test reads).
    let handed_back = tokio::time::Instant::now() + Duration::from_secs(10);
    while relay.metrics.requeued_on_close.get() == 0 && tokio::time::Instant::now() < handed_back {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = connect(relay.addr).await?;
    send(&mut back, Frame::Hello { client_id: 2, token: &[] }).await?;
    let Frame::Welcome { stored, .. } = frame::decode(&recv(&mut back).await?)? else { panic!("welcome") };
    for f in read_delivers(&mut back, stored as usize, 10).await? {
        count(&f)?;
    }
    // Frames the old connection handed back after this WELCOME are delivered to the new
    // connection right after (the registry wakes it): read them too.
    let mut late = 0u64;
    while let Ok(Some(Ok(Message::Binary(b)))) = tokio::time::timeout(Duration::from_millis(500), back.next()).await {
        if matches!(frame::decode(&b)?, Frame::Deliver { .. }) {
            late += 1;
            count(&b)?;
        }
    }
    let m = &relay.metrics;
    assert!(m.requeued_on_close.get() > 0, "queued deliveries went back to the mailbox");
    assert_eq!(m.requeued_on_close.get(), u64::from(stored) + late, "every frame handed back reached the device");
    let missing: Vec<_> = acked.iter().filter(|i| !got.contains_key(i)).collect();
    assert!(missing.is_empty(), "acknowledged and never delivered: {missing:?} of {}", acked.len());
    assert_pair_works(relay.addr, 40, 41).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn mailboxes_are_bounded_in_bytes_and_only_for_known_ids() -> TestResult {
    let cfg = RelayConfig { mailbox_bytes: 100 * 1024, mailbox_total_bytes: 150 * 1024, ..RelayConfig::default() };
    let relay = TestRelay::start(cfg).await?;
    for id in [2, 3, 4] {
        drop(hello(relay.addr, id).await?);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = hello(relay.addr, 1).await?;
    let body = vec![0u8; 60 * 1024];
    let mut outcome = Vec::new();
    for (i, to) in [(1u64, 2u64), (2, 2), (3, 3), (4, 4), (5, 999)] {
        send(&mut a, Frame::Send { request_id: i, flags: FLAG_ACK, recipient: to, body: &body }).await?;
        outcome.push(match frame::decode(&recv(&mut a).await?)? {
            Frame::Ack { .. } => 0,
            Frame::Error { code, .. } => code,
            other => return Err(format!("{other:?}").into()),
        });
    }
    let full = ErrorCode::MailboxFull as u16;
    // 2: one fits its 100 KiB; 3 fits; 4 would pass the 150 KiB total; 999: unknown.
    assert_eq!(outcome, vec![0, full, 0, full, ErrorCode::UnknownRecipient as u16]);
    let m = &relay.metrics;
    assert_eq!(m.refused_count(ErrorCode::MailboxFull), 2);
    assert_eq!(m.refused_count(ErrorCode::UnknownRecipient), 1);
    let text = m.encode();
    assert!(text.contains("sealbench_relay_mailbox_refusals_total{limit=\"bytes\"} 1"), "{text}");
    assert!(text.contains("sealbench_relay_mailbox_refusals_total{limit=\"total_bytes\"} 1"), "{text}");
    assert!(m.mailbox_bytes.get() > 2 * 60 * 1024);
    relay.stop().await;
    Ok(())
}

/// The close code of the next close frame, within `secs`, and whether a ping came first.
async fn close_code(ws: &mut Ws, secs: f64) -> Result<(u16, bool), Box<dyn std::error::Error + Send + Sync>> {
    let mut pinged = false;
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs_f64(secs), ws.next()).await?.ok_or("ended without close")??;
        match m {
            Message::Close(Some(c)) => return Ok((u16::from(c.code), pinged)),
            Message::Ping(_) => pinged = true,
            _ => {}
        }
    }
}

#[tokio::test]
async fn without_hello_a_connection_is_closed_at_the_handshake_timeout() -> TestResult {
    let cfg = RelayConfig {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let relay = TestRelay::start(cfg).await?;
    let mut ws = connect(relay.addr).await?;
    let t0 = std::time::Instant::now();
    let (code, _) = close_code(&mut ws, 5.0).await?;
    assert_eq!(code, 1008);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(relay.metrics.close_count("no_hello"), 1);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn idle_clients_are_pinged_at_half_and_closed_at_the_idle_timeout_unless_they_answer() -> TestResult {
    let idle = Duration::from_millis(800);
    let relay = TestRelay::start(RelayConfig { idle_timeout: idle, ..RelayConfig::default() }).await?;
    // Readers answer pings (tungstenite replies while reading): never closed.
    let mut readers = Vec::new();
    for id in 1..=4u64 {
        readers.push(tokio::spawn({
            let addr = relay.addr;
            async move {
                let mut ws = hello(addr, id).await?;
                let until = tokio::time::Instant::now() + Duration::from_millis(3000);
                let mut pings = 0;
                while let Ok(m) = tokio::time::timeout_at(until, ws.next()).await {
                    match m.ok_or("ended")?? {
                        Message::Ping(_) => pings += 1,
                        Message::Close(c) => return Err(format!("a client answering pings was closed: {c:?}").into()),
                        _ => {}
                    }
                }
                Ok::<u32, Box<dyn std::error::Error + Send + Sync>>(pings)
            }
        }));
        tokio::time::sleep(Duration::from_millis(97)).await; // staggered
    }
    // A silent client: never reads, so never answers; it is closed with 4002 after one ping.
    let mut silent = hello(relay.addr, 9).await?;
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, pinged) = close_code(&mut silent, 1.0).await?;
    assert_eq!((code, pinged), (4002, true));
    for r in readers {
        assert!(r.await?? >= 2, "pinged while quiet");
    }
    assert!(t0.elapsed() >= idle);
    assert_eq!(relay.metrics.close_count("idle"), 1);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_connection_that_fell_silent_routes_intact_frames_after_its_arena_is_released() -> TestResult {
    // The idle timer's ping (at half the idle timeout) releases the sender's arena; the
    // frames carved afterwards from fresh, growing blocks (bodies that cross a block
    // boundary included) arrive intact, acks too.
    let relay =
        TestRelay::start(RelayConfig { idle_timeout: Duration::from_millis(600), ..RelayConfig::default() }).await?;
    let mut wa = hello(relay.addr, 1).await?;
    let mut wb = hello(relay.addr, 2).await?;
    for round in 0..4u64 {
        let body = format!("round {round} {}", "x".repeat(700 * round as usize));
        send(&mut wa, Frame::Send { request_id: round, flags: FLAG_ACK, recipient: 2, body: body.as_bytes() }).await?;
        assert_eq!(frame::decode(&recv(&mut wa).await?)?, Frame::Ack { request_id: round });
        let got = recv(&mut wb).await?;
        assert_eq!(frame::decode(&got)?, Frame::Deliver { sender: 1, flags: 0, group: 0, body: body.as_bytes() });
        // Silent past half the idle timeout (pinged), not to the whole of it.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(relay.metrics.close_count("idle"), 0);
    relay.stop().await;
    Ok(())
}

#[tokio::test]
async fn every_client_frame_gets_the_documented_answer_in_every_state() -> TestResult {
    let relay = TestRelay::start(RelayConfig::default()).await?;
    // Before HELLO: a bad version or type is refused as such; any request is NOT_REGISTERED.
    let mut fresh = connect(relay.addr).await?;
    fresh.send(Message::Binary(vec![9u8, 0x02].into())).await?;
    expect_error(&mut fresh, ErrorCode::UnsupportedVersion).await?;
    fresh.send(Message::Binary(vec![1u8, 0x83, 7, 0, 0, 0, 0, 0, 0, 0].into())).await?;
    expect_error(&mut fresh, ErrorCode::UnknownType).await?;
    send(&mut fresh, Frame::KeyFetch { request_id: 3, client: 1 }).await?;
    expect_error(&mut fresh, ErrorCode::NotRegistered).await?;
    // Registered: relay→client types are UNKNOWN_TYPE even when their layout fits.
    let mut ws = hello(relay.addr, 1).await?;
    for f in [
        Frame::Ack { request_id: 7 },
        Frame::Welcome { client_id: 1, stored: 0, max_message: 1 },
        Frame::Deliver { sender: 2, flags: 0, group: 0, body: b"x" },
        Frame::Error { request_id: 1, code: 1, reason: "r" },
    ] {
        send(&mut ws, f).await?;
        expect_error(&mut ws, ErrorCode::UnknownType).await?;
    }
    // Group 0 is INVALID_TARGET for join, leave and send.
    send(&mut ws, Frame::GroupJoin { request_id: 1, group: 0 }).await?;
    expect_error(&mut ws, ErrorCode::InvalidTarget).await?;
    send(&mut ws, Frame::GroupLeave { request_id: 2, group: 0 }).await?;
    expect_error(&mut ws, ErrorCode::InvalidTarget).await?;
    send(&mut ws, Frame::GroupSend { request_id: 3, flags: 0, group: 0, body: b"x" }).await?;
    expect_error(&mut ws, ErrorCode::InvalidTarget).await?;
    // KEY_PUBLISH, GROUP_JOIN and GROUP_LEAVE are ACKed; a second HELLO is refused.
    send(&mut ws, Frame::KeyPublish { request_id: 4, key: &[1u8; 32] }).await?;
    assert_eq!(frame::decode(&recv(&mut ws).await?)?, Frame::Ack { request_id: 4 });
    send(&mut ws, Frame::GroupJoin { request_id: 5, group: 9 }).await?;
    assert_eq!(frame::decode(&recv(&mut ws).await?)?, Frame::Ack { request_id: 5 });
    send(&mut ws, Frame::GroupLeave { request_id: 6, group: 9 }).await?;
    assert_eq!(frame::decode(&recv(&mut ws).await?)?, Frame::Ack { request_id: 6 });
    send(&mut ws, Frame::Hello { client_id: 1, token: &[] }).await?;
    expect_error(&mut ws, ErrorCode::AlreadyRegistered).await?;
    // A SEND without the ACK flag to an online peer gets nothing back.
    let _peer = hello(relay.addr, 2).await?;
    send(&mut ws, Frame::Send { request_id: 8, flags: 0, recipient: 2, body: b"x" }).await?;
    assert!(tokio::time::timeout(Duration::from_millis(200), ws.next()).await.is_err());
    relay.stop().await;
    Ok(())
}
