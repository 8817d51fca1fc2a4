//! The driver's `/metrics` (`run --metrics ADDR`): the latest [`LiveSecond`] in the
//! OpenMetrics text format (what the relay's `/metrics` speaks, and what Prometheus
//! scrapes), encoded by `prometheus-client`.
//!
//! Why a collector over a snapshot rather than live atomics: the coordinator publishes
//! one finished second at a time ([`LiveMetrics::publish`] swaps an `Arc`), so a scrape
//! always sees one second's figures together — counters, gauges and latencies agree —
//! and nothing on the per-message path is touched. Every name is listed with its unit in
//! `docs/RESULTS.md`.
//!
//! Why histograms for latency: a split run on N pods must give one p99, and Prometheus can
//! add buckets (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[1m])))`) but never
//! percentiles. Each live metric is a classic cumulative histogram in seconds since the
//! run started, folded from the coordinator's per-second HdrHistograms
//! ([`crate::results::buckets`], which says why its bounds). Classic buckets only: the
//! crate encodes native histograms in its protobuf format alone, and this endpoint
//! speaks text. The last second's exact percentiles stay beside them as gauges for a
//! one-driver panel (`_last_second_seconds{percentile}`).

use crate::results::buckets::Buckets;
use crate::results::live::{LIVE_METRICS, LiveSecond, counter_help};
use crate::results::summary::Latency;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use sealcore::frame::ErrorCode;
use std::sync::{Arc, Mutex};

/// Prefix of every driver metric (the relay's are `sealbench_relay_`).
pub const PREFIX: &str = "sealbench_driver";

/// Counters from the last second that also get a `sealbench_driver_last_second` gauge:
/// the rates a dashboard shows without a `rate()` window.
const LAST_SECOND: [&str; 4] = ["messages", "sent", "delivered", "refused"];

/// The latest second, shared between the run (which publishes) and the HTTP server
/// (which encodes on each scrape).
#[derive(Debug, Default, Clone)]
pub struct LiveMetrics {
    latest: Arc<Mutex<Latest>>,
}

/// The latest second and whether a scrape has encoded it yet (one lock for both, so a
/// second published during a scrape is never marked as served).
#[derive(Debug, Default)]
struct Latest {
    sec: Option<Arc<LiveSecond>>,
    served: bool,
}

impl LiveMetrics {
    /// Makes `sec` the second every later scrape shows (a pointer swap under a lock held
    /// for no longer than that).
    pub fn publish(&self, sec: LiveSecond) {
        let sec = Arc::new(sec);
        if let Ok(mut l) = self.latest.lock() {
            *l = Latest { sec: Some(sec), served: false };
        }
    }

    /// True once a scrape has encoded the second published last (what
    /// `--metrics-linger` waits for).
    pub fn latest_served(&self) -> bool {
        self.latest.lock().is_ok_and(|l| l.served)
    }

    fn latest(&self) -> Option<Arc<LiveSecond>> {
        let mut l = self.latest.lock().ok()?;
        l.served |= l.sec.is_some();
        l.sec.clone()
    }

    /// A registry that encodes the latest second on each scrape.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(self.clone()));
        r.register_collector(Box::new(crate::procmetrics::ProcessMetrics));
        r
    }

    /// The exposition of the latest second (before the first: only the process metrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }
}

impl Collector for LiveMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.latest() {
            Some(sec) => encode_second(&sec, &mut enc),
            None => Ok(()),
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// A counter's exported name: the result files' name, but byte counters carry their unit
/// before `_total` as the convention has it (`sent_bytes_total`, not `bytes_sent_total`).
fn exported(name: &str) -> &str {
    match name {
        "bytes_sent" => "sent_bytes",
        "bytes_received" => "received_bytes",
        other => other,
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn encode_second(s: &LiveSecond, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let one = |v: f64| vec![(Labels::new(), v)];
    for (name, &v) in s.total.counts.iter().filter(|(n, _)| n.as_str() != "refused") {
        let help = counter_help(name).unwrap_or("see docs/RESULTS.md");
        counter(enc, &format!("{PREFIX}_{}", exported(name)), help, &[(Labels::new(), v)])?;
    }
    let refused: Vec<(Labels, u64)> = ErrorCode::ALL
        .iter()
        .map(|c| (vec![("code", c.name().to_owned())], s.total.refused_by_code.get(c.name()).copied().unwrap_or(0)))
        .collect();
    counter(enc, &format!("{PREFIX}_refused"), "Transport messages the relay refused, by error code", &refused)?;
    let last: Vec<(Labels, f64)> =
        LAST_SECOND.iter().map(|c| (vec![("counter", (*c).to_owned())], s.delta.get(c) as f64)).collect();
    gauge(enc, &format!("{PREFIX}_last_second"), "What a counter grew by in the last completed second", None, &last)?;
    gauge(enc, &format!("{PREFIX}_connected_clients"), "Clients connected now", None, &one(s.connected as f64))?;
    gauge(enc, &format!("{PREFIX}_clients"), "Clients the scenario asks for", None, &one(s.clients as f64))?;
    gauge(
        enc,
        &format!("{PREFIX}_lost_or_pending"),
        "Sent messages not yet delivered, refused or held for an offline device",
        None,
        &one(s.lost_or_pending as f64),
    )?;
    gauge(
        enc,
        &format!("{PREFIX}_busy_ratio"),
        "The busiest driver shard's CPU time over wall time in the last second (0..1)",
        None,
        &one(s.busy),
    )?;
    gauge(enc, &format!("{PREFIX}_elapsed"), "Time since the run started", Some(&Unit::Seconds), &one(s.at_s))?;
    let name = format!("{PREFIX}_phase");
    let mut info = enc.encode_descriptor(&name, "The run's phase and stage now", None, MetricType::Info)?;
    let stage = s.stage.as_ref().map_or_else(String::new, |st| st.name.clone());
    info.encode_info(&vec![("phase", s.phase.clone()), ("stage", stage)])?;
    if let Some(st) = &s.stage {
        gauge(enc, &format!("{PREFIX}_stage_index"), "Index of the stage now (0-based)", None, &one(st.index as f64))?;
        let target = [("start", st.target_from_per_s), ("end", st.target_to_per_s)]
            .map(|(at, v)| (vec![("at", at.to_owned())], v))
            .to_vec();
        gauge(
            enc,
            &format!("{PREFIX}_stage_target_messages_per_second"),
            "The stage's target rate over all conversations, at its start and its end (equal unless it ramps)",
            None,
            &target,
        )?;
    }
    latencies(s, enc)
}

/// Each live metric's cumulative histograms since the run started, then its last second's
/// percentiles: [`histograms`] and [`last_second_latencies`].
fn latencies(s: &LiveSecond, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    for m in LIVE_METRICS {
        histograms(s, m.name(), enc)?;
        last_second_latencies(s, m.name(), enc)?;
    }
    Ok(())
}

/// `sealbench_driver_<metric>_seconds` (all classes together, no labels: the series to add
/// across pods) and `sealbench_driver_<metric>_by_class_seconds` (one series per traffic
/// class, `class`/`size`/`fanout` labels). Two families, not one, so that
/// `sum by (le) (rate(sealbench_driver_e2e_seconds_bucket[1m]))` cannot count a message
/// twice: per-class series overlap (a message of a group of 50 is in `class="group"` and in
/// `class="group",size="50"`), so they are added across pods by their labels, never over
/// classes.
fn histograms(s: &LiveSecond, metric: &str, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let Some(series) = s.histograms.series.get(metric) else { return Ok(()) };
    if let Some(all) = series.get(&None) {
        let help = format!("{metric} since the run started, all traffic classes together");
        let name = format!("{PREFIX}_{metric}");
        let mut h = enc.encode_descriptor(&name, &help, Some(&Unit::Seconds), MetricType::Histogram)?;
        h.encode_histogram::<NoLabelSet>(all.sum_s, all.count, &all.pairs(), None)?;
    }
    let classes: Vec<(Labels, &Buckets)> =
        series.iter().filter_map(|(class, b)| Some((class_labels(class.as_deref()?), b))).collect();
    if !classes.is_empty() {
        let help = format!("{metric} since the run started, per traffic class (classes overlap: add by their labels)");
        let name = format!("{PREFIX}_{metric}_by_class");
        let mut h = enc.encode_descriptor(&name, &help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (labels, b) in &classes {
            h.encode_family(labels)?.encode_histogram::<NoLabelSet>(b.sum_s, b.count, &b.pairs(), None)?;
        }
    }
    Ok(())
}

/// `sealbench_driver_<metric>_last_second_seconds{percentile}` and
/// `sealbench_driver_<metric>_last_second_samples`, all classes together and per class,
/// when the metric has samples in the last second: one process's exact percentiles
/// (HdrHistogram, 3 digits) for a single-driver panel. Gauges, and the label is
/// `percentile`, not `quantile` (which Prometheus reserves for summaries): they cannot be
/// added across pods — the histograms above can.
fn last_second_latencies(s: &LiveSecond, metric: &str, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut series: Vec<(Labels, &Latency)> = Vec::new();
    if let Some(l) = s.latency_us.get(metric) {
        series.push((Labels::new(), l));
    }
    for (class, l) in s.latency_by_class_us.get(metric).into_iter().flatten() {
        series.push((class_labels(class), l));
    }
    if series.is_empty() {
        return Ok(());
    }
    let mut values = Vec::new();
    for (labels, l) in &series {
        for (q, us) in [("50", l.p50_us), ("90", l.p90_us), ("99", l.p99_us), ("100", l.max_us)] {
            let mut labels = labels.clone();
            labels.push(("percentile", q.to_owned()));
            values.push((labels, us / 1e6));
        }
    }
    let help = format!("{metric} over the last completed second: p50, p90, p99 and max (percentile=\"100\")");
    gauge(enc, &format!("{PREFIX}_{metric}_last_second"), &help, Some(&Unit::Seconds), &values)?;
    let counts: Vec<(Labels, f64)> = series.iter().map(|(lb, l)| (lb.clone(), l.count as f64)).collect();
    let help = format!("{metric} samples recorded in the last completed second");
    gauge(enc, &format!("{PREFIX}_{metric}_last_second_samples"), &help, None, &counts)
}

/// `class=group,size=50` as labels `class="group", size="50"`.
fn class_labels(class: &str) -> Labels {
    class
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| {
            let key = crate::tags::Label::parse(k)?.key();
            Some((key, v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::{Counters, Histograms, Metric};
    use crate::driver::{Phase, Second};
    use crate::results::live::LiveTracker;
    use crate::scenario::Profile;
    use crate::tags::{TagId, TagSet};
    use std::time::Duration;

    fn sample() -> (LiveTracker, Second) {
        let tags = Arc::from(vec![TagSet::class("group").unwrap(), TagSet::parse("class=group,size=50").unwrap()]);
        let mut hist = Histograms::with_tags(tags);
        for v in [1_000_000, 2_000_000, 4_000_000] {
            hist.record_tagged(Metric::E2e, &[TagId(0), TagId(1)], v);
        }
        let mut delta = Counters::new();
        (delta.sent, delta.delivered, delta.messages) = (98, 96, 2);
        delta.refused[ErrorCode::MailboxFull as usize] = 1;
        let sec =
            Second { t: 3, phase: Phase::Steady, hist, delta, connected: 100, busy: 0.25, stage: Some(1), at_s: 3.0 };
        let profile = Profile::steady(Duration::from_secs(1), Duration::from_secs(5), 40.0);
        (LiveTracker::with_stages(profile.spans().to_vec(), 100, 0.0), sec)
    }

    #[test]
    fn a_second_encodes_counters_gauges_and_per_class_latencies() {
        let m = LiveMetrics::default();
        let before = m.encode();
        assert!(!before.contains("sealbench_driver_"), "no run figure before the first second: {before}");
        assert!(before.contains("process_cpu_seconds_total "), "the process metrics from the start: {before}");
        let (mut tracker, sec) = sample();
        m.publish(tracker.next(&sec));
        let text = m.encode();
        for line in [
            "sealbench_driver_sent_total 98",
            "sealbench_driver_delivered_total 96",
            "sealbench_driver_refused_total{code=\"mailbox_full\"} 1",
            "sealbench_driver_refused_total{code=\"too_large\"} 0",
            "sealbench_driver_last_second{counter=\"messages\"} 2",
            "sealbench_driver_connected_clients 100",
            "sealbench_driver_lost_or_pending 1",
            "sealbench_driver_phase_info{phase=\"steady\",stage=\"steady\"} 1",
            "sealbench_driver_stage_index 1",
            "sealbench_driver_stage_target_messages_per_second{at=\"end\"} 40",
            "sealbench_driver_e2e_last_second_samples{class=\"group\",size=\"50\"} 3",
            "# UNIT sealbench_driver_e2e_last_second_seconds seconds",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        let p99 = text
            .lines()
            .find(|l| l.starts_with("sealbench_driver_e2e_last_second_seconds{class=\"group\",percentile=\"99\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        assert!(p99.is_some_and(|v| (v - 0.004).abs() < 0.00001), "p99 of 1, 2, 4 ms is 4 ms: {p99:?}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn latency_histograms_are_cumulative_over_the_run_in_seconds() {
        let m = LiveMetrics::default();
        let (mut tracker, sec) = sample();
        m.publish(tracker.next(&sec));
        m.publish(tracker.next(&sec));
        let text = m.encode();
        // 1, 2 and 4 ms a second, twice; a value at a bound counts in the next bucket
        // (HdrHistogram's highest equivalent value is just above it).
        for line in [
            "# TYPE sealbench_driver_e2e_seconds histogram",
            "# UNIT sealbench_driver_e2e_seconds seconds",
            "sealbench_driver_e2e_seconds_count 6",
            "sealbench_driver_e2e_seconds_bucket{le=\"0.001\"} 0",
            "sealbench_driver_e2e_seconds_bucket{le=\"0.002\"} 2",
            "sealbench_driver_e2e_seconds_bucket{le=\"0.005\"} 6",
            "sealbench_driver_e2e_seconds_bucket{le=\"+Inf\"} 6",
            "# TYPE sealbench_driver_e2e_by_class_seconds histogram",
            "sealbench_driver_e2e_by_class_seconds_count{class=\"group\"} 6",
            "sealbench_driver_e2e_by_class_seconds_bucket{le=\"0.002\",class=\"group\",size=\"50\"} 2",
            "sealbench_driver_e2e_last_second_samples 3.0",
        ] {
            assert!(text.contains(&format!("{line}\n")), "missing `{line}` in:\n{text}");
        }
        let sum = text
            .lines()
            .find_map(|l| l.strip_prefix("sealbench_driver_e2e_seconds_sum "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(sum.is_some_and(|v| (v - 0.014).abs() < 0.0001), "2 × (1 + 2 + 4) ms: {sum:?}");
        assert!(!text.contains("quantile="), "no quantile label outside a summary");
    }
}
