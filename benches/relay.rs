//! The reference relay over loopback: one pair's round trip per message size, and messages
//! per second through the relay with many connections.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use sealbench::relay::{self, RelayConfig};
use sealcore::frame::{self, Frame};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn client(addr: SocketAddr, id: u64) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.expect("connect");
    let f = Frame::Hello { client_id: id, token: &[] };
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf).expect("encode");
    ws.send(Message::Binary(buf.into())).await.expect("hello");
    loop {
        if let Some(Ok(Message::Binary(_))) = ws.next().await {
            break; // WELCOME
        }
    }
    ws
}

fn send_frame(to: u64, size: usize) -> Vec<u8> {
    let body = vec![0x42u8; size];
    let f = Frame::Send { request_id: 1, flags: 0, recipient: to, body: &body };
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf).expect("encode");
    buf
}

async fn recv_binary(ws: &mut Ws) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                debug_assert!(frame::decode(&b).is_ok());
                return;
            }
            Some(Ok(_)) => continue,
            other => panic!("relay stream ended: {other:?}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(relay::run(listener, RelayConfig::default(), std::future::pending::<()>()));

    let mut g = c.benchmark_group("relay_round_trip");
    let (mut a, mut b) = rt.block_on(async { (client(addr, 1).await, client(addr, 2).await) });
    for size in [64usize, 1024, 16384] {
        let msg = send_frame(2, size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |bench, _| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        a.send(Message::Binary(msg.clone().into())).await.expect("send");
                        recv_binary(&mut b).await;
                    }
                    t0.elapsed()
                })
            })
        });
    }
    g.finish();

    // Many connections: 200 clients in 100 pairs, every sender streams, all flushed in batches.
    let pairs = 100u64;
    let per_sender = 200u64;
    let mut g = c.benchmark_group("relay_throughput");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(pairs * per_sender));
    let clients: Vec<(Ws, Ws)> = rt.block_on(async {
        let mut v = Vec::new();
        for p in 0..pairs {
            v.push((client(addr, 1000 + 2 * p).await, client(addr, 1001 + 2 * p).await));
        }
        v
    });
    let mut clients = Some(clients);
    g.bench_function(BenchmarkId::new("256B_messages", format!("{}_connections", pairs * 2)), |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cs = clients.take().expect("clients");
                let (elapsed, back) = rt.block_on(async move {
                    let t0 = Instant::now();
                    let mut tasks = Vec::new();
                    for (k, (mut tx, mut rx)) in cs.into_iter().enumerate() {
                        let msg = send_frame(1001 + 2 * k as u64, 256);
                        tasks.push(tokio::spawn(async move {
                            let sender = async {
                                for _ in 0..per_sender {
                                    tx.feed(Message::Binary(msg.clone().into())).await.expect("feed");
                                }
                                tx.flush().await.expect("flush");
                            };
                            let receiver = async {
                                for _ in 0..per_sender {
                                    recv_binary(&mut rx).await;
                                }
                            };
                            tokio::join!(sender, receiver);
                            (tx, rx)
                        }));
                    }
                    let mut back = Vec::new();
                    for t in tasks {
                        back.push(t.await.expect("task"));
                    }
                    (t0.elapsed(), back)
                });
                total += elapsed;
                clients = Some(back);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
