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
    /// With `relay.scan`: what the relay that reads saw — bodies scanned and unreadable,
    /// matches, blocked messages, and its scan time per message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::relay::scan::ScanStats>,
    /// With franked messages (`crypto.franking`): what the relay stamped, the reports it
    /// verified and refused, and its stamp and verification times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub franking: Option<crate::relay::franking::FrankingStats>,
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
            scan: m.scan_stats(),
            franking: m.franking.stats(),
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
    /// Its runtime's worker threads.
    pub workers: usize,
}

impl EmbeddedRelay {
    /// Starts it: `workers` worker threads (`--relay-threads`; default one per core), or
    /// with `cpus` (`--cpus relay=LIST`) one per CPU listed, every thread of its runtime
    /// pinned to them.
    ///
    /// # Errors
    /// When the runtime or the listener cannot start.
    pub fn start(config: RelayConfig, cpus: Option<&[usize]>, workers: Option<usize>) -> Result<Self> {
        let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cpus.map_or_else(|| workers.unwrap_or_else(cores), <[usize]>::len);
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers.max(1)).thread_name("sealbench-relay").enable_all();
        let pin = cpus.map(<[usize]>::to_vec);
        if let Some(cpus) = pin.clone() {
            builder.on_thread_start(move || {
                if let Err(e) = super::cpus::pin_this_thread(&cpus) {
                    tracing::warn!(error = %e, "could not pin a relay thread to CPUs {}", super::cpus::list(&cpus));
                }
            });
        }
        let rt = builder.build().context("starting the embedded relay's runtime")?;
        let listener = {
            let _guard = rt.enter();
            crate::relay::bind(SocketAddr::from(([127, 0, 0, 1], 0))).context("binding the embedded relay")?
        };
        let addr = listener.local_addr()?;
        let relay = Relay::new(config);
        let metrics = relay.metrics();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("sealbench-relay-main".into()).spawn(move || {
            if let Some(cpus) = pin
                && let Err(e) = super::cpus::pin_this_thread(&cpus)
            {
                tracing::warn!(error = %e, "could not pin the relay's accept thread to CPUs {}", super::cpus::list(&cpus));
            }
            rt.block_on(relay.serve(listener, async move {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
        Ok(EmbeddedRelay { addr, stop: Some(stop), thread: Some(thread), metrics, workers })
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

/// CPU ns used so far by the embedded relay's threads (its runtime's workers and its main
/// thread, named `sealbench-relay…`), from `/proc/self/task/*/schedstat`. 0 where
/// `/proc` cannot be read.
pub fn relay_threads_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("sealbench-relay")))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
