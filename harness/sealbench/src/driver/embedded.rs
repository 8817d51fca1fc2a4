//! The reference relay in the driver's process (the default): its own runtime threads,
//! 127.0.0.1 on an ephemeral port, and its counters for the run's summary.

use crate::relay::{Relay, RelayConfig};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The embedded relay's own view of the run, to cross-check the clients' accounting.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RelayStats {
    /// Frames the relay routed to an online recipient (handshake and transport messages).
    pub routed: u64,
    /// Messages it stored for offline recipients.
    pub stored: u64,
    /// Inputs it refused, by error-code name.
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Connections it closed as slow consumers.
    pub queue_overflows: u64,
    /// Frames still queued for a connection when it closed (never written).
    pub dropped_on_close: u64,
    /// With `relay.adversary`: what the adversary did (the truth the driver's security
    /// accounting is checked against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversary: Option<crate::relay::AdversaryCounts>,
}

impl RelayStats {
    /// The relay's counters (and the adversary's, when it played one).
    pub(super) fn of(m: &crate::relay::metrics::RelayMetrics, adversary: bool) -> Self {
        let refused = sealcore::frame::ErrorCode::ALL
            .iter()
            .map(|c| (c.name().to_owned(), m.refused_count(*c)))
            .filter(|(_, n)| *n > 0)
            .collect();
        RelayStats {
            routed: m.routed.get(),
            stored: m.stored.get(),
            refused,
            queue_overflows: m.queue_overflows.get(),
            dropped_on_close: m.dropped_on_close.get(),
            adversary: adversary.then(|| m.adversary_counts()),
        }
    }
}

/// The reference relay in this process, on its own runtime threads, on 127.0.0.1:0.
#[derive(Debug)]
pub struct EmbeddedRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Its metrics.
    pub metrics: Arc<crate::relay::metrics::RelayMetrics>,
}

impl EmbeddedRelay {
    /// Starts it.
    ///
    /// # Errors
    /// When the runtime or the listener cannot start.
    pub fn start(config: RelayConfig) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .thread_name("sealbench-relay")
            .enable_all()
            .build()
            .context("starting the embedded relay's runtime")?;
        let listener = {
            let _guard = rt.enter();
            crate::relay::bind(SocketAddr::from(([127, 0, 0, 1], 0))).context("binding the embedded relay")?
        };
        let addr = listener.local_addr()?;
        let relay = Relay::new(config);
        let metrics = relay.metrics();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("sealbench-relay-main".into()).spawn(move || {
            rt.block_on(relay.serve(listener, async move {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
        Ok(EmbeddedRelay { addr, stop: Some(stop), thread: Some(thread), metrics })
    }
}

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
