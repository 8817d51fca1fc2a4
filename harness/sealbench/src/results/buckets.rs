//! Latency as cumulative Prometheus-style buckets: what `/metrics` exposes as
//! `sealbench_driver_<metric>_seconds` histograms, so that N driver pods of a split run
//! can be added (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[1m])))`).
//!
//! Why folded here, once a second: the shards record into HdrHistograms and the
//! coordinator merges one per second ([`crate::driver::Second`]); [`LiveHistograms::add`]
//! walks each finished second's recorded values and adds them to fixed buckets. Nothing
//! on the per-message path changes, and the cost is one walk of a few hundred distinct
//! values per series per second.
//!
//! Why these bounds ([`BOUNDS_S`], 100 µs to 30 s, 1-2-5 per decade): a message through a
//! relay on loopback takes tens to hundreds of µs, across a data centre a few ms, a
//! loaded or queueing relay tens to hundreds of ms, and a message held for an offline
//! device (`offline_e2e`) or a schedule that fell behind (`schedule_lag`) seconds; SLOs are
//! written at round numbers (p99 < 10 ms, < 100 ms, < 1 s), which are bounds here, and
//! 1-2-5 keeps every quantile within a factor of 2.5 with 18 buckets per series (plus
//! `+Inf`). Below 100 µs everything lands in the first bucket; past 30 s in `+Inf`.
//! Exact percentiles stay in `summary.json` / `latency.hlog` (HdrHistogram, 3 digits).
//!
//! A value is placed by its HdrHistogram bucket's highest equivalent value (the value
//! HdrHistogram's percentiles report, so a bucket and `merge`'s percentiles agree), so a
//! sample at a bound or up to 0.1 % below it may count in the next bucket — within
//! HdrHistogram's own resolution.

use crate::driver::recorder::Histograms;
use crate::results::live::LIVE_METRICS;
use std::collections::BTreeMap;

/// Upper bounds of the buckets, seconds (the `le` labels), `+Inf` implied after the last.
pub const BOUNDS_S: [f64; 18] =
    [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0];

/// The bounds in nanoseconds (the histograms' unit), computed exactly (no float rounding).
const BOUNDS_NS: [u64; 18] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
    20_000_000_000,
    30_000_000_000,
];

/// One series since the run started: samples per bucket (not cumulative; the last is
/// `+Inf`), their count and their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Samples whose value is ≤ `BOUNDS_S[i]` and above the previous bound; the last entry
    /// counts the samples above every bound.
    pub per_bucket: [u64; BOUNDS_S.len() + 1],
    /// Samples in all buckets.
    pub count: u64,
    /// Their values added, seconds (each value as its HdrHistogram bucket's median).
    pub sum_s: f64,
}

impl Buckets {
    /// Adds the values of `h` (nanoseconds).
    fn add(&mut self, h: &hdrhistogram::Histogram<u64>) {
        for v in h.iter_recorded() {
            let (value, n) = (v.value_iterated_to(), v.count_at_value());
            let i = BOUNDS_NS.partition_point(|&b| b < value);
            self.per_bucket[i] += n;
            self.count += n;
            self.sum_s += h.median_equivalent(value) as f64 * n as f64 / 1e9;
        }
    }

    /// `(upper bound, samples in that bucket)` pairs ending with `+Inf`, as
    /// `prometheus-client`'s `encode_histogram` takes them (it makes them cumulative).
    pub fn pairs(&self) -> Vec<(f64, u64)> {
        BOUNDS_S.iter().copied().chain([f64::INFINITY]).zip(self.per_bucket.iter().copied()).collect()
    }
}

/// Every live latency series since the run started: by metric name, then `None` for all
/// classes together or `Some("class=group,size=50")` for one class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveHistograms {
    /// The series with samples so far (a series appears at its first sample and stays).
    pub series: BTreeMap<&'static str, BTreeMap<Option<String>, Buckets>>,
}

impl LiveHistograms {
    /// Adds one finished second's histograms (the [`LIVE_METRICS`] only).
    pub fn add(&mut self, hist: &Histograms) {
        for (m, tag, h) in hist.series() {
            if !LIVE_METRICS.contains(&m) {
                continue;
            }
            let key = tag.map(ToString::to_string);
            self.series.entry(m.name()).or_default().entry(key).or_default().add(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::Metric;
    use crate::tags::{TagId, TagSet};
    use std::sync::Arc;

    #[test]
    fn bounds_in_seconds_and_nanoseconds_agree() {
        for (s, ns) in BOUNDS_S.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn seconds_fold_into_cumulative_buckets_per_metric_and_class() -> Result<(), crate::tags::TagError> {
        let tags: Arc<[TagSet]> = Arc::from(vec![TagSet::class("dm")?]);
        let mut live = LiveHistograms::default();
        for values in [&[50_000, 999_000, 1_500_000][..], &[1_999_000, 40_000_000_000]] {
            let mut h = Histograms::with_tags(tags.clone());
            for &v in values {
                h.record_tagged(Metric::E2e, &[TagId(0)], v);
            }
            h.record(Metric::Handshake, 1_000);
            live.add(&h);
        }
        assert!(!live.series.contains_key("handshake"), "only the live metrics");
        let all = &live.series["e2e"][&None];
        assert_eq!(all, &live.series["e2e"][&Some("class=dm".to_owned())]);
        assert_eq!(all.count, 5);
        let at = |s: f64| BOUNDS_S.iter().position(|&b| b == s).unwrap_or(usize::MAX);
        // 50 µs → first bucket; 999 µs → le=0.001; 1.5 ms and 1.999 ms → le=0.002; 40 s → +Inf.
        assert_eq!(all.per_bucket[0], 1);
        assert_eq!(all.per_bucket[at(0.001)], 1, "{:?}", all.per_bucket);
        assert_eq!(all.per_bucket[at(0.002)], 2, "{:?}", all.per_bucket);
        assert_eq!(all.per_bucket[BOUNDS_S.len()], 1);
        assert_eq!(all.per_bucket.iter().sum::<u64>(), 5);
        assert!((all.sum_s - 40.00455).abs() < 0.05, "{}", all.sum_s);
        let pairs = all.pairs();
        assert_eq!(pairs.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(pairs.len(), BOUNDS_S.len() + 1);
        Ok(())
    }
}
