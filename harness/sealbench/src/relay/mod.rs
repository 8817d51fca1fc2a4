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
//! - [`metrics`] — Prometheus metrics; [`http`] — the `/metrics` and `/healthz` server.
//! - [`tls`] — `wss://`: the server certificate (PEM files or generated) and the TLS
//!   accept step in front of the upgrade.

pub mod adversary;
pub mod config;
mod connection;
pub mod http;
pub mod keypool;
pub mod metrics;
pub mod registry;
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
        Relay { config, metrics: Arc::new(RelayMetrics::new()) }
    }

    /// Its metrics (live while it serves).
    pub fn metrics(&self) -> Arc<RelayMetrics> {
        self.metrics.clone()
    }

    /// Serves `listener` until `shutdown` completes, then closes every connection with
    /// "going away" (1001) and returns once they have ended (at most a few seconds).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
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
        });
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
        drop(listener);
        let _ = stop_tx.send(true);
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
}

/// Binds a listener with a deep accept backlog (4096, capped by `net.core.somaxconn`): a
/// storm of connects otherwise overflows the default backlog and clients wait for a SYN
/// retransmission (1 s).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Runs a relay with `config` on `listener` until `shutdown` completes, for callers that
/// need no metrics (see [`Relay::serve`]).
pub async fn run(listener: TcpListener, config: RelayConfig, shutdown: impl Future<Output = ()>) {
    Relay::new(config).serve(listener, shutdown).await;
}
