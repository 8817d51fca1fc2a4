//! The standard process metrics every Prometheus client library exports, for both of
//! sealbench's exporters (the relay's and the driver's `/metrics`): the process's CPU
//! seconds (all threads) and resident memory, read at each scrape. With them an external
//! relay's CPU per message can be measured from outside (`capacity` does), and a dashboard
//! shows sealbench beside any other service. A leaf: it imports nothing of the crate but
//! the clock.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `process_cpu_seconds_total` and `process_resident_memory_bytes`, unprefixed (their
/// names are the convention's, so that standard dashboards and alerts find them).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMetrics;

impl Collector for ProcessMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cpu = ConstCounter::new(crate::clock::process_cpu_ns() as f64 / 1e9);
        let m = enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(m)?;
        if let Some(rss) = resident_bytes() {
            let g = ConstGauge::new(rss as i64);
            let m = enc.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

/// This process's resident set, bytes (`/proc/self/statm`; `None` where there is none).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}
