//! A simulated client's connection: connect from its source address, TLS for `wss://`
//! (see [`super::tls`]), upgrade, register. What the connection carries after that is the
//! shard's (`shard/out.rs` writes, the shard's reader reads).

use super::recorder::Metric;
use super::wire::{Incoming, Wire};
use crate::clock::now_ns;
use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use sealcore::frame;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A connection's byte stream: TCP for `ws://`, TLS over TCP for `wss://`.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Transport for T {}

/// The client side of a connection. The stream is boxed: tokio-tungstenite's
/// `MaybeTlsStream` holds a whole rustls connection inline (over 1 KiB), which every
/// `ws://` client would carry unused.
pub type Ws = WebSocketStream<Box<dyn Transport>>;
/// Its writing half.
pub type Sink = futures_util::stream::SplitSink<Ws, Message>;
/// Its reading half.
pub type Source = futures_util::stream::SplitStream<Ws>;

/// Time allowed for connect (TCP, TLS, upgrade), and then for HELLO/WELCOME.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames a client may have queued for its socket before the generator holds back.
pub const QUEUE: usize = 256;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Relay socket address.
    pub addr: SocketAddr,
    /// The `ws://` or `wss://` URL (for the upgrade request).
    pub url: String,
    /// `wss://`: the run's one TLS configuration (shared by every client).
    pub tls: Option<super::tls::ClientTls>,
    /// Auth secret of the relay, if it needs tokens.
    pub auth_secret: Option<Vec<u8>>,
    /// The wire protocol the target speaks (`relay.wire`).
    pub wire: Wire,
}

/// Timings of a successful registration.
#[derive(Debug)]
pub struct Registered {
    /// The connection.
    pub ws: Ws,
    /// TCP connect + TLS handshake + upgrade, ns.
    pub connect_ns: u64,
    /// Its parts: TCP connect, TLS handshake (`wss://` only), WebSocket upgrade, ns.
    pub tcp_ns: u64,
    /// See `tcp_ns`.
    pub tls_ns: Option<u64>,
    /// See `tcp_ns`.
    pub upgrade_ns: u64,
    /// The log-in: the wire's steps, first request to last answer (sealbench: HELLO →
    /// WELCOME and the key publish or group join; MQTT: CONNECT → CONNACK, SUBSCRIBE →
    /// SUBACK), ns.
    pub register_ns: u64,
    /// Stored messages the relay announced in WELCOME (they follow it).
    pub stored: u32,
    /// The wire it logged in on (`register_ns` is a `register` on sealbench's, a `login`
    /// on another server's).
    pub wire: Wire,
}

/// What a client does at registration besides HELLO.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registration {
    /// Publish this static key (NK, IK).
    pub key: Option<[u8; 32]>,
    /// Join this group (relay fan-out).
    pub group: Option<u64>,
    /// A reconnection of a device that logged in earlier in the run (the wire's
    /// [`Wire::resume`] instead of its log-in; `key` and `group` are not used).
    pub resume: bool,
}

/// Why a client failed to come up.
#[derive(Debug)]
pub enum ConnectFailure {
    /// TCP, TLS or the WebSocket upgrade failed.
    Connect(anyhow::Error),
    /// Connected, but registration failed.
    Register(anyhow::Error),
}

/// tungstenite's read buffer, bytes: what each connection holds while idle (it grows only
/// for a frame longer than this) and the most it reads from the socket at once. 1 KiB holds
/// three 256 B messages with their framing; 4 KiB was a quarter of an idle client's memory.
/// It is only this size because [`upgrade`] reads the upgrade response itself: after
/// tungstenite's own client handshake the connection keeps the 4 KiB buffer the response was
/// read into (`from_partially_read` reuses it), whatever this says.
const READ_BUFFER: usize = 1024;
/// The longest upgrade response accepted, bytes (the relay's is about 130).
const MAX_RESPONSE: usize = 16 * 1024;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER).write_buffer_size(16 * 1024)
}

/// Connects `id` from `source` and registers it (publishing a key and joining a group
/// when asked: only on a first connection, as stored messages may follow a WELCOME).
pub async fn connect(
    target: &Target,
    source: Ipv4Addr,
    id: u64,
    with: Registration,
) -> Result<Registered, ConnectFailure> {
    let t0 = now_ns();
    let (ws, tcp_ns, tls_ns) = tokio::time::timeout(REGISTER_TIMEOUT, open(target, source))
        .await
        .map_err(|_| ConnectFailure::Connect(anyhow!("connect timed out")))?
        .map_err(ConnectFailure::Connect)?;
    let t1 = now_ns();
    let mut ws = ws;
    let reg = tokio::time::timeout(REGISTER_TIMEOUT, register(&mut ws, target, id, with))
        .await
        .map_err(|_| ConnectFailure::Register(anyhow!("no WELCOME in time")))?;
    let stored = reg.map_err(ConnectFailure::Register)?;
    let t2 = now_ns();
    let connect_ns = t1 - t0;
    let upgrade_ns = connect_ns.saturating_sub(tcp_ns + tls_ns.unwrap_or(0));
    Ok(Registered { ws, connect_ns, tcp_ns, tls_ns, upgrade_ns, register_ns: t2 - t1, stored, wire: target.wire })
}

/// TCP connect from `source`, the TLS handshake for `wss://`, the WebSocket upgrade.
/// Returns the socket and the TCP and TLS times (ns); the upgrade is the rest.
async fn open(target: &Target, source: Ipv4Addr) -> Result<(Ws, u64, Option<u64>)> {
    let t0 = now_ns();
    let socket = TcpSocket::new_v4().context("socket")?;
    socket.bind(SocketAddr::new(source.into(), 0)).with_context(|| format!("binding source address {source}"))?;
    let stream = socket.connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    let _ = stream.set_nodelay(true);
    let t1 = now_ns();
    let (stream, tls_ns): (Box<dyn Transport>, _) = match &target.tls {
        None => (Box::new(stream), None),
        Some(tls) => {
            let stream = tls.handshake(stream).await?;
            (Box::new(stream), Some(now_ns() - t1))
        }
    };
    let ws = upgrade_as(target.url.as_str(), target.wire.subprotocol(), stream).await.context("WebSocket upgrade")?;
    Ok((ws, t1 - t0, tls_ns))
}

/// The client's WebSocket upgrade (RFC 6455 §4.1) on tungstenite's parts: its request
/// (with a fresh key), its response parser, its accept-key derivation. What is done here
/// rather than by `client_async_with_config` is reading the response into a buffer that
/// is dropped afterwards, so that the connection's read buffer is [`READ_BUFFER`] and not
/// the 4 KiB one tungstenite read the response into; the checks are those tungstenite's
/// client makes (status 101, `Upgrade: websocket`, `Connection: Upgrade`, the accept key,
/// and the subprotocol: the one asked for — the wire's, e.g. `mqtt` — or none when none
/// was).
async fn upgrade_as(url: &str, subprotocol: Option<&str>, mut stream: Box<dyn Transport>) -> Result<Ws> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::handshake::client::{Response, generate_request};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
    use tokio_tungstenite::tungstenite::http::StatusCode;
    use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let mut request = url.into_client_request()?;
    if let Some(p) = subprotocol {
        request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, p.parse()?);
    }
    let (request, key) = generate_request(request)?;
    stream.write_all(&request).await?;
    let mut buf = Vec::with_capacity(256);
    let (size, response) = loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_RESPONSE {
                bail!("upgrade response longer than {MAX_RESPONSE} bytes");
            }
            buf.reserve(buf.len());
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("connection closed during the upgrade");
        }
        if let Some(parsed) = Response::try_parse(&buf)? {
            break parsed;
        }
    };
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        bail!("relay answered the upgrade with {}", response.status());
    }
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        bail!("upgrade response without `Upgrade: websocket`");
    }
    if !header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("Upgrade")) {
        bail!("upgrade response without `Connection: Upgrade`");
    }
    if header("Sec-WebSocket-Accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        bail!("upgrade response with a wrong Sec-WebSocket-Accept");
    }
    match (subprotocol, header("Sec-WebSocket-Protocol")) {
        (None, None) => {}
        (None, Some(p)) => bail!("upgrade response names subprotocol `{p}`, none was asked for"),
        (Some(want), Some(p)) if p.eq_ignore_ascii_case(want) => {}
        (Some(want), got) => {
            let got = got.map_or_else(|| "no subprotocol".to_owned(), |p| format!("subprotocol `{p}`"));
            bail!("upgrade response names {got}, not `{want}`: is this the target's {want} WebSocket listener?")
        }
    }
    // What the relay sent after the response (nothing, as it speaks after HELLO) starts
    // the frames, in a vector of its own size: the buffer above is dropped.
    let rest = buf[size..].to_vec();
    Ok(WebSocketStream::from_partially_read(stream, rest, Role::Client, Some(ws_config())).await)
}

/// [`upgrade_as`] without a subprotocol.
#[cfg(test)]
async fn upgrade(url: &str, stream: Box<dyn Transport>) -> Result<Ws> {
    upgrade_as(url, None, stream).await
}

async fn send(ws: &mut Ws, wire: Wire, frame: Vec<u8>) -> Result<()> {
    let m = if wire.text() {
        Message::Text(String::from_utf8(frame).context("a text frame that is not UTF-8")?.into())
    } else {
        Message::Binary(frame.into())
    };
    ws.send(m).await.context("sending")?;
    Ok(())
}

async fn next_frame(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
            Some(Ok(Message::Close(c))) => bail!("relay closed the connection: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// The wire's log-in, step by step: each step's answer read before the next is sent.
/// Returns how many stored messages are still to come (as the first answer announced).
async fn register(ws: &mut Ws, target: &Target, id: u64, with: Registration) -> Result<u32> {
    let wire = target.wire;
    let token = target.auth_secret.as_ref().map(|s| frame::auth_token(s, id));
    let token = token.as_ref().map(|t| &t[..]);
    let steps =
        if with.resume { wire.resume(id, token)? } else { wire.login(id, token, with.key.as_ref(), with.group)? };
    let mut stored = None;
    for (request, what) in steps {
        send(ws, wire, request).await?;
        match stored {
            // The first answer (WELCOME) says how many stored messages follow it.
            None => stored = Some(wire.logged_in(&next_answer(ws, wire).await?, what)?),
            Some(n) => stored = Some(n.saturating_sub(answer_after_stored(ws, wire, what, n).await?)),
        }
    }
    // What follows it (XMPP: stored messages, the reflected presence) is the shard's to read.
    if let Some(f) = wire.after_login() {
        send(ws, wire, f.to_vec()).await?;
    }
    Ok(stored.unwrap_or(0))
}

/// The next frame that is not a preamble of an answer (XMPP's `<open/>`).
async fn next_answer(ws: &mut Ws, wire: Wire) -> Result<Vec<u8>> {
    loop {
        let f = next_frame(ws).await?;
        if !wire.login_preamble(&f) {
            return Ok(f);
        }
    }
}

/// Reads the answer to a log-in step after the first, passing over the stored messages that
/// may come first (a server that still holds messages for this id from an earlier run):
/// returns how many it passed over (they cannot belong to this run). A wire that does not
/// count them passes over every delivery, acknowledging it where the server wants that.
async fn answer_after_stored(ws: &mut Ws, wire: Wire, what: &str, stored: u32) -> Result<u32> {
    let mut skipped = 0;
    let counted = wire.capabilities().stored_marked;
    loop {
        let f = next_answer(ws, wire).await?;
        if let Incoming::Deliver { stored: marked, receipt, .. } = wire.decode(&f)
            && (!counted || (marked && skipped < stored))
        {
            skipped += 1;
            if let Some(r) = receipt.and_then(|p| wire.receipt(p)) {
                send(ws, wire, r.to_vec()).await?;
            }
            continue;
        }
        wire.logged_in(&f, what)?;
        return Ok(skipped);
    }
}

/// Records a client's connect timings (the whole and its parts) and its log-in time
/// (`register` on sealbench's wire, `login` on another server's).
pub fn record(h: &mut super::recorder::Histograms, r: &Registered) {
    h.record(Metric::Connect, r.connect_ns);
    h.record(Metric::Tcp, r.tcp_ns);
    if let Some(tls) = r.tls_ns {
        h.record(Metric::Tls, tls);
    }
    h.record(Metric::Upgrade, r.upgrade_ns);
    let metric = if r.wire == Wire::Sealbench { Metric::Register } else { Metric::Login };
    h.record(metric, r.register_ns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    /// A relay's side of the upgrade: reads the request, answers with `accept` (the right
    /// key when `None`) and, in the same write, `after`.
    async fn answer(mut relay: DuplexStream, accept: Option<&str>, after: &[u8]) -> Result<()> {
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            request.push(relay.read_u8().await?);
        }
        let request = String::from_utf8(request)?;
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
            .context("no key in the request")?;
        let accept = accept.map_or_else(|| derive_accept_key(key.trim().as_bytes()), str::to_owned);
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(after);
        relay.write_all(&out).await?;
        // Keep the relay's end open until the client is done with it.
        let _ = relay.read_u8().await;
        Ok(())
    }

    #[tokio::test]
    async fn upgrade_keeps_the_frames_that_came_with_the_response() -> Result<()> {
        let (client, relay) = tokio::io::duplex(4096);
        let relay = tokio::spawn(async move { answer(relay, None, &[0x82, 3, 1, 2, 3]).await });
        let mut ws = upgrade("ws://relay.test/", Box::new(client)).await?;
        let frame = tokio::time::timeout(Duration::from_secs(5), next_frame(&mut ws)).await??;
        assert_eq!(frame, [1, 2, 3]);
        drop(ws);
        relay.await??;
        Ok(())
    }

    #[tokio::test]
    async fn upgrade_refuses_a_wrong_accept_key() -> Result<()> {
        let (client, relay) = tokio::io::duplex(4096);
        let relay = tokio::spawn(async move { answer(relay, Some("d3Jvbmc="), &[]).await });
        let err = upgrade("ws://relay.test/", Box::new(client)).await.err().context("accepted a wrong key")?;
        assert!(format!("{err:#}").contains("Sec-WebSocket-Accept"), "{err:#}");
        relay.await??;
        Ok(())
    }

    #[tokio::test]
    async fn upgrade_refuses_an_answer_without_the_subprotocol_asked_for() -> Result<()> {
        let (client, relay) = tokio::io::duplex(4096);
        let relay = tokio::spawn(async move { answer(relay, None, &[]).await });
        let err = upgrade_as("ws://relay.test/", Some("mqtt"), Box::new(client)).await.err().context("accepted")?;
        assert!(format!("{err:#}").contains("not `mqtt`"), "{err:#}");
        relay.await??;
        Ok(())
    }
}
