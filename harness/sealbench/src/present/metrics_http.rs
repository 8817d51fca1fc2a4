//! The HTTP endpoint of `run --metrics ADDR`: `GET /metrics` ([`LiveMetrics`]) and
//! `GET /healthz`, served on a thread of its own with a one-thread tokio runtime — never
//! on a shard thread, so a slow or hostile scraper cannot delay a message.
//!
//! Why bind before the run: a port already taken must be a clear usage error (exit 2)
//! before any client connects, not a warning in the middle of a run.

use super::prometheus::LiveMetrics;
use super::server_thread::ServerThread;
use anyhow::Result;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running `/metrics` endpoint; dropping it stops the server.
#[derive(Debug)]
pub struct MetricsServer {
    server: ServerThread,
    metrics: LiveMetrics,
}

impl MetricsServer {
    /// Binds `addr` now and serves from a thread of its own ([`ServerThread`]).
    ///
    /// # Errors
    /// When `addr` cannot be bound (in use, not a local address, no permission); the
    /// message names the flag and the address.
    pub fn bind(addr: SocketAddr) -> Result<Self> {
        let metrics = LiveMetrics::default();
        let registry = Arc::new(metrics.registry());
        let server = ServerThread::bind("--metrics", addr, "sealbench-metrics", move |listener, stopped| {
            serve(listener, registry, stopped)
        })?;
        Ok(MetricsServer { server, metrics })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Where the figures go: [`LiveMetrics::publish`] makes a second visible.
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    /// `--metrics-linger`: keeps serving until a scrape has taken the second published
    /// last (then a short grace for its response to be written), or until `max` has
    /// passed; says on stderr which. Why: a Kubernetes Job's pod ends with its run, and
    /// Prometheus scrapes every 15–60 s, so without it the final seconds — the totals
    /// `merge` adds up — would never be scraped.
    pub fn linger(&self, max: std::time::Duration) {
        let deadline = std::time::Instant::now() + max;
        eprintln!("metrics: serving the final figures until scraped (at most {max:?})");
        while !self.metrics.latest_served() {
            if std::time::Instant::now() >= deadline {
                eprintln!("metrics: not scraped within {max:?}; stopping");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(LINGER_GRACE);
        eprintln!("metrics: final figures scraped");
    }
}

/// How long the server stays after the final figures were encoded, for the response to
/// reach the scraper.
const LINGER_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

async fn serve(listener: std::net::TcpListener, registry: Arc<Registry>, stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let render = move || {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    };
    crate::relay::http::serve_text(listener, render, async move {
        let _ = stopped.await;
    })
    .await;
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn serves_metrics_and_healthz_and_refuses_a_taken_port() -> anyhow::Result<()> {
        let server = MetricsServer::bind("127.0.0.1:0".parse()?)?;
        assert_ne!(server.addr().port(), 0);
        assert!(get(server.addr(), "/healthz")?.ends_with("ok\n"));
        let m = get(server.addr(), "/metrics")?;
        assert!(m.starts_with("HTTP/1.1 200") && m.contains("openmetrics-text") && m.ends_with("# EOF\n"), "{m}");
        assert!(get(server.addr(), "/nope")?.starts_with("HTTP/1.1 404"));
        let e = MetricsServer::bind(server.addr()).map(|_| ()).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("--metrics {}: cannot listen there", server.addr())), "{e:#}");
        Ok(())
    }
}
