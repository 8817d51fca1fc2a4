//! One client connection: the WebSocket upgrade, registration, then one task that reads
//! and routes what the client sends and, beside it, drains the client's queue (its
//! writing side is in `writer`).
//!
//! Everything the relay sends a client (deliveries, acks, errors, pings) goes through that
//! client's bounded queue, so a client that stops reading fills only its own queue and is
//! then closed as a slow consumer (close code 4001); it never blocks anyone else.
//!
//! (Past the usual length because every client frame type is handled here, beside the
//! error each can earn; the writing side is in `writer`.)

use super::adversary::{Action, Adversary, Held, Released};
use super::keypool::ClaimLimiter;
use super::registry::{EnqueueError, MailLimits, Peer, Register, Route};
use super::timeouts::{Fire, Timeouts};
use super::writer::{self, CloseWith, PING, Writer, Written};
use super::{CLOSE_IDLE, CLOSE_SLOW, Shared};
use super::{franking, scan};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use sealcore::frame::{self, ErrorCode, FLAG_ACK, FLAG_FRANKED, FLAG_GROUP, FLAG_STORED, Frame, FrameType};
use sealcore::franking::TRAILER_LEN;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Source<S> = futures_util::stream::SplitStream<WebSocketStream<S>>;

/// Frames handled per wake-up before counters are published and the task yields.
const READ_BATCH: usize = 64;
/// Largest block the per-connection arena grows by: a dozen 256 B messages per
/// allocation, small enough that a connection with frames in flight holds little.
const ARENA_BLOCK: usize = 4096;
/// Its first block. Each new block doubles, up to [`ARENA_BLOCK`]: a connection that only
/// registers and handshakes (a few short frames) keeps a few hundred bytes, not 4 KiB,
/// and one that streams reaches full blocks after four allocations.
const ARENA_FIRST: usize = 256;
/// One SEND in this many has its routing time sampled into the histogram.
const SAMPLE_EVERY: u32 = 32;

/// Serves one accepted connection (TCP, or TLS over TCP) to the end. `accepted`: when
/// TCP accepted it (the handshake timeout runs from then, a TLS handshake included).
pub(super) async fn serve<S: super::Io>(shared: Arc<Shared>, stream: S, accepted: Instant) {
    let cfg = &shared.config;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(cfg.read_buffer)
        .write_buffer_size(cfg.write_buffer)
        .max_message_size(Some(super::config::read_cap(cfg.max_message)))
        .max_frame_size(Some(super::config::read_cap(cfg.max_message)));
    let over_capacity = shared.connections.load(Ordering::Relaxed) > cfg.max_connections;
    // The error type is tungstenite's: its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |_req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if over_capacity {
            let mut r = ErrorResponse::new(Some("sealbench relay: at its connection limit, try again later".into()));
            *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE;
            return Err(r);
        }
        Ok(resp)
    };
    // Boxed: the upgrade's state is large and only needed once; inline it would stay part
    // of this connection's task for its whole life.
    let upgrade = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)));
    let ws = match tokio::time::timeout_at(accepted + cfg.handshake_timeout, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(_)) if over_capacity => return shared.metrics.refuse_upgrade("capacity"),
        Ok(Err(_)) => return shared.metrics.refuse_upgrade("bad_request"),
        Err(_) => return shared.metrics.refuse_upgrade("timeout"),
    };
    let (sink, source) = ws.split();
    let capacity = cfg.queue_messages.max(cfg.mailbox_limit + 16);
    let me = Peer { ctl: shared.registry.new_ctl(capacity) };
    let mut conn = Conn {
        timeouts: Timeouts::new(accepted, cfg.handshake_timeout, cfg.idle_timeout),
        shared: shared.clone(),
        me: me.clone(),
        id: 0,
        cache: HashMap::new(),
        groups: Vec::new(),
        held: VecDeque::new(),
        adv: Held::default(),
        routed: 0,
        bytes_in: 0,
        sample: 0,
        scan: ScanTally::default(),
        claims: None,
        stamped: 0,
        stamp_tick: 0,
        arena: BytesMut::new(),
        arena_block: ARENA_FIRST,
    };
    let mut writer = Writer::new(sink);
    let (close, failed) = match conn.run(source, &mut writer).await {
        Ended::Close(close) => (close, false),
        Ended::WriteFailed => (None, true),
    };
    conn.cleanup();
    // What was not written goes back to the mailbox and the id goes offline before the
    // close frame, so those frames stay ahead of anything stored later. Boxed: the closing
    // steps are needed once, and inline they would be part of every connection's task.
    Box::pin(writer::finish(writer, &shared, &me, close, failed)).await;
}

/// How a connection's task ended.
enum Ended {
    /// The reading side decided to close, with this code.
    Close(CloseWith),
    /// The socket failed while writing.
    WriteFailed,
}

/// The reading side of one connection.
struct Conn {
    shared: Arc<Shared>,
    /// This connection's own queue (for acks and errors) and control block.
    me: Peer,
    /// Registered client id (0 until HELLO succeeds).
    id: u64,
    /// The handshake and idle timeouts (one timer).
    timeouts: Timeouts,
    /// Peers this client has sent to: the hot path skips the registry for them.
    cache: HashMap<u64, Peer>,
    /// Groups joined (left on disconnect).
    groups: Vec<u64>,
    /// Outgoing frames (deliveries, acks, errors) are carved from this buffer, a block at a
    /// time; empty until the connection first sends, and emptied again when the connection
    /// falls silent (the idle timer's ping), so idle connections pay nothing.
    arena: BytesMut,
    /// The arena's next block size (see [`ARENA_FIRST`]).
    arena_block: usize,
    /// With `--delay`: SEND frames held until their release time.
    held: VecDeque<(Instant, Bytes)>,
    /// With `--adversary`: messages it holds (delayed, replay copies, reorders).
    adv: Held,
    /// Counters published once per batch.
    routed: u64,
    bytes_in: u64,
    sample: u32,
    /// With a scan: what it saw since the last batch was published.
    scan: ScanTally,
    /// Its key claims' rate state, made at its first claim.
    claims: Option<Box<ClaimLimiter>>,
    /// Franked messages stamped since the last batch was published…
    stamped: u32,
    /// …and the tick that picks the ones timed.
    stamp_tick: u32,
}

/// A connection's scan counters between two publications (a batch is at most
/// [`READ_BATCH`] frames, so `u32` holds them), and its sampling tick.
#[derive(Default)]
struct ScanTally {
    scanned: u32,
    unreadable: u32,
    matched: u32,
    matches: u32,
    blocked: u32,
    tick: u32,
}

/// What handling one message decided.
enum Next {
    Continue,
    Close(CloseCode, &'static str),
}

impl Conn {
    async fn run<S: super::Io>(&mut self, mut source: Source<S>, writer: &mut Writer<S>) -> Ended {
        let shared = self.shared.clone();
        let mut shutdown_rx = shared.shutdown.clone();
        let cfg = &shared.config;
        let timer = tokio::time::sleep_until(self.timeouts.deadline());
        tokio::pin!(timer);
        // Made once: a fresh `changed()` each turn would register with the shared watch
        // channel (a lock every connection takes) every time the task wakes.
        let shutdown = shutdown_rx.changed();
        tokio::pin!(shutdown);
        // Held frames' release time: one timer, reset only when that time changes (the
        // loop turns for every batch written as well as every batch read).
        let release_timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(release_timer);
        let me = self.me.clone();
        loop {
            if me.ctl.killed.load(Ordering::Acquire) {
                self.shared.metrics.queue_overflows.inc();
                self.shared.metrics.close("slow_consumer");
                return Ended::Close(Some((CLOSE_SLOW, "slow consumer: send queue overflow")));
            }
            let release = match (self.held.front().map(|(t, _)| *t), self.adv.next_release()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(t) = release
                && release_timer.deadline() != t
            {
                release_timer.as_mut().reset(t);
            }
            tokio::select! {
                biased;
                w = poll_fn(|cx| writer.poll_write(cx, &shared, &me)) => match w {
                    Written::Killed => continue,
                    Written::Failed => return Ended::WriteFailed,
                },
                _ = &mut shutdown => {
                    self.shared.metrics.close("shutdown");
                    return Ended::Close(Some((CloseCode::Away, "relay shutting down")));
                }
                _ = &mut release_timer, if release.is_some() => self.release_held(),
                m = source.next() => {
                    self.timeouts.on_read(Instant::now());
                    let mut next = Some(m);
                    let mut n = 0;
                    while let Some(m) = next.take() {
                        match self.on_message(m) {
                            Next::Continue => {}
                            Next::Close(code, why) => { self.publish(); return Ended::Close(Some((code, why))); }
                        }
                        n += 1;
                        if n < READ_BATCH { next = source.next().now_or_never(); }
                    }
                    self.publish();
                    // Registration moves the deadline earlier (HELLO → idle rules).
                    if self.timeouts.deadline() < timer.deadline() {
                        timer.as_mut().reset(self.timeouts.deadline());
                    }
                }
                _ = &mut timer => {
                    match self.timeouts.fire(Instant::now()) {
                        Fire::Wait => {}
                        Fire::Ping => {
                            let _ = self.me.enqueue_own(PING, cfg.queue_bytes);
                            self.release_arena();
                            writer.release_when_idle();
                        }
                        Fire::NoHello => {
                            self.shared.metrics.close("no_hello");
                            return Ended::Close(Some((CloseCode::Policy, "no HELLO within the handshake timeout")));
                        }
                        Fire::Idle => {
                            self.shared.metrics.close("idle");
                            return Ended::Close(Some((CLOSE_IDLE, "idle timeout")));
                        }
                    }
                    timer.as_mut().reset(self.timeouts.deadline());
                }
            }
        }
    }

    fn publish(&mut self) {
        let m = &self.shared.metrics;
        if self.routed > 0 {
            m.routed.inc_by(std::mem::take(&mut self.routed));
        }
        if self.bytes_in > 0 {
            m.bytes_in.inc_by(std::mem::take(&mut self.bytes_in));
        }
        if self.stamped > 0 {
            m.franking.stamped.inc_by(u64::from(std::mem::take(&mut self.stamped)));
        }
        let t = &mut self.scan;
        if t.scanned + t.unreadable > 0 {
            for (counter, n) in [
                (&m.scanned, &mut t.scanned),
                (&m.scan_unreadable, &mut t.unreadable),
                (&m.scan_matched, &mut t.matched),
                (&m.scan_matches, &mut t.matches),
                (&m.scan_blocked, &mut t.blocked),
            ] {
                if *n > 0 {
                    counter.inc_by(u64::from(std::mem::take(n)));
                }
            }
        }
    }

    /// With a scan: reads the body of a SEND / GROUP_SEND when it can (PLAIN,
    /// PLAIN_GROUP; anything else is counted unreadable) and counts its keyword matches;
    /// with `block`, refuses a body that matched. Returns true when it refused it.
    #[inline]
    fn scan_refuses(&mut self, request_id: u64, body: &[u8]) -> bool {
        let Some(scanner) = self.shared.config.scan.as_deref() else { return false };
        let Some(text) = scan::readable(body) else {
            self.scan.unreadable += 1;
            return false;
        };
        self.scan.tick = self.scan.tick.wrapping_add(1);
        let t0 = self.scan.tick.is_multiple_of(scan::SCAN_SAMPLE).then(std::time::Instant::now);
        let matches = scanner.count(text);
        if let Some(t0) = t0 {
            self.shared.metrics.scan_observe(t0.elapsed());
        }
        let block = matches > 0 && scanner.action() == scan::ScanAction::Block;
        let t = &mut self.scan;
        t.scanned += 1;
        if matches > 0 {
            t.matched += 1;
            t.matches = t.matches.saturating_add(matches);
        }
        if block {
            t.blocked += 1;
            self.refuse(request_id, ErrorCode::ContentBlocked, "the message matched the relay's keyword list");
        }
        block
    }

    fn on_message(&mut self, m: Option<Result<Message, WsError>>) -> Next {
        let max = self.shared.config.max_message;
        match m {
            None => Next::Close(CloseCode::Normal, "closed by client"),
            Some(Err(WsError::Capacity(_))) => {
                self.refuse(0, ErrorCode::TooLarge, "message far over the maximum size; closing");
                Next::Close(CloseCode::Size, "message too big")
            }
            Some(Err(_)) => Next::Close(CloseCode::Protocol, "WebSocket protocol error"),
            Some(Ok(Message::Binary(data))) => {
                self.bytes_in += data.len() as u64;
                if data.len() > max {
                    let req = request_id_of(&data);
                    self.refuse(req, ErrorCode::TooLarge, "message exceeds the relay's maximum message size");
                    return Next::Continue;
                }
                self.on_frame(data)
            }
            Some(Ok(Message::Text(_))) => {
                self.refuse(0, ErrorCode::TextFrame, "text messages are not part of the protocol; send binary");
                Next::Continue
            }
            Some(Ok(Message::Close(_))) => Next::Close(CloseCode::Normal, "closed by client"),
            Some(Ok(_)) => Next::Continue, // ping / pong: tungstenite answers pings itself
        }
    }

    fn on_frame(&mut self, data: Bytes) -> Next {
        let req = request_id_of(&data);
        let ty = match frame::peek_type(&data) {
            Ok(t) => t,
            Err(e) => {
                self.refuse(req, e.code(), "cannot read the frame's version and type");
                return Next::Continue;
            }
        };
        if ty as u8 & 0x80 != 0 {
            // A relay→client type: refused by its type, whatever its layout.
            self.refuse(req, ErrorCode::UnknownType, "a relay-to-client frame type sent by a client");
            return Next::Continue;
        }
        if self.id == 0 && ty != FrameType::Hello {
            self.refuse(req, ErrorCode::NotRegistered, "send HELLO first");
            return Next::Continue;
        }
        let frame = match frame::decode(&data) {
            Ok(f) => f,
            Err(e) => {
                self.refuse(req, e.code(), malformed_reason(e));
                return Next::Continue;
            }
        };
        match frame {
            Frame::Hello { client_id, token } => self.on_hello(client_id, token),
            Frame::Send { request_id, flags, recipient, body } => {
                let adversary = self.shared.config.adversary.filter(|_| Adversary::eligible(body));
                let body_len = body.len();
                if recipient == 0 || recipient == self.id {
                    self.refuse(request_id, ErrorCode::InvalidTarget, "recipient is 0 or the sender itself");
                } else if flags & FLAG_FRANKED != 0 && body_len < TRAILER_LEN {
                    self.refuse(request_id, ErrorCode::Malformed, SHORT_TRAILER);
                } else if self.scan_refuses(request_id, body) {
                    // Blocked (and answered) by the scan.
                } else if let Some(adv) = adversary {
                    self.adversarial_send(&adv, data, request_id, flags, recipient, body_len);
                } else if self.shared.config.delay.is_zero() {
                    self.route_send(data, request_id, flags, recipient);
                } else {
                    self.held.push_back((Instant::now() + self.shared.config.delay, data));
                }
                Next::Continue
            }
            Frame::GroupSend { request_id, group: 0, .. } | Frame::GroupLeave { request_id, group: 0 } => {
                self.refuse(request_id, ErrorCode::InvalidTarget, "group id 0 is reserved");
                Next::Continue
            }
            Frame::GroupSend { request_id, flags, body, .. }
                if flags & FLAG_FRANKED != 0 && body.len() < TRAILER_LEN =>
            {
                self.refuse(request_id, ErrorCode::Malformed, SHORT_TRAILER);
                Next::Continue
            }
            Frame::GroupSend { request_id, flags, group, .. } => {
                self.group_send(data, request_id, flags, group);
                Next::Continue
            }
            report @ Frame::Report { .. } => {
                self.on_report(report);
                Next::Continue
            }
            Frame::GroupJoin { request_id, group } => {
                self.join(request_id, group);
                Next::Continue
            }
            Frame::GroupLeave { request_id, group } => {
                self.leave(request_id, group);
                Next::Continue
            }
            Frame::KeyPublish { request_id, key } => {
                self.publish_key(request_id, key);
                Next::Continue
            }
            Frame::KeyFetch { request_id, client } => {
                self.fetch_key(request_id, client);
                Next::Continue
            }
            Frame::KeysPublish { request_id, pool, flags, items, count: _ } => {
                self.publish_keys(request_id, pool, flags, items);
                Next::Continue
            }
            Frame::KeyClaim { request_id, client, pool } => {
                self.claim_key(request_id, client, pool);
                Next::Continue
            }
            _ => {
                self.refuse(req, ErrorCode::UnknownType, "a relay-to-client frame type sent by a client");
                Next::Continue
            }
        }
    }

    /// GROUP_LEAVE: acknowledged, or refused when not a member.
    fn leave(&mut self, request_id: u64, group: u64) {
        if let Some(i) = self.groups.iter().position(|g| *g == group) {
            self.groups.swap_remove(i);
            self.shared.registry.leave(group, self.id);
            self.ack(request_id);
        } else {
            self.refuse(request_id, ErrorCode::NotAMember, "not a member of that group");
        }
    }

    /// KEY_PUBLISH: the static key stored in the directory, or refused (empty, or the
    /// directory full).
    fn publish_key(&mut self, request_id: u64, key: &[u8]) {
        if key.is_empty() {
            self.refuse(request_id, ErrorCode::BadKey, "empty key");
        } else if self.shared.registry.publish_key(self.id, Bytes::copy_from_slice(key), self.shared.config.max_keys) {
            self.ack(request_id);
        } else {
            self.refuse(request_id, ErrorCode::BadKey, "the key directory is full");
        }
    }

    /// KEY_FETCH: the client's published key, or refused when it has none.
    fn fetch_key(&mut self, request_id: u64, client: u64) {
        match self.shared.registry.key(client) {
            Some(key) => {
                let f = Frame::Key { request_id, client, key: &key };
                self.send_frame(&f);
            }
            None => self.refuse(request_id, ErrorCode::NoSuchKey, "that client has published no key"),
        }
    }

    /// KEYS_PUBLISH: all items stored, or none (ERROR `BAD_KEY` with the limit's reason).
    fn publish_keys(&mut self, request_id: u64, pool: u8, flags: u8, items: &[u8]) {
        let list: Vec<&[u8]> = frame::key_items(items).collect();
        let fallback = flags & frame::POOL_FLAG_FALLBACK != 0;
        let limits = self.shared.config.key_pools;
        match self.shared.pools.publish(self.id, pool, fallback, list.into_iter(), limits) {
            Ok((available, has_fallback)) => {
                let f = Frame::PoolStatus { request_id, pool, available, fallback: u8::from(has_fallback) };
                self.send_frame(&f);
            }
            Err(e) => {
                self.shared.metrics.key_refused("publish", e.label());
                self.refuse(request_id, ErrorCode::BadKey, e.reason());
            }
        }
    }

    /// KEY_CLAIM: one item of another client's pool, each one-time item once.
    fn claim_key(&mut self, request_id: u64, client: u64, pool: u8) {
        let limits = self.shared.config.key_claims;
        let now = Instant::now().into_std();
        let limiter = self.claims.get_or_insert_with(|| Box::new(ClaimLimiter::new(limits, now)));
        if let Err(why) = limiter.take(client, pool, now, limits) {
            self.shared.metrics.key_refused("claim", why.label());
            self.refuse(request_id, ErrorCode::RateLimited, why.reason());
            return;
        }
        let claim = self.shared.pools.claim(client, pool);
        let result = match &claim {
            Some(c) if c.fallback => "fallback",
            Some(_) => "one_time",
            None => "empty",
        };
        self.shared.metrics.key_claimed(result);
        match claim {
            Some(c) => {
                let source = if c.fallback { frame::CLAIM_FALLBACK } else { frame::CLAIM_ONE_TIME };
                let f = Frame::Claimed { request_id, client, pool, source, remaining: c.remaining, item: &c.item };
                self.send_frame(&f);
            }
            None => {
                self.refuse(request_id, ErrorCode::NoSuchKey, "that client's key pool is empty and has no fallback")
            }
        }
    }

    fn on_hello(&mut self, client_id: u64, token: &[u8]) -> Next {
        if self.id != 0 {
            self.refuse(0, ErrorCode::AlreadyRegistered, "this connection is already registered");
            return Next::Continue;
        }
        if client_id == 0 {
            self.refuse(0, ErrorCode::InvalidTarget, "client id 0 is reserved");
            return Next::Close(CloseCode::Policy, "invalid client id");
        }
        if let Some(secret) = &self.shared.config.auth_secret
            && !frame::verify_auth_token(secret, client_id, token)
        {
            self.refuse(0, ErrorCode::AuthFailed, "token is not HMAC-SHA256(secret, client id)");
            return Next::Close(CloseCode::Policy, "authentication failed");
        }
        let max_message = self.shared.config.max_message as u32;
        let shared = self.shared.clone();
        // WELCOME is queued inside the registration (before the id goes online), so no
        // DELIVER routed to this connection can overtake it.
        let registered = shared.registry.register(client_id, self.me.clone(), |stored| {
            self.send_frame(&Frame::Welcome { client_id, stored: stored as u32, max_message });
        });
        match registered {
            Register::Duplicate => {
                self.refuse(0, ErrorCode::DuplicateId, "another connection is registered with this client id");
                Next::Close(CloseCode::Policy, "duplicate client id")
            }
            Register::Ok(_stored) => {
                self.id = client_id;
                self.timeouts.on_registered(Instant::now());
                self.shared.metrics.registrations.inc();
                // WELCOME is queued: the writing side, polled by this task after this
                // message, may now take the stored frames (after it).
                self.me.ctl.id.store(client_id, Ordering::Release);
                Next::Continue
            }
        }
    }

    /// SEND → DELIVER, rewriting the header in place (no copy when the buffer is ours).
    fn route_send(&mut self, data: Bytes, request_id: u64, flags: u8, recipient: u64) {
        let t0 = self.sampled().then(Instant::now);
        let franked = data.get(10).is_some_and(|f| f & FLAG_FRANKED != 0);
        let mut buf = self.writable(data);
        // Cannot fail: decode() already checked the 19-byte header.
        let _ = frame::rewrite_as_deliver(&mut buf, self.id, if franked { FLAG_FRANKED } else { 0 }, 0);
        if franked {
            self.stamp(&mut buf, recipient);
        }
        let limit = self.shared.config.queue_bytes;
        let mut frame = Some(buf);
        for _attempt in 0..2 {
            let peer = match self.cache.get(&recipient).filter(|p| p.is_live()) {
                Some(p) => p.clone(),
                None => {
                    self.cache.remove(&recipient);
                    let cfg = &self.shared.config;
                    let limits = MailLimits {
                        messages: cfg.mailbox_limit,
                        bytes: cfg.mailbox_bytes,
                        total_bytes: cfg.mailbox_total_bytes,
                        mailboxes: cfg.max_mailboxes,
                    };
                    let route = self.shared.registry.route(
                        recipient,
                        |offline| {
                            let mut b = frame.take().unwrap_or_default();
                            if offline && b.len() > 10 {
                                b[10] |= FLAG_STORED;
                            }
                            b.freeze()
                        },
                        limits,
                        &self.shared.metrics,
                    );
                    match route {
                        Route::Online(p) => {
                            self.cache.insert(recipient, p.clone());
                            p
                        }
                        Route::Stored => {
                            self.done_send(request_id, flags, t0);
                            return;
                        }
                        Route::MailboxFull { limit, reason } => {
                            self.shared.metrics.mailbox_refusal(limit);
                            self.refuse(request_id, ErrorCode::MailboxFull, reason);
                            return;
                        }
                        Route::Unknown => {
                            self.refuse(
                                request_id,
                                ErrorCode::UnknownRecipient,
                                "recipient offline and unknown to the relay (it has never registered)",
                            );
                            return;
                        }
                    }
                }
            };
            let Some(f) = frame.take() else { return };
            let bytes = f.freeze();
            match peer.enqueue(bytes.clone(), limit) {
                Ok(()) => {
                    self.routed += 1;
                    self.done_send(request_id, flags, t0);
                    return;
                }
                Err(EnqueueError::Overloaded) => {
                    self.refuse(
                        request_id,
                        ErrorCode::RecipientOverloaded,
                        "recipient's queue is full; it is being disconnected as a slow consumer",
                    );
                    return;
                }
                Err(EnqueueError::Gone) => {
                    // It just went offline: try once more through the registry (mailbox).
                    self.cache.remove(&recipient);
                    frame = Some(BytesMut::from(&bytes[..]));
                }
            }
        }
        self.refuse(request_id, ErrorCode::RecipientOverloaded, "recipient disconnected while routing");
    }

    /// REPORT: verified (both MACs recomputed), counted, and answered with REPORT_RESULT.
    fn on_report(&mut self, report: Frame<'_>) {
        let Frame::Report { request_id, sender, recipient, time_ns, commitment, stamp, franking_key, message } = report
        else {
            return;
        };
        let ctx = sealcore::franking::Context { sender, recipient, time_ns };
        let result = match self.shared.franking.as_ref() {
            Some(key) => {
                let m = &self.shared.metrics.franking;
                franking::verify(key, m, message, franking_key, commitment, ctx, stamp)
            }
            None => frame::REPORT_REFUSED_STAMP,
        };
        self.send_frame(&Frame::ReportResult { request_id, result });
    }

    /// Stamps the franking trailer of a DELIVER being made (its length was checked when
    /// the SEND was read): the relay's MAC over (commitment, sender, `recipient`, time).
    fn stamp(&mut self, deliver: &mut [u8], recipient: u64) {
        let Some(key) = self.shared.franking.as_ref() else { return };
        self.stamp_tick = self.stamp_tick.wrapping_add(1);
        let timed = self.stamp_tick.is_multiple_of(franking::STAMP_SAMPLE);
        let body = deliver.get_mut(frame::ROUTED_HEADER_LEN..).unwrap_or_default();
        if franking::stamp(key, &self.shared.metrics.franking, body, self.id, recipient, timed) {
            self.stamped += 1;
        }
    }

    fn done_send(&mut self, request_id: u64, flags: u8, t0: Option<Instant>) {
        if flags & FLAG_ACK != 0 {
            self.ack(request_id);
        }
        if let Some(t0) = t0 {
            self.shared.metrics.routing_seconds.observe(t0.elapsed().as_secs_f64());
        }
    }

    fn sampled(&mut self) -> bool {
        self.sample = self.sample.wrapping_add(1);
        self.sample.is_multiple_of(SAMPLE_EVERY)
    }

    /// A SEND the adversary may touch: ACKed on acceptance, then forwarded as it decides.
    fn adversarial_send(&mut self, adv: &Adversary, data: Bytes, request_id: u64, flags: u8, to: u64, body_len: usize) {
        let index = self.shared.adversary_index.fetch_add(1, Ordering::Relaxed);
        if flags & FLAG_ACK != 0 {
            self.ack(request_id);
        }
        let flags = flags & !FLAG_ACK;
        let m = self.shared.metrics.clone();
        let later = Instant::now() + adv.delay_by;
        // The follower of a held reorder goes through untouched (see `adversary`).
        let action = if self.adv.waiting(to) { Action::Pass } else { adv.decide(index, body_len) };
        match action {
            Action::Pass => self.route_send(data, request_id, flags, to),
            Action::Tamper { bit } => {
                let mut v = data.to_vec();
                if let Some(b) = v.get_mut(frame::ROUTED_HEADER_LEN + bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
                m.adversary_did("tampered");
                self.route_send(Bytes::from(v), request_id, flags, to);
            }
            Action::Replay => {
                self.route_send(data.clone(), request_id, flags, to);
                self.adv.hold(later, Released::Replayed, to, data);
            }
            Action::Duplicate => {
                self.route_send(data.clone(), request_id, flags, to);
                self.route_send(data, request_id, flags, to);
                m.adversary_did("duplicated");
            }
            Action::Drop => {
                m.adversary_did("dropped");
                return;
            }
            Action::Reorder => {
                if self.adv.hold_for_reorder(to, later, data.clone()) {
                    return;
                }
                self.route_send(data, request_id, flags, to);
            }
            Action::Delay => {
                self.adv.hold(later, Released::Delayed, to, data);
                return;
            }
        }
        // Something just went to `to`: a message held to be reordered follows it.
        if let Some(held) = self.adv.follower(to) {
            self.route_send(held, 0, flags, to);
            m.adversary_did("reordered");
        }
    }

    fn release_held(&mut self) {
        let now = Instant::now();
        for (what, to, data) in self.adv.due(now) {
            self.route_send(data, 0, 0, to);
            match what {
                Released::Replayed => self.shared.metrics.adversary_did("replayed"),
                Released::Delayed => self.shared.metrics.adversary_did("delayed"),
                Released::Unreordered => {}
            }
        }
        while self.held.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, data)) = self.held.pop_front() else { break };
            if let Ok(Frame::Send { request_id, flags, recipient, .. }) = frame::decode(&data) {
                self.route_send(data.clone(), request_id, flags, recipient);
            }
        }
        self.publish();
    }

    fn group_send(&mut self, data: Bytes, request_id: u64, flags: u8, group: u64) {
        if !self.groups.contains(&group) {
            self.refuse(request_id, ErrorCode::NotAMember, "not a member of that group");
            return;
        }
        if self.scan_refuses(request_id, data.get(frame::ROUTED_HEADER_LEN..).unwrap_or_default()) {
            return;
        }
        let franked = data.get(10).is_some_and(|f| f & FLAG_FRANKED != 0);
        let mut buf = self.writable(data);
        let flags_out = if franked { FLAG_GROUP | FLAG_FRANKED } else { FLAG_GROUP };
        let _ = frame::rewrite_as_deliver(&mut buf, self.id, flags_out, group);
        if franked {
            self.stamp(&mut buf, group); // once for every member: the group is its recipient
        }
        let bytes = buf.freeze(); // encoded once, shared by every member
        let limit = self.shared.config.queue_bytes;
        let (mut routed, mut overloaded) = (0u64, 0u32);
        self.shared.registry.for_each_member(group, self.id, |_, peer| match peer.enqueue(bytes.clone(), limit) {
            Ok(()) => routed += 1,
            Err(EnqueueError::Overloaded) => overloaded += 1,
            Err(EnqueueError::Gone) => {}
        });
        self.routed += routed;
        if overloaded > 0 {
            let reason = "some members' queues were full; they are being disconnected as slow consumers";
            self.refuse(request_id, ErrorCode::RecipientOverloaded, reason);
        } else if flags & FLAG_ACK != 0 {
            self.ack(request_id);
        }
    }

    fn join(&mut self, request_id: u64, group: u64) {
        let cfg = &self.shared.config;
        if group == 0 {
            self.refuse(request_id, ErrorCode::InvalidTarget, "group id 0 is reserved");
        } else if self.groups.contains(&group) {
            self.ack(request_id);
        } else if self.groups.len() >= cfg.max_groups_per_client {
            self.refuse(request_id, ErrorCode::TooManyGroups, "this client is in the maximum number of groups");
        } else if self.shared.registry.join(group, self.id, self.me.clone(), cfg.max_group_members).is_err() {
            self.refuse(request_id, ErrorCode::GroupFull, "the group has the maximum number of members");
        } else {
            self.groups.push(group);
            self.ack(request_id);
        }
    }

    fn ack(&mut self, request_id: u64) {
        self.send_frame(&Frame::Ack { request_id });
    }

    fn refuse(&mut self, request_id: u64, code: ErrorCode, reason: &str) {
        self.shared.metrics.refuse(code);
        tracing::debug!(client = self.id, code = code.name(), reason, "refused input");
        self.send_frame(&Frame::Error { request_id, code: code as u16, reason });
    }

    fn send_frame(&mut self, f: &Frame<'_>) {
        let len = f.encoded_len();
        self.reserve(len);
        self.arena.resize(len, 0);
        if f.encode(&mut self.arena).is_ok() {
            let frame = self.arena.split().freeze();
            let _ = self.me.enqueue_own(frame, self.shared.config.queue_bytes);
        } else {
            self.arena.clear();
        }
    }

    /// Makes room for `n` bytes in the arena, a block at a time.
    fn reserve(&mut self, n: usize) {
        if self.arena.capacity() < n {
            self.arena.reserve(n.max(self.arena_block));
            self.arena_block = (self.arena_block * 2).min(ARENA_BLOCK);
        }
    }

    /// Gives the arena's unused bytes back (frames already carved from it keep their
    /// block until written): the connection has been silent for half its idle timeout.
    fn release_arena(&mut self) {
        self.arena = BytesMut::new();
        self.arena_block = ARENA_FIRST;
    }

    /// A writable copy of a received frame. tungstenite's frames are slices of its shared
    /// read buffer, so they cannot be rewritten in place; copying them into the arena
    /// costs one allocation per block of frames instead of one per frame.
    fn writable(&mut self, data: Bytes) -> BytesMut {
        match data.try_into_mut() {
            Ok(owned) => owned,
            Err(shared) => {
                self.reserve(shared.len());
                self.arena.extend_from_slice(&shared);
                self.arena.split()
            }
        }
    }

    fn cleanup(&mut self) {
        self.publish();
        for g in self.groups.drain(..) {
            self.shared.registry.leave(g, self.id);
        }
    }
}

/// Why a franked SEND / GROUP_SEND too short for its trailer is refused.
const SHORT_TRAILER: &str = "a franked body is shorter than its 72-byte franking trailer";

/// The request id of a client frame (bytes 2..10), 0 when there is none.
fn request_id_of(data: &[u8]) -> u64 {
    match data.get(1).copied().and_then(FrameType::from_u8) {
        Some(FrameType::Hello) | None => 0,
        Some(_) => data.get(2..10).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0),
    }
}

fn malformed_reason(e: frame::FrameError) -> &'static str {
    match e {
        frame::FrameError::Short => "frame shorter than its type requires",
        frame::FrameError::BadLength => "a length field points past the end of the frame",
        frame::FrameError::Trailing => "trailing bytes after the frame",
        frame::FrameError::BadField => "a field is out of range",
        frame::FrameError::Version(_) => "unsupported protocol version",
        frame::FrameError::UnknownType(_) => "unknown frame type",
        _ => "malformed frame",
    }
}
