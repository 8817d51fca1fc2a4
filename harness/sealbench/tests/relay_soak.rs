//! Soak: 2,000 clients churn against a `sealbench relay` process (connect, send at mixed
//! sizes up to 64 KiB, disconnect, reconnect to drain their mailbox) for `SOAK_SECS`
//! (default 60). Every message the relay ACKs must be delivered exactly once, and the
//! relay's resident memory must come back to within 25 % of its level before the churn.
//! "Before" is after a first churn round of the same length: glibc's allocator keeps
//! what a round of this shape made it grow to (a shorter warm-up left the measured round
//! 17 % above it with nothing leaked), so the check asks what a leak would fail — that a
//! second round of the same load does not grow the relay further.
//!
//! `cargo test --release -p sealbench --test relay_soak -- --ignored --nocapture`
//! (`.ci/run` runs it with `SOAK_SECS=20`). Loopback only; bounded in clients and time.

use futures_util::{SinkExt, StreamExt};
use sealcore::frame::{self, FLAG_ACK, Frame};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CLIENTS: u64 = 2000;

#[derive(Default)]
struct Ledger {
    /// (sender, seq) → recipient, for every message sent.
    sent: HashMap<(u64, u64), u64>,
    /// (sender, seq) the relay ACKed.
    acked: Vec<(u64, u64)>,
    /// (sender, seq) → (times delivered, recipient that got it).
    delivered: HashMap<(u64, u64), (u32, u64)>,
    /// Refusals by error code.
    refused: HashMap<u16, u64>,
    /// Closes the relay decided (code).
    closed_by_relay: HashMap<u16, u64>,
    connects: u64,
    /// (sender, seq) → when it was sent (seconds since the test began), for the report
    /// on a lost message.
    sent_at: HashMap<(u64, u64), f64>,
    /// Per client: (seconds, what happened to its connection), for the same report.
    events: HashMap<u64, Vec<(f64, String)>>,
}

fn secs() -> f64 {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}

fn event(ledger: &Mutex<Ledger>, id: u64, what: String) {
    ledger.lock().unwrap_or_else(|p| p.into_inner()).events.entry(id).or_default().push((secs(), what));
}

/// A small xorshift generator: deterministic per client, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    /// Mixed sizes: mostly small, some medium, a few up to 64 KiB.
    fn size(&mut self) -> usize {
        match self.next() % 100 {
            0..70 => self.range(16, 512) as usize,
            70..95 => self.range(1024, 8192) as usize,
            _ => self.range(16 * 1024, 64 * 1024 - 64) as usize,
        }
    }
}

fn encode(f: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; f.encoded_len()];
    let _ = f.encode(&mut buf);
    buf
}

/// What one incoming message means for the ledger.
fn note(ledger: &Mutex<Ledger>, me: u64, m: &Message) {
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    match m {
        Message::Binary(b) => match frame::decode(b) {
            Ok(Frame::Deliver { sender, body, .. }) if body.len() >= 16 => {
                let seq = u64::from_le_bytes(body[8..16].try_into().unwrap_or_default());
                let e = l.delivered.entry((sender, seq)).or_insert((0, me));
                e.0 += 1;
            }
            Ok(Frame::Ack { request_id }) => l.acked.push((me, request_id)),
            Ok(Frame::Error { code, .. }) => *l.refused.entry(code).or_default() += 1,
            _ => {}
        },
        Message::Close(Some(c)) => *l.closed_by_relay.entry(u16::from(c.code)).or_default() += 1,
        _ => {}
    }
}

async fn connect(addr: SocketAddr, id: u64) -> Result<(Ws, u32), Error> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    ws.send(Message::Binary(encode(&Frame::Hello { client_id: id, token: &[] }).into())).await?;
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?.ok_or("ended")??;
    match frame::decode(&m.into_data())? {
        Frame::Welcome { stored, .. } => Ok((ws, stored)),
        other => Err(format!("{id}: expected WELCOME, got {other:?}").into()),
    }
}

/// Closes orderly and reads to the end (what was in flight still counts).
async fn close(mut ws: Ws, me: u64, ledger: &Mutex<Ledger>) {
    let sent = ws.close(None).await;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(m))) => note(ledger, me, &m),
            Ok(Some(Err(e))) => break format!("read error {e}"),
            Ok(None) => break "end".to_string(),
            Err(_) => break "read timeout".to_string(),
        }
    };
    event(ledger, me, format!("closed (close sent: {}; {end})", sent.is_ok()));
}

/// One client's churn until `until`; its message numbers start at `first_seq` (unique per
/// phase, so that a message is named by (sender, seq) for the whole test).
async fn churn(
    addr: SocketAddr,
    id: u64,
    until: Instant,
    first_seq: u64,
    ledger: Arc<Mutex<Ledger>>,
) -> Result<(), Error> {
    let mut rng = Rng((id ^ first_seq).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut seq = first_seq;
    let mut pad = vec![0u8; 64 * 1024];
    tokio::time::sleep(Duration::from_millis(rng.range(0, 2000))).await;
    while Instant::now() < until {
        let (mut ws, _) = match connect(addr, id).await {
            Ok(c) => c,
            Err(e) => {
                event(&ledger, id, format!("connect failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        ledger.lock().unwrap_or_else(|p| p.into_inner()).connects += 1;
        event(&ledger, id, "connected".into());
        let online_until = (Instant::now() + Duration::from_millis(rng.range(300, 2000))).min(until);
        let mut next_send = Instant::now() + Duration::from_millis(rng.range(0, 400));
        loop {
            tokio::select! {
                m = ws.next() => match m {
                    Some(Ok(m)) => note(&ledger, id, &m),
                    other => {
                        event(&ledger, id, format!("read ended: {other:?}"));
                        break;
                    }
                },
                _ = tokio::time::sleep_until(next_send) => {
                    let to = 1 + (id - 1 + rng.range(1, CLIENTS)) % CLIENTS;
                    let len = rng.size();
                    pad[..8].copy_from_slice(&id.to_le_bytes());
                    pad[8..16].copy_from_slice(&seq.to_le_bytes());
                    let f = encode(&Frame::Send { request_id: seq, flags: FLAG_ACK, recipient: to, body: &pad[..len] });
                    {
                        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                        l.sent.insert((id, seq), to);
                        l.sent_at.insert((id, seq), secs());
                    }
                    seq += 1;
                    if let Err(e) = ws.send(Message::Binary(f.into())).await {
                        event(&ledger, id, format!("send failed: {e}"));
                        break;
                    }
                    next_send += Duration::from_millis(rng.range(200, 800));
                }
                _ = tokio::time::sleep_until(online_until) => break,
            }
        }
        close(ws, id, &ledger).await;
        tokio::time::sleep(Duration::from_millis(rng.range(100, 1000))).await;
    }
    Ok(())
}

/// After the churn: connect once more, take the whole mailbox, close.
async fn drain(addr: SocketAddr, id: u64, ledger: Arc<Mutex<Ledger>>) -> Result<(), Error> {
    let (mut ws, stored) = loop {
        match connect(addr, id).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    event(&ledger, id, format!("drain: {stored} stored"));
    let mut got = 0;
    while got < stored {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next()).await?.ok_or("ended")??;
        if matches!(&m, Message::Binary(_)) {
            got += 1;
        }
        note(&ledger, id, &m);
    }
    close(ws, id, &ledger).await;
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_all(
    addr: SocketAddr,
    ledger: &Arc<Mutex<Ledger>>,
    f: impl Fn(u64, Arc<Mutex<Ledger>>) -> tokio::task::JoinHandle<Result<(), Error>>,
) -> Result<(), Error> {
    let _ = addr;
    let tasks: Vec<_> = (1..=CLIENTS).map(|id| f(id, ledger.clone())).collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes of load; run by its own CI step"]
async fn soak_churning_clients_lose_nothing_acknowledged_and_relay_memory_returns() -> Result<(), Error> {
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["relay", "--listen", &addr.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let child = Child(child);
    let pid = child.0.id();
    let up = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > up {
            return Err("relay did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Warm-up: every client registers once (so every id is known), then a churn round as
    // long as the measured one brings the relay to its working state for this load
    // (allocator arenas, tables, buffers). The memory check compares against that level:
    // what must not happen is growth from one round to the next.
    let rss_cold = rss_kib(pid);
    run_all(addr, &ledger, |id, l| tokio::spawn(drain(addr, id, l))).await?;
    let warm = Instant::now() + Duration::from_secs(secs);
    run_all(addr, &ledger, |id, l| tokio::spawn(churn(addr, id, warm, 0, l))).await?;
    run_all(addr, &ledger, |id, l| tokio::spawn(drain(addr, id, l))).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_start = rss_kib(pid);

    let t0 = std::time::Instant::now();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut peak = 0;
    let sampler = {
        let pid_ = pid;
        tokio::spawn(async move {
            let mut peak = 0;
            while Instant::now() < until {
                peak = peak.max(rss_kib(pid_));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            peak
        })
    };
    run_all(addr, &ledger, |id, l| tokio::spawn(churn(addr, id, until, 1 << 32, l))).await?;
    peak = peak.max(sampler.await?);
    run_all(addr, &ledger, |id, l| tokio::spawn(drain(addr, id, l))).await?;
    let churn_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_end = rss_kib(pid);

    let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let twice: Vec<_> = l.delivered.iter().filter(|(_, (n, _))| *n > 1).take(5).collect();
    let lost: Vec<_> = l.acked.iter().filter(|k| !l.delivered.contains_key(k)).take(5).collect();
    let misrouted = l.delivered.iter().filter(|(k, (_, to))| l.sent.get(k) != Some(to)).count();
    println!(
        "soak: {secs} s churn ({churn_secs:.1} s with drain), {CLIENTS} clients, {} connects, {} sent, {} acked, \
         {} delivered, refused {:?}, relay closes {:?}; relay RSS {rss_cold} KiB at start, {rss_start} KiB \
         after warm-up, peak {peak} KiB, {rss_end} KiB after",
        l.connects,
        l.sent.len(),
        l.acked.len(),
        l.delivered.len(),
        l.refused,
        l.closed_by_relay,
    );
    for &&(sender, seq) in &lost {
        let to = l.sent.get(&(sender, seq)).copied().unwrap_or(0);
        let at = l.sent_at.get(&(sender, seq)).copied().unwrap_or(0.0);
        println!("lost: {sender} → {to}, seq {seq}, sent at {at:.3} s; {to}'s connections around then:");
        for (t, what) in l.events.get(&to).into_iter().flatten().filter(|(t, _)| (t - at).abs() < 5.0) {
            println!("  {t:.3} s  {what}");
        }
    }
    assert!(l.acked.len() as u64 > CLIENTS, "traffic flowed");
    assert!(lost.is_empty(), "acknowledged but never delivered: {lost:?}");
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(misrouted, 0, "delivered to the wrong client or never sent");
    // 25 %: on a loaded machine (CPU shared with builds) the same round left the relay
    // 16 % above its warm level with nothing lost and nothing queued — allocator arenas
    // sized by a bigger backlog. A leak of even one small allocation per message or per
    // connection (112k messages, 47k connections a round) grows it far past that.
    assert!(
        (rss_end as f64) <= rss_start as f64 * 1.25,
        "relay RSS {rss_end} KiB after vs {rss_start} KiB before (peak {peak} KiB)"
    );
    drop(child);
    Ok(())
}
