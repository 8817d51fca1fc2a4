//! The key directory's pools through the reference relay over real sockets: one-time keys
//! claimed concurrently by many clients are each handed out exactly once, an empty pool
//! falls back (and says so), refused publishes say why, `/metrics` counts claims by what
//! they handed out; one client over its share of the directory is refused while another
//! still publishes; a claimer past its limits is refused with RATE_LIMITED and counted by
//! reason, and what a drain of 1,000 one-time keys takes under the defaults is printed;
//! and an Olm conversation set up
//! from a claimed key survives out-of-order delivery and refuses a replay.

use futures_util::{SinkExt, StreamExt};
use sealbench::relay::{Relay, RelayConfig};
use sealcore::frame::{self, CLAIM_FALLBACK, CLAIM_ONE_TIME, ErrorCode, Frame, POOL_FLAG_FALLBACK, POOL_OLM};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(config: RelayConfig) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Relay::new(config).serve(listener, async move {
        let _ = rx.await;
    }));
    Ok((addr, stop))
}

/// As [`start`], also handing back the relay's metrics.
async fn start_with_metrics(
    config: RelayConfig,
) -> std::io::Result<(
    SocketAddr,
    std::sync::Arc<sealbench::relay::metrics::RelayMetrics>,
    tokio::sync::oneshot::Sender<()>,
)> {
    let relay = Relay::new(config);
    let metrics = relay.metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.serve(listener, async move {
        let _ = rx.await;
    }));
    Ok((addr, metrics, stop))
}

/// Encodes `f` and sends it as one binary message.
async fn send(ws: &mut Ws, f: Frame<'_>) -> TestResult {
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf)?;
    Ok(ws.send(Message::Binary(buf.into())).await?)
}

/// The next binary message, pings skipped, within five seconds.
async fn recv(ws: &mut Ws) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Some(m) = tokio::time::timeout_at(deadline, ws.next()).await? {
        if let Message::Binary(b) = m? {
            return Ok(b.to_vec());
        }
    }
    Err("the relay closed the connection".into())
}

/// A registered connection of client `id`.
async fn hello(addr: SocketAddr, id: u64) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    send(&mut ws, Frame::Hello { client_id: id, token: &[] }).await?;
    let welcome = recv(&mut ws).await?;
    match frame::decode(&welcome)? {
        Frame::Welcome { client_id, .. } if client_id == id => Ok(ws),
        other => Err(format!("expected WELCOME, got {other:?}").into()),
    }
}

async fn publish(
    ws: &mut Ws,
    request_id: u64,
    flags: u8,
    items: &[&[u8]],
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let mut raw = Vec::new();
    let count = frame::put_key_items(items.iter().copied(), &mut raw)?;
    send(ws, Frame::KeysPublish { request_id, pool: POOL_OLM, flags, items: &raw, count }).await?;
    recv(ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_hand_out_each_one_time_key_exactly_once() -> TestResult {
    const KEYS: usize = 200;
    const CLAIMERS: u64 = 40;
    const CLAIMS_EACH: u64 = 8;
    let (addr, stop) = start(RelayConfig::default()).await?;
    let mut owner = hello(addr, 1).await?;
    let keys: Vec<[u8; 32]> = (0..KEYS as u64)
        .map(|i| {
            let mut k = [0xAA; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        })
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let st = publish(&mut owner, 1, 0, &refs).await?;
    assert_eq!(
        frame::decode(&st)?,
        Frame::PoolStatus { request_id: 1, pool: POOL_OLM, available: KEYS as u32, fallback: 0 }
    );
    let st = publish(&mut owner, 2, POOL_FLAG_FALLBACK, &[b"the fallback"]).await?;
    assert_eq!(
        frame::decode(&st)?,
        Frame::PoolStatus { request_id: 2, pool: POOL_OLM, available: KEYS as u32, fallback: 1 }
    );

    // Every claimer connects first, then all claim at once, each with its claims pipelined.
    let mut conns = Vec::new();
    for c in 0..CLAIMERS {
        conns.push(hello(addr, 100 + c).await?);
    }
    let start_line = std::sync::Arc::new(tokio::sync::Barrier::new(CLAIMERS as usize));
    let mut tasks = Vec::new();
    for mut ws in conns {
        let go = start_line.clone();
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            for r in 0..CLAIMS_EACH {
                send(&mut ws, Frame::KeyClaim { request_id: r + 1, client: 1, pool: POOL_OLM }).await?;
            }
            let mut got = Vec::new();
            for _ in 0..CLAIMS_EACH {
                match frame::decode(&recv(&mut ws).await?)? {
                    Frame::Claimed { client: 1, pool: POOL_OLM, source, item, .. } => got.push((source, item.to_vec())),
                    other => return Err(format!("unexpected answer {other:?}").into()),
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(got)
        }));
    }
    let mut one_time = HashSet::new();
    let (mut n_one_time, mut n_fallback) = (0, 0);
    for t in tasks {
        for (source, item) in tokio::time::timeout(Duration::from_secs(30), t).await??? {
            match source {
                CLAIM_ONE_TIME => {
                    n_one_time += 1;
                    assert!(one_time.insert(item), "a one-time key was handed out twice");
                }
                CLAIM_FALLBACK => {
                    n_fallback += 1;
                    assert_eq!(item, b"the fallback");
                }
                s => return Err(format!("unknown source {s}").into()),
            }
        }
    }
    assert_eq!(n_one_time, KEYS, "every one-time key handed out");
    assert_eq!(one_time.len(), KEYS);
    assert_eq!(n_fallback as u64, CLAIMERS * CLAIMS_EACH - KEYS as u64, "then the fallback, marked as such");
    let all: HashSet<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    assert_eq!(one_time, all);

    // The owner tops up: a publish with no items reports the pool, then new keys go out.
    let st = publish(&mut owner, 3, 0, &[]).await?;
    assert_eq!(frame::decode(&st)?, Frame::PoolStatus { request_id: 3, pool: POOL_OLM, available: 0, fallback: 1 });
    publish(&mut owner, 4, 0, &[b"fresh"]).await?;
    let mut c = hello(addr, 99).await?;
    send(&mut c, Frame::KeyClaim { request_id: 5, client: 1, pool: POOL_OLM }).await?;
    let f = recv(&mut c).await?;
    assert!(matches!(frame::decode(&f)?, Frame::Claimed { source: CLAIM_ONE_TIME, item: b"fresh", remaining: 0, .. }));
    let _ = stop.send(());
    Ok(())
}

#[tokio::test]
async fn refused_publishes_and_empty_claims_say_why() -> TestResult {
    let mut config = RelayConfig::default();
    config.key_pools.items_per_pool = 3;
    let (addr, stop) = start(config).await?;
    let mut ws = hello(addr, 5).await?;
    let expect = |b: Vec<u8>, code: ErrorCode| -> TestResult {
        match frame::decode(&b)? {
            Frame::Error { code: c, reason, .. } if c == code as u16 && !reason.is_empty() => Ok(()),
            other => Err(format!("expected {code:?}, got {other:?}").into()),
        }
    };
    expect(publish(&mut ws, 1, 0, &[b"a", b"b", b"c", b"d"]).await?, ErrorCode::BadKey)?;
    expect(publish(&mut ws, 2, POOL_FLAG_FALLBACK, &[b"a", b"b"]).await?, ErrorCode::BadKey)?;
    send(&mut ws, Frame::KeyClaim { request_id: 3, client: 6, pool: POOL_OLM }).await?;
    expect(recv(&mut ws).await?, ErrorCode::NoSuchKey)?;
    // Lying item lengths do not decode.
    send(&mut ws, Frame::KeysPublish { request_id: 4, pool: POOL_OLM, flags: 0, items: &[], count: 0 }).await?;
    assert!(matches!(frame::decode(&recv(&mut ws).await?)?, Frame::PoolStatus { available: 0, .. }));
    let mut bad = vec![1, 8, 9, 0, 0, 0, 0, 0, 0, 0, POOL_OLM, 0, 1, 0, 200, 0];
    bad.extend_from_slice(b"short");
    ws.send(Message::Binary(bad.into())).await?;
    expect(recv(&mut ws).await?, ErrorCode::Malformed)?;
    let _ = stop.send(());
    Ok(())
}

#[tokio::test]
async fn the_relay_exports_its_key_claims_on_metrics_by_what_they_handed_out() -> TestResult {
    // Three one-time keys and a fallback: five claims take the three, then the fallback
    // twice; a claim of a pool that does not exist finds nothing.
    let (addr, metrics, stop) = start_with_metrics(RelayConfig::default()).await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = http.local_addr()?;
    let (stop_http, rx_http) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sealbench::relay::http::serve(http, metrics.clone(), async move {
        let _ = rx_http.await;
    }));
    let scrape = || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(http_addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
        let mut resp = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut resp)).await??;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(resp)
    };
    let before = scrape().await?;
    assert!(
        before.contains("sealbench_relay_key_claims_total{result=\"empty\"} 0\n"),
        "present from the start: {before}"
    );

    let mut owner = hello(addr, 1).await?;
    publish(&mut owner, 1, 0, &[b"k1", b"k2", b"k3"]).await?;
    publish(&mut owner, 2, POOL_FLAG_FALLBACK, &[b"fb"]).await?;
    let mut claimer = hello(addr, 2).await?;
    let mut sources = Vec::new();
    for r in 0..5 {
        send(&mut claimer, Frame::KeyClaim { request_id: 10 + r, client: 1, pool: POOL_OLM }).await?;
        match frame::decode(&recv(&mut claimer).await?)? {
            Frame::Claimed { source, .. } => sources.push(source),
            other => return Err(format!("expected CLAIMED, got {other:?}").into()),
        }
    }
    assert_eq!(sources, [CLAIM_ONE_TIME, CLAIM_ONE_TIME, CLAIM_ONE_TIME, CLAIM_FALLBACK, CLAIM_FALLBACK]);
    send(&mut claimer, Frame::KeyClaim { request_id: 20, client: 3, pool: POOL_OLM }).await?;
    assert!(matches!(frame::decode(&recv(&mut claimer).await?)?, Frame::Error { .. }));

    let body = scrape().await?;
    for (result, n) in [("one_time", 3), ("fallback", 2), ("empty", 1)] {
        let line = format!("sealbench_relay_key_claims_total{{result=\"{result}\"}} {n}\n");
        assert!(body.contains(&line), "{line:?} in {body}");
        assert_eq!(metrics.key_claims_count(result), n);
    }
    assert!(body.contains("# TYPE sealbench_relay_key_claims counter\n"), "{body}");
    // The standard process metrics, unprefixed, beside the relay's own.
    assert!(body.contains("# TYPE process_cpu_seconds counter\n"), "{body}");
    assert!(body.contains("\nprocess_cpu_seconds_total "), "{body}");
    assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");
    let _ = (stop.send(()), stop_http.send(()));
    Ok(())
}

#[tokio::test]
async fn a_client_over_its_share_is_refused_while_another_client_still_publishes() -> TestResult {
    let mut config = RelayConfig::default();
    config.key_pools.client_bytes = 4 * (32 + 32);
    let (addr, metrics, stop) = start_with_metrics(config).await?;
    let key = [9u8; 32];
    let four: Vec<&[u8]> = vec![&key[..]; 4];
    let mut greedy = hello(addr, 1).await?;
    assert!(matches!(
        frame::decode(&publish(&mut greedy, 1, 0, &four).await?)?,
        Frame::PoolStatus { available: 4, .. }
    ));
    match frame::decode(&publish(&mut greedy, 2, 0, &[&key[..]]).await?)? {
        Frame::Error { code, reason, .. } if code == ErrorCode::BadKey as u16 => {
            assert!(reason.contains("share"), "{reason}")
        }
        other => return Err(format!("expected BAD_KEY (client share), got {other:?}").into()),
    }
    let mut other = hello(addr, 2).await?;
    assert!(matches!(frame::decode(&publish(&mut other, 1, 0, &four).await?)?, Frame::PoolStatus { available: 4, .. }));
    assert_eq!(metrics.key_refusals_count("publish", "client_share"), 1);
    let _ = stop.send(());
    Ok(())
}

#[tokio::test]
async fn a_claimer_past_its_limits_is_refused_and_counted_and_a_drain_takes_minutes() -> TestResult {
    // The defaults: a victim's 1,000 one-time keys, one connection claiming them as fast
    // as it can (pipelined).
    let limits = RelayConfig::default().key_claims;
    let (addr, metrics, stop) = start_with_metrics(RelayConfig::default()).await?;
    let mut victim = hello(addr, 1).await?;
    let keys: Vec<[u8; 32]> = (0..1000u32).map(|i| [(i % 251) as u8; 32]).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    for (i, batch) in refs.chunks(250).enumerate() {
        publish(&mut victim, 1 + i as u64, 0, batch).await?;
    }
    let st = publish(&mut victim, 9, POOL_FLAG_FALLBACK, &[b"fb"]).await?;
    assert!(matches!(frame::decode(&st)?, Frame::PoolStatus { available: 1000, fallback: 1, .. }));

    let mut thief = hello(addr, 2).await?;
    const TRIES: u64 = 1000;
    let t0 = std::time::Instant::now();
    for r in 0..TRIES {
        send(&mut thief, Frame::KeyClaim { request_id: r + 1, client: 1, pool: POOL_OLM }).await?;
    }
    let (mut got, mut limited) = (0u64, 0u64);
    for _ in 0..TRIES {
        match frame::decode(&recv(&mut thief).await?)? {
            Frame::Claimed { source: CLAIM_ONE_TIME, .. } => got += 1,
            Frame::Error { code, .. } if code == ErrorCode::RateLimited as u16 => limited += 1,
            other => return Err(format!("unexpected answer {other:?}").into()),
        }
    }
    let took = t0.elapsed();
    assert_eq!(got, u64::from(limits.per_peer), "one connection takes its per-peer share of one victim, no more");
    assert_eq!(limited, TRIES - got);
    assert_eq!(metrics.key_refusals_count("claim", "peer_rate"), limited);
    let per_key = limits.peer_window.as_secs_f64() / f64::from(limits.per_peer);
    println!(
        "defaults: {got} of {TRIES} pipelined claims of one victim answered in {took:?}; \
         draining 1,000 one-time keys from one connection takes ≥ {:.0} s",
        1000.0 * per_key
    );

    // The bucket: claims spread over many victims run into the claim rate.
    let mut spreader = hello(addr, 3).await?;
    let spread = u64::from(limits.burst) + 50;
    for r in 0..spread {
        send(&mut spreader, Frame::KeyClaim { request_id: r + 1, client: 1000 + r, pool: POOL_OLM }).await?;
    }
    let mut rate_limited = 0u64;
    for _ in 0..spread {
        if let Frame::Error { code, .. } = frame::decode(&recv(&mut spreader).await?)?
            && code == ErrorCode::RateLimited as u16
        {
            rate_limited += 1;
        }
    }
    assert!(rate_limited >= 1, "past the burst some claims are refused for the rate");
    assert_eq!(metrics.key_refusals_count("claim", "claimer_rate"), rate_limited);
    // The victim's other keys are still there for a fair claimer.
    let mut fair = hello(addr, 4).await?;
    send(&mut fair, Frame::KeyClaim { request_id: 1, client: 1, pool: POOL_OLM }).await?;
    assert!(matches!(frame::decode(&recv(&mut fair).await?)?, Frame::Claimed { source: CLAIM_ONE_TIME, .. }));
    let _ = stop.send(());
    Ok(())
}

#[cfg(feature = "olm")]
#[tokio::test]
async fn an_olm_conversation_through_the_relay_survives_reordering_and_refuses_a_replay() -> TestResult {
    use sealproto::ProtoError;
    use sealproto::olm::{ClaimedKey, OlmAccount};
    let (addr, stop) = start(RelayConfig::default()).await?;
    let (mut alice_ws, mut bob_ws) = (hello(addr, 1).await?, hello(addr, 2).await?);
    // Bob publishes his identity bundle and one-time keys.
    let mut bob = OlmAccount::new();
    send(&mut bob_ws, Frame::KeyPublish { request_id: 1, key: &bob.identity() }).await?;
    assert_eq!(frame::decode(&recv(&mut bob_ws).await?)?, Frame::Ack { request_id: 1 });
    let otks = bob.one_time_keys(10);
    let refs: Vec<&[u8]> = otks.iter().map(|k| &k[..]).collect();
    publish(&mut bob_ws, 2, 0, &refs).await?;
    // Alice fetches his identity, claims a key and opens the session.
    let alice = OlmAccount::new();
    send(&mut alice_ws, Frame::KeyFetch { request_id: 3, client: 2 }).await?;
    let identity = match frame::decode(&recv(&mut alice_ws).await?)? {
        Frame::Key { key, .. } => key.to_vec(),
        other => return Err(format!("expected KEY, got {other:?}").into()),
    };
    send(&mut alice_ws, Frame::KeyClaim { request_id: 4, client: 2, pool: POOL_OLM }).await?;
    let claimed = match frame::decode(&recv(&mut alice_ws).await?)? {
        Frame::Claimed { source: CLAIM_ONE_TIME, item, .. } => item.to_vec(),
        other => return Err(format!("expected CLAIMED, got {other:?}").into()),
    };
    let mut a = alice.outbound(&identity, ClaimedKey::OneTime(&claimed))?;
    // Five messages sealed in order, sent through the relay as 2, 0, 4, 1, 3, then 1 again.
    let sealed: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            let mut out = Vec::new();
            a.encrypt(&[i; 40], &mut out).map(|_| out)
        })
        .collect::<Result<_, _>>()?;
    for i in [2usize, 0, 4, 1, 3, 1] {
        send(&mut alice_ws, Frame::Send { request_id: 10 + i as u64, flags: 0, recipient: 2, body: &sealed[i] })
            .await?;
    }
    let mut session = None;
    let (mut delivered, mut replays) = (Vec::new(), 0);
    for _ in 0..6 {
        let b = recv(&mut bob_ws).await?;
        let Frame::Deliver { sender: 1, body, .. } = frame::decode(&b)? else { return Err("expected DELIVER".into()) };
        let r = match session.as_mut() {
            None => bob.inbound(Some(&alice.identity()), body).map(|(s, pt)| {
                session = Some(s);
                pt
            }),
            Some(s) => s.decrypt(body).map(|(pt, _)| pt),
        };
        match r {
            Ok(pt) => delivered.push(pt[0]),
            Err(ProtoError::Replay) => replays += 1,
            Err(e) => return Err(format!("unexpected {e:?}").into()),
        }
    }
    assert_eq!(delivered, vec![2, 0, 4, 1, 3]);
    assert_eq!(replays, 1);
    // Bob answers through the relay: a DH ratchet turn on both sides.
    let mut reply = Vec::new();
    let step = session.as_mut().ok_or("no session")?.encrypt(b"pong", &mut reply)?;
    assert_eq!(step, sealproto::olm::Step::RatchetTurn);
    send(&mut bob_ws, Frame::Send { request_id: 20, flags: 0, recipient: 1, body: &reply }).await?;
    let b = recv(&mut alice_ws).await?;
    let Frame::Deliver { body, .. } = frame::decode(&b)? else { return Err("expected DELIVER".into()) };
    assert_eq!(a.decrypt(body)?.0, b"pong");
    let _ = stop.send(());
    Ok(())
}
