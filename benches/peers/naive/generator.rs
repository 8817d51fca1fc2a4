//! A naive open-loop load generator: the "naive generator" reference column of
//! `benches/peers/run.py`, to set beside the sealbench driver's CPU per message.
//!
//! What a first version looks like: one tokio task per client sending on a tokio
//! `interval` (open loop: a late tick fires at once, its scheduled time is the intended
//! send time), one `send` (a write and a flush) per message, one reading task per client,
//! a histogram behind a mutex. Clients are paired (0–1, 2–3, …) and seal 256 B with
//! ChaCha20-Poly1305 under a fixed key per direction: no handshake, so it measures only
//! the steady traffic — the part the sealbench driver's figure in the table covers.
//! Frames are sealbench's relay protocol (docs/PROTOCOL.md §3–4), so any relay that
//! `sealbench run` drives carries them.
//!
//! Prints `steady-start` and `steady-end` lines at the edges of the measured window (a
//! harness samples the relay's CPU then) and a JSON summary at the end.
//! `cargo build --release -p sealbench-benches --example naive-generator`, then
//! `target/release/examples/naive-generator ws://127.0.0.1:9000/ CLIENTS RATE WARMUP_S SECONDS`.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SIZE: usize = 256;
const HEADER: usize = 19 + 5; // SEND header, then the E2E kind and conversation id

/// What every task shares.
struct Shared {
    epoch: Instant,
    sent: AtomicU64,
    received: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
    e2e: Mutex<Histogram<u64>>,
}

/// The key for messages from client `from` (its pair is `from / 2`).
fn cipher(from: u64) -> ChaCha20Poly1305 {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&from.to_le_bytes());
    ChaCha20Poly1305::new(&key.into())
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

async fn sender(
    mut sink: impl SinkExt<Message> + Unpin,
    me: u64,
    period: Duration,
    start: tokio::time::Instant,
    s: Arc<Shared>,
) {
    let (peer, aead) = (me ^ 1, cipher(me));
    let mut ticks = tokio::time::interval_at(start, period);
    for counter in 0u64.. {
        let intended = ticks.tick().await;
        if s.stop.load(Relaxed) {
            break;
        }
        let mut f = vec![0u8; HEADER + 8 + SIZE + 16];
        f[..2].copy_from_slice(&[1, 0x02]);
        f[11..19].copy_from_slice(&(peer + 1).to_le_bytes());
        f[19] = 2;
        f[20..24].copy_from_slice(&((me / 2) as u32).to_le_bytes());
        f[24..32].copy_from_slice(&counter.to_le_bytes());
        let plain = &mut f[32..32 + SIZE];
        plain[..8].copy_from_slice(&counter.to_le_bytes());
        let at = |t: Instant| (t.duration_since(s.epoch).as_nanos() as u64).to_le_bytes();
        plain[8..16].copy_from_slice(&at(intended.into_std()));
        plain[16..24].copy_from_slice(&at(Instant::now()));
        let Ok(tag) = aead.encrypt_inout_detached(&nonce(counter).into(), b"", plain.into()) else { break };
        f[32 + SIZE..].copy_from_slice(&tag);
        if sink.send(Message::binary(f)).await.is_err() {
            break;
        }
        s.sent.fetch_add(1, Relaxed);
    }
}

async fn receiver(
    mut source: impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    me: u64,
    s: Arc<Shared>,
) {
    let aead = cipher(me ^ 1);
    while let Some(Ok(msg)) = source.next().await {
        let Message::Binary(b) = msg else { continue };
        let mut b = b.to_vec();
        if b.len() != HEADER + 8 + SIZE + 16 || b[1] != 0x82 {
            continue;
        }
        let counter = u64::from_le_bytes(b[24..32].try_into().unwrap_or_default());
        let (plain, tag) = b[32..].split_at_mut(SIZE);
        let tag: &[u8; 16] = (&*tag).try_into().unwrap_or(&[0; 16]);
        if aead.decrypt_inout_detached(&nonce(counter).into(), b"", plain.into(), tag.into()).is_err() {
            continue;
        }
        let intended = u64::from_le_bytes(plain[8..16].try_into().unwrap_or_default());
        let now = s.epoch.elapsed().as_nanos() as u64;
        s.received.fetch_add(1, Relaxed);
        if s.measuring.load(Relaxed) {
            let _ = s.e2e.lock().unwrap_or_else(|e| e.into_inner()).record(now.saturating_sub(intended));
        }
    }
}

/// This process's user + system CPU seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split(' ').skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<u64>() as f64 / 100.0 // USER_HZ is 100 on Linux
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, clients, rate, warmup, seconds] = args.as_slice() else {
        eprintln!("usage: naive-generator ws://HOST:PORT/ CLIENTS RATE WARMUP_S SECONDS");
        std::process::exit(2);
    };
    let (clients, rate): (u64, f64) = (clients.parse::<u64>()? & !1, rate.parse()?);
    let (warmup, seconds): (f64, f64) = (warmup.parse()?, seconds.parse()?);
    let s = Arc::new(Shared {
        epoch: Instant::now(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        e2e: Mutex::new(Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3)?),
    });
    let mut socks = Vec::new();
    for me in 0..clients {
        // Nagle off, as the sealbench driver and every relay here have it: one segment per message.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
        let mut hello = vec![1, 0x01];
        hello.extend_from_slice(&(me + 1).to_le_bytes());
        hello.push(0);
        ws.send(Message::binary(hello)).await?;
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.get(1) == Some(&0x81) => socks.push(ws),
            other => return Err(format!("client {}: no WELCOME: {other:?}", me + 1).into()),
        }
    }
    let period = Duration::from_secs_f64(clients as f64 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (me, ws) in (0..).zip(socks) {
        let (sink, source) = ws.split();
        let offset = period.mul_f64(me as f64 / clients as f64);
        tasks.push(tokio::spawn(sender(sink, me, period, start + offset, s.clone())));
        tokio::spawn(receiver(source, me, s.clone()));
    }
    tokio::time::sleep_until(start + Duration::from_secs_f64(warmup)).await;
    s.measuring.store(true, Relaxed);
    let (cpu0, got0, t0) = (cpu_s(), s.received.load(Relaxed), Instant::now());
    println!("steady-start");
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (cpu1, got1, t1) = (cpu_s(), s.received.load(Relaxed), Instant::now());
    println!("steady-end");
    s.measuring.store(false, Relaxed);
    s.stop.store(true, Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the last messages in flight
    let (sent, received) = (s.sent.load(Relaxed), s.received.load(Relaxed));
    let h = s.e2e.lock().unwrap_or_else(|e| e.into_inner());
    let steady = (got1 - got0).max(1);
    println!(
        "{{\"sent\": {sent}, \"received\": {received}, \"lost\": {}, \"steady_delivered\": {steady}, \"steady_s\": {:.3}, \
         \"cpu_us_per_msg\": {:.3}, \"e2e_p50_us\": {:.1}, \"e2e_p99_us\": {:.1}}}",
        sent.saturating_sub(received),
        (t1 - t0).as_secs_f64(),
        (cpu1 - cpu0) * 1e6 / steady as f64,
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
    );
    std::process::exit(0) // the reading tasks are still waiting on open sockets
}
