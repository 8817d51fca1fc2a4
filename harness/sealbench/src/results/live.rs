//! Live figures: one [`LiveSecond`] per merged second of a running run, the one record
//! every live consumer reads — the `--json-stream` lines ([`super::stream`]), the
//! driver's `/metrics` ([`crate::present::prometheus`]) and the terminal view
//! ([`crate::present::live`]).
//!
//! Why one record: the three must agree (a Grafana panel, a JSON line and the screen
//! showing different figures for the same second would be a bug report), and each is a
//! plain rendering of it. It is built from the driver's once-a-second merged data only,
//! never on the per-message path.
//!
//! Why counters by name: [`Counters`] is serialised through serde and its `refused` array
//! turned into counts by error-code name, so every counter the driver keeps appears here
//! (and in `/metrics`) under its field name, including ones added later;
//! [`counter_help`] describes each, and a test keeps that list complete.

use super::buckets::LiveHistograms;
use super::summary::Latency;
use crate::driver::Second;
use crate::driver::recorder::{Counters, Metric};
use crate::scenario::Plan;
use crate::scenario::stages::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters as the live outputs show them: every scalar counter by its field name, and
/// refusals by error-code name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LiveCounters {
    /// Transport messages the relay refused, by error-code name (`mailbox_full`); codes
    /// never seen are left out.
    pub refused_by_code: BTreeMap<String, u64>,
    /// Every other counter of the driver, by name (`sent`, `delivered`, `messages`, ...;
    /// `refused` is the total of `refused_by_code`).
    #[serde(flatten)]
    pub counts: BTreeMap<String, u64>,
}

impl LiveCounters {
    /// The counters of `c` by name.
    pub fn of(c: &Counters) -> Self {
        let mut out = LiveCounters::default();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(c) {
            for (name, v) in fields {
                if let Some(n) = v.as_u64() {
                    out.counts.insert(name, n);
                }
            }
        }
        out.counts.insert("refused".to_owned(), c.refused_total());
        out.refused_by_code = super::accounting::refused_by_code(c);
        out
    }

    /// The counter named `name` (0 when absent).
    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

/// What every counter means, for `/metrics` HELP lines (`docs/RESULTS.md` says the same;
/// the one list of counters, [`crate::driver::recorder::counters`], holds the text).
pub fn counter_help(name: &str) -> Option<&'static str> {
    Counters::help(name)
}

/// The stage a second belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveStage {
    /// Index in the run's stages (a scenario without `[[stages]]` has `warm-up`, when it
    /// has a warm-up, then `steady`).
    pub index: usize,
    /// Stages in the run.
    pub count: usize,
    /// Its name.
    pub name: String,
    /// In the histograms of the summary (false: warm-up or cool-down).
    pub measure: bool,
    /// Target rate at the stage's start, messages/s over all conversations.
    pub target_from_per_s: f64,
    /// Target rate at the stage's end (equal to the start's unless the stage ramps).
    pub target_to_per_s: f64,
}

impl LiveStage {
    fn of(index: usize, spans: &[Span]) -> Option<Self> {
        let span = spans.get(index)?;
        Some(LiveStage {
            index,
            count: spans.len(),
            name: span.name.clone(),
            measure: span.measure,
            target_from_per_s: span.from,
            target_to_per_s: span.to,
        })
    }
}

/// One completed second of a running run: what `--json-stream` writes as one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveSecond {
    /// Seconds since the run started, rounded (the `t_s` of `timeseries.csv`).
    pub t: u64,
    /// When the second ended, seconds since the run started (unrounded).
    pub at_s: f64,
    /// When the second ended, Unix time in seconds.
    pub unix_s: f64,
    /// The run's phase: connecting, handshaking, warmup, steady, cool-down, draining.
    pub phase: String,
    /// The stage the second belongs to (absent outside the sending phase).
    pub stage: Option<LiveStage>,
    /// Clients connected at the end of the second.
    pub connected: usize,
    /// Clients the scenario asks for.
    pub clients: usize,
    /// The busiest driver shard's CPU time over the second's wall time (0..=1).
    pub busy: f64,
    /// What the counters grew by in this second.
    pub delta: LiveCounters,
    /// The counters since the run started (the sum of every `delta` so far).
    pub total: LiveCounters,
    /// Sent messages not (yet) delivered, refused or held for an offline device: in
    /// flight now, lost if they never arrive.
    pub lost_or_pending: u64,
    /// Latencies recorded in this second, all classes together, by metric (µs); metrics
    /// without samples are left out.
    pub latency_us: BTreeMap<String, Latency>,
    /// Latencies recorded in this second per traffic class, by metric then class
    /// (`class=group,size=50`), µs; classes without samples are left out.
    pub latency_by_class_us: BTreeMap<String, BTreeMap<String, Latency>>,
    /// The live latencies since the run started as cumulative buckets (the `/metrics`
    /// histograms, which N driver pods can add). Not in the JSON line: a line is one
    /// second's figures, and the whole run's are `summary.json`'s.
    #[serde(skip)]
    pub histograms: LiveHistograms,
}

/// Turns each merged second into a [`LiveSecond`], keeping the running totals (counters
/// and latency buckets).
#[derive(Debug, Clone)]
pub struct LiveTracker {
    spans: Vec<Span>,
    clients: usize,
    started_unix_s: f64,
    total: Counters,
    histograms: LiveHistograms,
}

impl LiveTracker {
    /// A tracker for `plan`, whose run started at `started_unix_s` (Unix time, s).
    pub fn new(plan: &Plan, started_unix_s: f64) -> Self {
        Self::with_stages(plan.profile.spans().to_vec(), plan.local().1, started_unix_s)
    }

    /// A tracker from the run's stages and client count.
    pub fn with_stages(spans: Vec<Span>, clients: usize, started_unix_s: f64) -> Self {
        LiveTracker { spans, clients, started_unix_s, total: Counters::new(), histograms: LiveHistograms::default() }
    }

    /// The record of `sec`, the next second of the run.
    pub fn next(&mut self, sec: &Second) -> LiveSecond {
        self.total.add(&sec.delta);
        self.histograms.add(&sec.hist);
        let mut latency_us = BTreeMap::new();
        let mut latency_by_class_us: BTreeMap<String, BTreeMap<String, Latency>> = BTreeMap::new();
        for (m, tag, h) in sec.hist.series() {
            let Some(l) = Latency::of(h) else { continue };
            match tag {
                None => {
                    latency_us.insert(m.name().to_owned(), l);
                }
                Some(t) => {
                    latency_by_class_us.entry(m.name().to_owned()).or_default().insert(t.to_string(), l);
                }
            }
        }
        LiveSecond {
            t: sec.t,
            at_s: sec.at_s,
            unix_s: self.started_unix_s + sec.at_s,
            phase: sec.phase.name().to_owned(),
            stage: sec.stage.and_then(|i| LiveStage::of(i, &self.spans)),
            connected: sec.connected,
            clients: self.clients,
            busy: sec.busy,
            delta: LiveCounters::of(&sec.delta),
            total: LiveCounters::of(&self.total),
            lost_or_pending: self.total.lost(),
            latency_us,
            latency_by_class_us,
            histograms: self.histograms.clone(),
        }
    }
}

/// The metrics the live outputs summarise per second, in the order they list them (the
/// rest are set-up and crypto figures: the summary has them).
pub const LIVE_METRICS: [Metric; 6] =
    [Metric::E2e, Metric::E2eRaw, Metric::OfflineE2e, Metric::FanoutFirst, Metric::FanoutLast, Metric::ScheduleLag];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::recorder::Histograms;
    use crate::scenario::Profile;
    use crate::tags::{TagId, TagSet};
    use sealcore::frame::ErrorCode;
    use std::sync::Arc;
    use std::time::Duration;

    fn second(t: u64, sent: u64, refused_code: Option<usize>) -> Second {
        let tags: Arc<[TagSet]> = Arc::from(vec![TagSet::class("dm").unwrap()]);
        let mut hist = Histograms::with_tags(tags);
        hist.record_tagged(Metric::E2e, &[TagId(0)], 2_000_000);
        let mut delta = Counters::new();
        delta.sent = sent;
        delta.delivered = sent - 1;
        if let Some(c) = refused_code {
            delta.refused[c] = 1;
        }
        Second {
            t,
            phase: crate::driver::Phase::Steady,
            hist: hist.clone(),
            delta,
            connected: 10,
            busy: 0.5,
            stage: Some(0),
            at_s: t as f64,
        }
    }

    fn tracker() -> LiveTracker {
        let profile = Profile::steady(Duration::ZERO, Duration::from_secs(10), 100.0);
        LiveTracker::with_stages(profile.spans().to_vec(), 10, 1_700_000_000.0)
    }

    #[test]
    fn totals_are_the_sum_of_the_deltas_and_refusals_are_named() {
        let mut tr = tracker();
        let a = tr.next(&second(1, 10, None));
        let b = tr.next(&second(2, 20, Some(ErrorCode::MailboxFull as usize)));
        assert_eq!((a.total.get("sent"), b.total.get("sent"), b.delta.get("sent")), (10, 30, 20));
        assert_eq!(b.total.get("refused"), 1);
        assert_eq!(b.delta.refused_by_code.get("mailbox_full"), Some(&1));
        assert_eq!(b.lost_or_pending, 30 - 28 - 1);
        assert_eq!(b.unix_s, 1_700_000_002.0);
        assert_eq!(b.stage.as_ref().map(|s| s.name.as_str()), Some("steady"));
        assert_eq!(b.latency_us["e2e"].count, 1);
        assert_eq!(b.latency_by_class_us["e2e"]["class=dm"].count, 1);
    }

    #[test]
    fn every_counter_has_help_text() {
        let c = LiveCounters::of(&Counters::new());
        let missing: Vec<&String> = c.counts.keys().filter(|k| counter_help(k).is_none()).collect();
        assert!(missing.is_empty(), "describe these counters in counter_help and docs/RESULTS.md: {missing:?}");
        assert!(c.counts.len() >= 29, "every scalar counter is listed: {:?}", c.counts.keys());
        let docs = include_str!("../../../../docs/RESULTS.md");
        let undocumented: Vec<&String> = c.counts.keys().filter(|k| !docs.contains(&format!("`{k}`"))).collect();
        assert!(undocumented.is_empty(), "docs/RESULTS.md (Live figures) does not describe {undocumented:?}");
    }

    #[test]
    fn a_line_round_trips_through_json() -> Result<(), serde_json::Error> {
        let line = tracker().next(&second(1, 5, Some(3)));
        let text = serde_json::to_string(&line)?;
        assert!(!text.contains('\n'));
        let back = serde_json::from_str::<LiveSecond>(&text)?;
        assert!(!line.histograms.series.is_empty() && back.histograms.series.is_empty(), "buckets stay out");
        assert_eq!(back, LiveSecond { histograms: LiveHistograms::default(), ..line });
        Ok(())
    }
}
