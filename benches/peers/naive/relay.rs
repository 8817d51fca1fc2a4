//! A naive relay on tokio-tungstenite: the "naive" reference column of
//! `benches/peers/run.py`. What a first version looks like: a global map behind a mutex,
//! an unbounded channel and a writer task per connection, one `send` (a write and a
//! flush) per frame, no batching, no limits. It speaks the subset of sealbench's relay
//! protocol that `sealbench run` needs for 1:1 conversations (docs/PROTOCOL.md §4):
//! HELLO → WELCOME, SEND → DELIVER (+ ACK when asked), KEY_PUBLISH → ACK, KEY_FETCH → KEY,
//! and an ERROR for everything else it refuses. No groups, mailboxes, tokens or timeouts.
//!
//! `cargo build --release -p sealbench-benches --example naive-relay`, then
//! `target/release/examples/naive-relay --listen 127.0.0.1:9000`.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;

type Clients = Arc<Mutex<HashMap<u64, UnboundedSender<Message>>>>;
type Keys = Arc<Mutex<HashMap<u64, Vec<u8>>>>;

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn frame(kind: u8, request: u64, rest: &[u8]) -> Message {
    let mut b = vec![1, kind];
    b.extend_from_slice(&request.to_le_bytes());
    b.extend_from_slice(rest);
    Message::binary(b)
}

fn error(request: u64, code: u16, reason: &str) -> Message {
    let mut rest = code.to_le_bytes().to_vec();
    rest.extend_from_slice(&(reason.len() as u16).to_le_bytes());
    rest.extend_from_slice(reason.as_bytes());
    frame(0x85, request, &rest)
}

/// What a reader does with one binary frame: `None` to answer nothing.
fn handle(
    me: &mut Option<u64>,
    mut data: Vec<u8>,
    tx: &UnboundedSender<Message>,
    clients: &Clients,
    keys: &Keys,
) -> Option<Message> {
    let request = u64_at(&data, 2);
    match (data.first(), data.get(1), *me) {
        (Some(1), Some(0x01), None) if data.len() >= 11 && data.len() == 11 + usize::from(data[10]) => {
            let id = request;
            let mut map = clients.lock().unwrap_or_else(|e| e.into_inner());
            if id == 0 || map.contains_key(&id) {
                return Some(error(0, if id == 0 { 18 } else { 7 }, "refused"));
            }
            map.insert(id, tx.clone());
            *me = Some(id);
            let mut rest = 0u32.to_le_bytes().to_vec();
            rest.extend_from_slice(&65536u32.to_le_bytes());
            Some(frame(0x81, id, &rest))
        }
        (Some(1), Some(0x01), Some(_)) => Some(error(0, 5, "already registered")),
        (Some(1), Some(0x02), Some(from)) if data.len() >= 19 => {
            let to = u64_at(&data, 11);
            let ack = data[10] & 1 != 0;
            let peer = clients.lock().unwrap_or_else(|e| e.into_inner()).get(&to).cloned();
            let Some(peer) = peer else { return Some(error(request, 19, "recipient not online")) };
            data[1] = 0x82;
            data[2..10].copy_from_slice(&from.to_le_bytes());
            data[10] = 0;
            data[11..19].fill(0);
            let _ = peer.send(Message::binary(data));
            ack.then(|| frame(0x83, request, &[]))
        }
        (Some(1), Some(0x06), Some(from)) if data.len() > 12 => {
            keys.lock().unwrap_or_else(|e| e.into_inner()).insert(from, data[12..].to_vec());
            Some(frame(0x83, request, &[]))
        }
        (Some(1), Some(0x07), Some(_)) if data.len() == 18 => {
            let who = u64_at(&data, 10);
            match keys.lock().unwrap_or_else(|e| e.into_inner()).get(&who) {
                Some(k) => {
                    let mut rest = who.to_le_bytes().to_vec();
                    rest.extend_from_slice(&(k.len() as u16).to_le_bytes());
                    rest.extend_from_slice(k);
                    Some(frame(0x84, request, &rest))
                }
                None => Some(error(request, 13, "no key")),
            }
        }
        (Some(1), Some(_), None) => Some(error(request, 4, "HELLO first")),
        (Some(1), _, _) => Some(error(request, 1, "not served by this relay")),
        _ => Some(error(0, 2, "version must be 1")),
    }
}

async fn serve(stream: TcpStream, clients: Clients, keys: Keys) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut me = None;
    while let Some(Ok(msg)) = source.next().await {
        let answer = match msg {
            Message::Binary(b) => handle(&mut me, b.to_vec(), &tx, &clients, &keys),
            Message::Text(_) => Some(error(0, 14, "binary frames only")),
            Message::Close(_) => break,
            _ => None, // tungstenite answers pings itself
        };
        if let Some(a) = answer {
            let _ = tx.send(a);
        }
    }
    if let Some(id) = me {
        clients.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
    drop(tx);
    let _ = writer.await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = match args.as_slice() {
        [_] => "127.0.0.1:9000",
        [_, flag, addr] if flag == "--listen" => addr.as_str(),
        _ => {
            eprintln!("usage: naive-relay [--listen HOST:PORT]");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(listen).await?;
    println!("naive relay listening on {}", listener.local_addr()?);
    let (clients, keys) = (Clients::default(), Keys::default());
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, clients.clone(), keys.clone()));
    }
}
