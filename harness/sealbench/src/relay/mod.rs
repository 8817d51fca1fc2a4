//! The reference relay: routes opaque ciphertext between registered clients over
//! WebSockets. It never holds a key; it cannot read what it carries.
//!
//! Entry points take resources: [`run`]`(listener, config, shutdown)` serves a bound
//! listener until the shutdown future completes (the relay bench); [`Relay::serve`] does
//! the same for a [`Relay`] whose metrics handle the caller keeps (`sealbench relay` for
//! `--metrics`, the embedded relay for its counters, the tests). [`bind`] makes the
//! listener with a deep accept backlog.
//!
//! # Layout
//! - [`config`] — limits and options with their defaults.
//! - [`timeouts`] — the handshake and idle timeouts of a connection (sans-IO, one timer).
//! - [`adversary`] — the adversarial relay mode (testing only): decisions and held messages.
//! - [`registry`] — online clients, mailboxes, groups, key directory.
//! - [`keypool`] — the key directory's pools: one-time keys and key packages, claimed
//!   atomically, with a fallback when a pool is empty (Olm, MLS).
//! - `connection` — one connection: upgrade, HELLO, the reading side and routing;
//!   `writer` — its writing side.
//! - [`scan`] — the relay that reads: a keyword scan of the bodies it can read (PLAIN,
//!   PLAIN_GROUP), counted or blocked; the word lists it matches.
//! - [`franking`] — message franking: the stamp of each franked message it forwards, and
//!   the verification of reports (it never reads the message until one is reported).
//! - [`metrics`] — Prometheus metrics; [`http`] — the `/metrics` and `/healthz` server.
//! - [`tls`] — `wss://`: the server certificate (PEM files or generated) and the TLS
//!   accept step in front of the upgrade.

pub mod adversary;
pub mod config;
mod connection;
pub mod franking;
pub mod http;
pub mod keypool;
pub mod metrics;
pub mod registry;
pub mod scan;
pub mod timeouts;
pub mod tls;
mod writer;

pub use adversary::{Adversary, AdversaryCounts};
pub use config::RelayConfig;
use metrics::RelayMetrics;
use registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Close code for a slow consumer (its send queue overflowed).
pub const CLOSE_SLOW: CloseCode = CloseCode::Library(4001);
/// Close code for an idle connection (nothing received for the idle timeout).
pub const CLOSE_IDLE: CloseCode = CloseCode::Library(4002);

/// What a connection's bytes travel over: TCP, or TLS over TCP (the connection code is
/// generic over it, so a `ws://` relay pays nothing for `wss://`).
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// State every connection shares.
#[derive(Debug)]
struct Shared {
    config: RelayConfig,
    registry: Registry,
    metrics: Arc<RelayMetrics>,
    /// Open connections (accepted and not yet finished).
    connections: AtomicUsize,
    /// Becomes true on shutdown.
    shutdown: watch::Receiver<bool>,
    /// Notified when the last connection ends.
    idle: Notify,
    /// Index of the next message the adversary decides on (test aid).
    adversary_index: std::sync::atomic::AtomicU64,
    /// One-time keys, key packages and fallbacks (Olm, MLS).
    pools: keypool::KeyPools,
    /// The secret franked messages are stamped with (drawn at start, never leaves the
    /// process); None only if the OS had no randomness (then nothing is stamped and every
    /// report is refused as `stamp`).
    franking: Option<sealcore::franking::RelayKey>,
}

/// A relay instance: its config and metrics, before and while it serves.
#[derive(Debug, Clone)]
pub struct Relay {
    config: RelayConfig,
    metrics: Arc<RelayMetrics>,
}

impl Relay {
    /// A relay with `config`.
    pub fn new(config: RelayConfig) -> Self {
        let mut metrics = RelayMetrics::new();
        metrics.set_scanner(config.scan.as_deref());
        Relay { config, metrics: Arc::new(metrics) }
    }

    /// Its metrics (live while it serves).
    pub fn metrics(&self) -> Arc<RelayMetrics> {
        self.metrics.clone()
    }

    /// Serves `listener` until `shutdown` completes, then closes every connection with
    /// "going away" (1001) and returns once they have ended (at most a few seconds).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (shared, stop_tx) = self.into_shared();
        accept_until(&shared, listener, shutdown).await;
        let _ = stop_tx.send(true);
        wait_for_connections(&shared).await;
    }

    /// Serves `addr` thread per core: `threads` OS threads, each with its own
    /// single-threaded runtime and its own `SO_REUSEPORT` listener on `addr` (the kernel
    /// spreads the connections), so a connection's task (it reads and writes) never leaves
    /// its thread and no worker wakes another to steal work. A message whose recipient
    /// lives on another thread still crosses (its connection's task is woken there). Blocks until
    /// `shutdown` turns true and every connection has ended. `on_bound` hears the bound
    /// address once (port 0 resolved).
    ///
    /// # Errors
    /// When a listener cannot be bound or a thread cannot start.
    pub fn serve_per_core(
        self,
        addr: std::net::SocketAddr,
        threads: usize,
        shutdown: watch::Receiver<bool>,
        on_bound: impl FnOnce(std::net::SocketAddr),
    ) -> std::io::Result<()> {
        let (shared, stop_tx) = self.into_shared();
        let stop_tx = Arc::new(stop_tx);
        let mut addr = addr;
        let mut handles = Vec::with_capacity(threads.max(1));
        for t in 0..threads.max(1) {
            let (bound_tx, bound_rx) = std::sync::mpsc::channel();
            let (shared, stop_tx, mut shutdown) = (shared.clone(), stop_tx.clone(), shutdown.clone());
            let handle = std::thread::Builder::new().name(format!("sealbench-relay-{t}")).spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(bound_tx.send(Err(e))),
                };
                rt.block_on(async move {
                    let listener = match bind_reuseport(addr) {
                        Ok(l) => l,
                        Err(e) => return drop(bound_tx.send(Err(e))),
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    accept_until(&shared, listener, async move {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    })
                    .await;
                    let _ = stop_tx.send(true);
                    wait_for_connections(&shared).await;
                });
            })?;
            // Each thread binds before the next starts: the first resolves port 0.
            match bound_rx.recv() {
                Ok(Ok(a)) => addr = a,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::Error::other(format!("relay thread {t} ended before binding"))),
            }
            handles.push(handle);
        }
        on_bound(addr);
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    }

    fn into_shared(self) -> (Arc<Shared>, watch::Sender<bool>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let registry = Registry::with_known_limit(self.config.max_known_clients);
        let shared = Arc::new(Shared {
            config: self.config,
            registry,
            metrics: self.metrics,
            connections: AtomicUsize::new(0),
            shutdown: stop_rx,
            idle: Notify::new(),
            adversary_index: std::sync::atomic::AtomicU64::new(0),
            pools: keypool::KeyPools::default(),
            franking: sealcore::franking::RelayKey::generate()
                .inspect_err(|e| tracing::error!(error = %e, "no randomness for the franking secret"))
                .ok(),
        });
        (shared, stop_tx)
    }
}

/// Accepts connections on `listener` (a task each on the current runtime) until
/// `shutdown` completes.
async fn accept_until(shared: &Arc<Shared>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let acceptor = shared.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.metrics.connections_total.inc();
                    shared.metrics.connections.inc();
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let s = shared.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let accepted = tokio::time::Instant::now();
                        let _ = stream.set_nodelay(true);
                        match acceptor {
                            None => connection::serve(s.clone(), stream, accepted).await,
                            // Boxed: a TLS handshake's state and a TLS connection's
                            // future are kilobytes, and inline they would make every
                            // task this size, plain `ws://` connections too.
                            Some(a) => Box::pin(async {
                                if let Some(tls) = tls::accept(&s, &a, stream, accepted).await {
                                    connection::serve(s.clone(), tls, accepted).await;
                                }
                            })
                            .await,
                        }
                        s.metrics.connections.dec();
                        if s.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
                            s.idle.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Waits (at most 5 s) until every connection has ended, after the shutdown signal.
async fn wait_for_connections(shared: &Shared) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.connections.load(Ordering::Acquire) > 0 {
        let notified = shared.idle.notified();
        if shared.connections.load(Ordering::Acquire) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            tracing::warn!(left = shared.connections.load(Ordering::Relaxed), "connections still open at exit");
            break;
        }
    }
}

/// Binds a listener with a deep accept backlog (4096, capped by `net.core.somaxconn`): a
/// storm of connects otherwise overflows the default backlog and clients wait for a SYN
/// retransmission (1 s).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    listen(addr, false)
}

/// [`bind`] with `SO_REUSEPORT`: several listeners on one address, one per thread.
fn bind_reuseport(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    listen(addr, true)
}

fn listen(addr: std::net::SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Runs a relay with `config` on `listener` until `shutdown` completes, for callers that
/// need no metrics (see [`Relay::serve`]).
pub async fn run(listener: TcpListener, config: RelayConfig, shutdown: impl Future<Output = ()>) {
    Relay::new(config).serve(listener, shutdown).await;
}
