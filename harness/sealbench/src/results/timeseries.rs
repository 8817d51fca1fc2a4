//! `timeseries.csv`: one row per second.
//!
//! The [`HEADER`] columns are always there. After them come columns only a run that has
//! the data gets: the newer metrics all classes together (`fanout_last_p99_us`), then
//! each traffic class's (`e2e_p99_us{class=group;size=50}`: the class in braces, labels
//! joined with ';' as in `latency.hlog`, so no header cell needs CSV quoting). The last
//! column is always `unix_s`: the row's second as wall-clock time (Unix seconds, the end
//! of the interval), to line rows up with other tools' logs and metrics.

use super::figure::{ErrorCounts, Metric, TagSet};
use crate::driver::Second;
use crate::tags::series_hlog;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Column header of `timeseries.csv` (units in the names; `docs/RESULTS.md` explains each).
pub const HEADER: &str = "t_s,phase,connected,handshakes,sent_per_s,delivered_per_s,e2e_p50_us,e2e_p99_us,e2e_max_us,e2e_raw_p99_us,schedule_lag_p99_us,refused,lost_or_pending,errors,messages_per_s";

/// Metrics that get `_p50_us` and `_p99_us` columns (all classes together) when the run
/// recorded them: those [`HEADER`] predates.
const EXTRA: [Metric; 5] =
    [Metric::OfflineE2e, Metric::FanoutFirst, Metric::FanoutLast, Metric::FanoutSeal, Metric::MailboxDrain];

/// One data-dependent column group: a metric, all classes or one.
struct Series {
    metric: Metric,
    class: Option<TagSet>,
}

impl Series {
    fn hist<'a>(&self, s: &'a Second) -> Option<&'a Histogram<u64>> {
        match &self.class {
            None => Some(s.hist.get(self.metric)),
            Some(c) => s.hist.get_tagged(self.metric, c),
        }
    }

    /// `_n` (samples that second, i.e. per second) for a class, then `_p50_us`, `_p99_us`.
    fn header(&self, out: &mut String) {
        let name = |stat: &str| series_hlog(&format!("{}_{stat}", self.metric.name()), self.class.as_ref());
        if self.class.is_some() {
            let _ = write!(out, ",{}", name("n"));
        }
        let _ = write!(out, ",{},{}", name("p50_us"), name("p99_us"));
    }

    fn cells(&self, s: &Second, out: &mut String) {
        let h = self.hist(s).filter(|h| !h.is_empty());
        if self.class.is_some() {
            let _ = write!(out, ",{}", h.map_or(0, |h| h.len()));
        }
        let _ = write!(out, ",{},{}", q(h, 0.5), q(h, 0.99));
    }
}

/// A quantile in µs with one decimal; empty without samples.
fn q(h: Option<&Histogram<u64>>, p: f64) -> String {
    h.filter(|h| !h.is_empty()).map_or_else(String::new, |h| format!("{:.1}", h.value_at_quantile(p) as f64 / 1e3))
}

/// The data-dependent column groups of `seconds`: only metrics and classes with samples.
fn series(seconds: &[Second]) -> Vec<Series> {
    let has = |f: &dyn Fn(&Second) -> bool| seconds.iter().any(f);
    let mut v: Vec<Series> = EXTRA
        .into_iter()
        .filter(|&m| has(&|s| !s.hist.get(m).is_empty()))
        .map(|metric| Series { metric, class: None })
        .collect();
    let mut classes: Vec<TagSet> = seconds.iter().flat_map(|s| s.hist.tags().iter().cloned()).collect();
    classes.sort();
    classes.dedup();
    for metric in Metric::TAGGED {
        for c in &classes {
            if has(&|s| s.hist.get_tagged(metric, c).is_some_and(|h| !h.is_empty())) {
                v.push(Series { metric, class: Some(c.clone()) });
            }
        }
    }
    v
}

/// Renders the CSV; `started_unix_s`: the wall-clock time of the run's start (`t_s` 0).
pub fn render(seconds: &[Second], started_unix_s: f64) -> String {
    let extra = series(seconds);
    let mut s = String::from(HEADER);
    for x in &extra {
        x.header(&mut s);
    }
    s.push_str(",unix_s\n");
    let mut in_flight: i64 = 0;
    for sec in seconds {
        let e2e = sec.hist.get(Metric::E2e);
        let raw = sec.hist.get(Metric::E2eRaw);
        let lag = sec.hist.get(Metric::ScheduleLag);
        let max = if e2e.is_empty() { String::new() } else { format!("{:.1}", e2e.max() as f64 / 1e3) };
        let d = &sec.delta;
        let refused = d.refused_total();
        in_flight += d.sent as i64 - d.delivered as i64 - refused as i64;
        let errors = ErrorCounts::of(d).total();
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            sec.t,
            sec.phase.name(),
            sec.connected,
            d.handshakes_ok,
            d.sent,
            d.delivered,
            q(Some(e2e), 0.5),
            q(Some(e2e), 0.99),
            max,
            q(Some(raw), 0.99),
            q(Some(lag), 0.99),
            refused,
            in_flight.max(0),
            errors,
            d.messages + d.skipped_offline
        );
        for x in &extra {
            x.cells(sec, &mut s);
        }
        let _ = writeln!(s, ",{:.3}", started_unix_s + sec.t as f64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Phase;
    use crate::driver::recorder::{Counters, Histograms};
    use crate::tags::TagId;

    #[test]
    fn classes_get_columns_only_when_the_run_recorded_them() -> anyhow::Result<()> {
        let tags: Vec<TagSet> = vec![TagSet::parse("class=dm")?, TagSet::parse("class=group,size=50")?];
        let mut h = Histograms::with_tags(tags.into());
        h.record_tagged(Metric::E2e, &[TagId(0)], 2_000_000);
        h.record_tagged(Metric::E2e, &[TagId(0)], 4_000_000);
        let sec = |hist| Second {
            t: 1,
            phase: Phase::Steady,
            hist,
            delta: Counters::new(),
            connected: 2,
            busy: 0.0,
            stage: None,
            at_s: 1.0,
        };
        let csv = render(&[sec(h.clone()), sec(Histograms::new())], 1_700_000_000.0);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            format!("{HEADER},e2e_n{{class=dm}},e2e_p50_us{{class=dm}},e2e_p99_us{{class=dm}},unix_s")
        );
        let cells: Vec<&str> = lines[1].split(',').collect();
        // Every sample is a DM: the class's figures are the all-classes ones.
        let fixed = HEADER.split(',').count();
        assert_eq!(cells[fixed..], ["2", cells[6], cells[7], "1700000001.000"], "{}", lines[1]);
        assert!(lines[2].ends_with(",0,,,1700000001.000"), "a second without samples: {}", lines[2]);
        assert_eq!(lines[1].split(',').count(), lines[0].split(',').count());
        let plain = render(&[sec(Histograms::new())], 1_700_000_000.0);
        assert_eq!(plain.lines().next(), Some(format!("{HEADER},unix_s").as_str()), "no tag, no class column");
        Ok(())
    }
}
