//! Per-stage figures of a staged run (`summary.json`'s `stages`): each stage's merged
//! seconds added up — histograms added, never percentiles averaged.
//!
//! A merged second belongs to the stage holding its middle (see
//! [`crate::driver::Second::stage`]). The shards' seconds are anchored at the steady
//! start, so a stage of whole seconds is covered by exactly its own seconds; only a
//! boundary at a fractional second blurs (by up to half a second). A latency sample lands
//! in the second its message was received in.

use super::summary::{Latency, Messages, Summary, Throughput};
use crate::driver::Second;
use crate::driver::recorder::{Counters, Histograms, Metric};
use crate::scenario::Profile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One stage's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageFigures {
    /// The stage's name (`stage N` when it has none).
    pub name: String,
    /// In the histograms (false: a warm-up or cool-down stage, no latencies).
    pub measure: bool,
    /// Start, seconds since the steady start.
    pub start_s: f64,
    /// End, seconds since the steady start.
    pub end_s: f64,
    /// Target rate at the start, messages/s over all conversations.
    pub target_start_per_s: f64,
    /// Target rate at the end, messages/s.
    pub target_end_per_s: f64,
    /// Wall seconds of the merged seconds counted for the stage.
    pub seconds: f64,
    /// Messages sent in those seconds.
    pub sent: u64,
    /// Messages delivered in those seconds.
    pub delivered: u64,
    /// Deliveries sent per second achieved.
    pub sent_per_s: f64,
    /// Messages per second achieved (the unit of the target: each message fans out into
    /// one delivery per recipient device).
    #[serde(default)]
    pub messages_per_s: f64,
    /// Delivered per second achieved.
    pub delivered_per_s: f64,
    /// e2e (intended send → decrypted) over the stage, µs; absent when unmeasured or empty.
    pub e2e: Option<Latency>,
}

/// What one stage's seconds add up to.
#[derive(Debug, Clone)]
pub struct StageTally {
    /// Histograms added.
    pub hist: Histograms,
    /// Counter deltas added.
    pub delta: Counters,
    /// Wall seconds covered.
    pub seconds: f64,
}

/// Adds up the merged seconds of stage `stage`. A second's length is the time since the
/// previous second ended (1 s for the first).
pub fn tally(seconds: &[Second], stage: usize) -> StageTally {
    let mut t = StageTally { hist: Histograms::new(), delta: Counters::new(), seconds: 0.0 };
    let mut prev_at: Option<f64> = None;
    for s in seconds {
        if s.stage == Some(stage) {
            t.hist.add(&s.hist);
            t.delta.add(&s.delta);
            t.seconds += prev_at.map_or(1.0, |p| (s.at_s - p).max(0.0));
        }
        prev_at = Some(s.at_s);
    }
    t
}

/// Every stage's figures.
pub fn figures(profile: &Profile, seconds: &[Second]) -> Vec<StageFigures> {
    profile
        .spans()
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let t = tally(seconds, i);
            let per_s = |n: u64| if t.seconds > 0.0 { n as f64 / t.seconds } else { 0.0 };
            StageFigures {
                name: span.name.clone(),
                measure: span.measure,
                start_s: span.start_s,
                end_s: span.end_s,
                target_start_per_s: span.from,
                target_end_per_s: span.to,
                seconds: t.seconds,
                sent: t.delta.sent,
                delivered: t.delta.delivered,
                sent_per_s: per_s(t.delta.sent),
                messages_per_s: per_s(t.delta.messages + t.delta.skipped_offline),
                delivered_per_s: per_s(t.delta.delivered),
                e2e: if span.measure { Latency::of(t.hist.get(Metric::E2e)) } else { None },
            }
        })
        .collect()
}

/// The run summary `run` seen through stage `stage` alone, for judging it with the rules
/// a whole run is judged by (a `capacity --mode ramp` step): latencies from the stage's
/// histograms, messages and rates from its seconds, offered rate its mean target. Not
/// judged yet (saturation from the stage's seconds, then SLOs). Loss is known only once
/// the run has drained, so `messages.lost` is the run's (a message in flight at a
/// stage's end is not lost); so are the connection figures.
pub fn summary_of(run: &Summary, profile: &Profile, seconds: &[Second], stage: usize) -> Summary {
    let t = tally(seconds, stage);
    let span = &profile.spans()[stage];
    let mut s = run.clone();
    s.latency = Metric::ALL
        .into_iter()
        .filter_map(|m| Latency::of(t.hist.get(m)).map(|l| (m.name().to_owned(), l)))
        .collect::<BTreeMap<_, _>>();
    s.messages = Messages { lost: run.messages.lost, ..Messages::of(&t.delta) };
    let per_s = |n: u64| if t.seconds > 0.0 { n as f64 / t.seconds } else { 0.0 };
    s.throughput = Throughput {
        seconds: t.seconds,
        sent_per_s: per_s(t.delta.sent),
        delivered_per_s: per_s(t.delta.delivered),
        messages_per_s: per_s(t.delta.messages + t.delta.skipped_offline),
        handshakes_per_s: run.throughput.handshakes_per_s,
        offered_per_s: (span.from + span.to) / 2.0,
    };
    s.generator.schedule_lag = s.latency.get(Metric::ScheduleLag.name()).cloned();
    s.thresholds = Vec::new();
    s.stages = Vec::new();
    s
}

/// The seconds of stage `stage` (for judging its generator).
pub fn seconds_of(seconds: &[Second], stage: usize) -> Vec<Second> {
    seconds.iter().filter(|s| s.stage == Some(stage)).cloned().collect()
}
