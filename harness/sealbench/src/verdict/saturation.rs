//! Whether the load generator kept its own schedule. When it did not, a run's latencies
//! describe the generator, not the relay: the summary says so, `matrix` marks the cell and
//! the capacity search brackets below the step.
//!
//! The verdict needs evidence that holds over time, second by second of the sending
//! phase, not one figure of the whole run: a single scheduler stall in an idle generator
//! is a *lag spike*, reported as such, never "saturated". Saturated means
//!
//! - **sustained lag** — in at least [`MIN_SECONDS`] sending seconds, and in at least half
//!   of those with [`MIN_SENDS`] sends, the schedule-lag p99 was above
//!   [`SATURATED_LAG_US`]; *and*
//! - a cause on the generator's side: its busiest thread was on CPU at least
//!   [`BUSY_SHARE`] of the time in most of those seconds (**busy**), or it sent clearly
//!   fewer messages than were offered (**short of rate**, beyond Poisson noise).
//!
//! Or, when the senders kept their schedule: **busy + lost** — the busiest thread (which
//! also receives and opens every delivery) was on CPU at least [`BUSY_SHARE`] of the time
//! in at least [`MIN_SECONDS`] sending seconds, half of them or more, and messages were
//! lost: a receiving side with no headroom cannot tell its own slowness from the relay's
//! (an MLS receiver still processing commits when the run ends looks like loss).
//!
//! Lag that is sustained without such a cause (a machine whose cores the embedded relay
//! or other work shares) is reported, not called saturation: the corrected latencies then
//! include that waiting, as they should. Whatever the verdict, when other processes on the
//! machine used at least [`OTHERS_SHARE`] of its cores while sending (or the hypervisor
//! took them), the verdict says so with the figure: a generator starved by a compiler
//! beside it is not a generator that needs fewer messages or more shards. Sends that waited for a full connection queue are
//! back-pressure from the relay, reported beside the verdict, not a generator fault.

use crate::driver::Second;
use crate::driver::recorder::Metric;
use crate::results::summary::Summary;

/// Schedule lag p99 above which a second counts as late, µs.
pub const SATURATED_LAG_US: f64 = 1000.0;
/// Sends a second needs before its lag is evidence.
pub const MIN_SENDS: u64 = 20;
/// Late (or busy) seconds needed before anything is sustained.
pub const MIN_SECONDS: usize = 3;
/// Share of a second the busiest shard thread spent on CPU above which it counts as busy.
pub const BUSY_SHARE: f64 = 0.9;

pub use crate::results::others::{OTHERS_SHARE, other_work};

/// What one second of the sending phase shows about the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondEvidence {
    /// Messages sent in the second (not the deliveries they fan out into; warm-up
    /// included: a generator far behind may still be sending messages that were due in
    /// the warm-up).
    pub sends: u64,
    /// Share of them sent more than 1 ms late; above 1 % the lag p99 is above 1 ms.
    pub late_share: f64,
    /// The schedule-lag p99 of the second's measured messages, µs (0 when none).
    pub lag_p99_us: f64,
    /// The busiest shard's CPU share of the second.
    pub busy: f64,
    /// Whole seconds this row covers: 1, or more when a shard could not report in time
    /// (a thread held for seconds) and its seconds were merged into one row. The tallies
    /// count a row this many times, so that a long stall weighs as long as it lasted.
    pub span: u64,
}

impl SecondEvidence {
    fn late(&self) -> bool {
        self.late_share > 0.01
    }

    /// Enough sends per second covered to be evidence.
    fn counts(&self) -> bool {
        self.sends >= MIN_SENDS * self.span.max(1)
    }
}

/// Seconds covered by `rows`.
fn span<'a>(rows: impl IntoIterator<Item = &'a &'a SecondEvidence>) -> usize {
    rows.into_iter().map(|e| e.span.max(1) as usize).sum()
}

impl SecondEvidence {
    /// The evidence of every second in which the generator was sending (warm-up, measured
    /// phase and cool-down stages).
    pub fn of(seconds: &[Second]) -> Vec<SecondEvidence> {
        use crate::driver::Phase;
        let before = std::iter::once(None).chain(seconds.iter().map(|s| Some(s.at_s)));
        seconds
            .iter()
            .zip(before)
            .filter(|(s, _)| matches!(s.phase, Phase::Warmup | Phase::Steady | Phase::CoolDown))
            .map(|(s, before)| {
                let h = s.hist.get(Metric::ScheduleLag);
                // Late sends are counted per message, so the share is of messages, not of
                // the deliveries a fan-out makes of them (results from before messages
                // were counted have only deliveries, which were the same thing then).
                let sent = if s.delta.messages > 0 { s.delta.messages } else { s.delta.sent };
                SecondEvidence {
                    sends: sent,
                    late_share: if sent == 0 { 0.0 } else { s.delta.late_sends as f64 / sent as f64 },
                    lag_p99_us: if h.is_empty() { 0.0 } else { h.value_at_quantile(0.99) as f64 / 1e3 },
                    busy: s.busy,
                    span: before.map_or(1, |b| ((s.at_s - b).round() as u64).max(1)),
                }
            })
            .collect()
    }
}

/// The generator verdict of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgement {
    /// The generator could not keep its schedule.
    pub saturated: bool,
    /// The criterion that fired (`sustained_lag+busy`, `sustained_lag+short_of_rate`, `busy+lost`).
    pub criterion: Option<String>,
    /// What the verdict rests on, with numbers (when saturated: why; otherwise notes).
    pub reasons: Vec<String>,
    /// Seconds with a lag p99 above the limit that did not make a sustained pattern.
    pub lag_spikes: u64,
}

/// Judges from the sending seconds' `evidence` and the run's totals in `s`.
pub fn judgement(s: &Summary, evidence: &[SecondEvidence]) -> Judgement {
    let counted: Vec<&SecondEvidence> = evidence.iter().filter(|e| e.counts()).collect();
    let late: Vec<&SecondEvidence> = counted.iter().copied().filter(|e| e.late()).collect();
    let (n_counted, n_late) = (span(&counted), span(&late));
    let sustained = n_late >= MIN_SECONDS && 2 * n_late >= n_counted;
    let busy_late = span(late.iter().filter(|e| e.busy >= BUSY_SHARE));
    let busy = n_late >= MIN_SECONDS && 2 * busy_late >= n_late;
    let short = short_of_rate(s);
    let mut j = Judgement::default();
    let worst = late.iter().map(|e| e.late_share).fold(0.0, f64::max);
    let lag_text = format!(
        "schedule lag p99 > {:.0} µs in {} of {} sending seconds with ≥ {} sends (up to {:.0}% of a second's \
         sends late)",
        SATURATED_LAG_US,
        n_late,
        n_counted,
        MIN_SENDS,
        100.0 * worst
    );
    if sustained && (busy || short.is_some()) {
        j.saturated = true;
        j.reasons.push(lag_text);
        let mut criterion = vec!["sustained_lag"];
        if busy {
            criterion.push("busy");
            j.reasons.push(format!(
                "the busiest driver thread was ≥ {:.0}% on CPU in {busy_late} of those seconds",
                100.0 * BUSY_SHARE
            ));
        }
        if let Some(text) = short {
            criterion.push("short_of_rate");
            j.reasons.push(text);
        }
        j.criterion = Some(criterion.join("+"));
    } else if let Some(text) = receivers_behind(s, &counted) {
        // Senders kept their schedule, but the threads that also receive and open every
        // delivery had no headroom and messages never arrived opened: the generator
        // cannot tell its own slowness in receiving from the relay's.
        j.saturated = true;
        j.criterion = Some("busy+lost".into());
        j.reasons.push(text);
    } else if sustained {
        let cause = match other_work(s) {
            Some(_) => "other processes on the machine, below",
            None => "cores shared with the embedded relay, or a protocol step that holds the thread",
        };
        j.reasons.push(format!(
            "{lag_text}, but the driver threads were not busy and sent the offered rate: the wait is outside \
             their own CPU ({cause}); latencies include that waiting"
        ));
    } else {
        j.lag_spikes = n_late as u64;
    }
    if let Some(text) = other_work(s) {
        j.reasons.push(text);
    }
    let m = &s.messages;
    if m.sent_measured > 0 && m.backlogged as f64 > 0.01 * m.sent_measured as f64 {
        j.reasons.push(format!(
            "{} sends waited for a full connection queue: back-pressure from the relay, not the generator",
            m.backlogged
        ));
    }
    j
}

/// The receiving side of the generator fell behind: its busiest thread was on CPU at
/// least [`BUSY_SHARE`] of [`MIN_SECONDS`] or more sending seconds, half of them or more,
/// and messages were lost (never received, or received and never opened — e.g. an MLS
/// receiver still processing commits when the run ended).
fn receivers_behind(s: &Summary, counted: &[&SecondEvidence]) -> Option<String> {
    let busy = span(counted.iter().filter(|e| e.busy >= BUSY_SHARE));
    let n_counted = span(counted);
    let lost = s.messages.lost;
    (busy >= MIN_SECONDS && 2 * busy >= n_counted && lost > 0).then(|| {
        format!(
            "the busiest driver thread was ≥ {:.0}% on CPU in {busy} of {} sending seconds and {lost} message(s) \
             were never received or opened: the generator's receiving side had no headroom, so the loss (and the \
             latency) may be the generator's, not the relay's",
            100.0 * BUSY_SHARE,
            n_counted
        )
    })
}

/// The generator sent clearly fewer messages than offered: more than 5 % and more than
/// three standard deviations of a Poisson count below the offered number.
fn short_of_rate(s: &Summary) -> Option<String> {
    let t = &s.throughput;
    if s.interrupted || s.aborted.is_some() || t.offered_per_s <= 0.0 || t.seconds <= 0.0 {
        return None;
    }
    let expected = t.offered_per_s * t.seconds;
    // Offered in messages; a message fans out into deliveries (`sent`). Summaries from
    // before messages were counted have only `sent`, which was the same thing then.
    let per_s = if t.messages_per_s > 0.0 { t.messages_per_s } else { t.sent_per_s };
    let sent = per_s * t.seconds;
    let tolerance = (0.05 * expected).max(3.0 * expected.sqrt());
    (expected >= 20.0 && sent < expected - tolerance)
        .then(|| format!("sent {per_s:.0} messages/s of the {:.0}/s offered", t.offered_per_s))
}

/// Judges whether the generator of `s` saturated, from its sending `seconds`, and records
/// the verdict in it.
pub fn judge(s: &mut Summary, seconds: &[Second]) {
    let j = judgement(s, &SecondEvidence::of(seconds));
    s.generator.saturated = j.saturated;
    s.generator.saturation_criterion = j.criterion;
    s.generator.saturation_reasons = j.reasons;
    s.generator.lag_spikes = j.lag_spikes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Provenance;
    use crate::results::summary::{ClientsSummary, Generator, Messages, Throughput};
    use crate::scenario::Scenario;

    /// A run that kept up: 1,000 msgs/s offered and sent, threads half busy, no lag.
    fn kept_up() -> anyhow::Result<Summary> {
        let scenario = Scenario::parse(
            "name = \"t\"\nduration = \"10s\"\n[clients]\ncount = 2\n[traffic]\nrate = 1000\nsize = 64\n",
            "t.toml",
            &[],
        )?;
        let mut c = crate::driver::recorder::Counters::new();
        (c.connects_ok, c.handshakes_ok, c.sent, c.delivered, c.sent_measured) = (2, 1, 10_000, 10_000, 10_000);
        Ok(Summary {
            header: crate::results::header::Header::new(1, "run", Provenance::collect()),
            scenario,
            suite: String::new(),
            handshake_bytes: 0,
            aead: "chacha20-poly1305".into(),
            relay: String::new(),
            transport: Default::default(),
            interrupted: false,
            aborted: None,
            clients: ClientsSummary::of(2, &c),
            messages: Messages::of(&c),
            throughput: Throughput {
                seconds: 10.0,
                sent_per_s: 1000.0,
                delivered_per_s: 1000.0,
                messages_per_s: 1000.0,
                handshakes_per_s: 0.0,
                offered_per_s: 1000.0,
            },
            latency: Default::default(),
            tags: Vec::new(),
            latency_by_tag: Default::default(),
            thresholds: Vec::new(),
            generator: Generator {
                schedule_lag: None,
                driver_cpu_s: 5.0,
                steady_cpu_s: 5.0,
                steady_cpu_share: 0.5,
                driver_cpu_us_per_msg: 500.0,
                driver_wakes_per_msg: None,
                relay_cpu_us_per_msg: None,
                others_cores: None,
                steal_cores: None,
                floor: None,
                cores: None,
                shards: 1,
                relay_workers: None,
                process_peak_rss_kib: 0,
                saturated: false,
                saturation_reasons: Vec::new(),
                saturation_criterion: None,
                lag_spikes: 0,
            },
            relay_stats: None,
            wall_s: 12.0,
            stages: Vec::new(),
            split: None,
            parts: Vec::new(),
            partial: None,
        })
    }

    /// `n` sending seconds with `samples` sends of which a share `late` was late, the
    /// busiest thread `busy`.
    fn seconds(n: usize, samples: u64, late: f64, busy: f64) -> Vec<SecondEvidence> {
        vec![SecondEvidence { sends: samples, late_share: late, lag_p99_us: 0.0, busy, span: 1 }; n]
    }

    #[test]
    fn a_generator_that_kept_up_is_not_saturated() -> anyhow::Result<()> {
        let s = kept_up()?;
        let j = judgement(&s, &seconds(10, 1000, 0.01, 0.5));
        assert!(!j.saturated && j.criterion.is_none() && j.lag_spikes == 0, "{j:?}");
        Ok(())
    }

    #[test]
    fn one_stall_in_an_idle_generator_is_a_lag_spike_not_saturation() -> anyhow::Result<()> {
        let s = kept_up()?;
        let mut ev = seconds(10, 1000, 0.0, 0.05);
        ev[4] = SecondEvidence { sends: 1000, late_share: 0.2, lag_p99_us: 4000.0, busy: 0.05, span: 1 };
        let j = judgement(&s, &ev);
        assert!(!j.saturated, "{j:?}");
        assert_eq!(j.lag_spikes, 1);
        // Few samples are no evidence at all (the capacity case: 64 samples, one 4 ms stall).
        let j = judgement(&s, &seconds(4, 16, 0.5, 0.005));
        assert!(!j.saturated && j.lag_spikes == 0, "{j:?}");
        Ok(())
    }

    #[test]
    fn sustained_lag_with_busy_threads_or_a_short_rate_is_saturation_and_says_which() -> anyhow::Result<()> {
        let s = kept_up()?;
        let j = judgement(&s, &seconds(6, 1000, 0.5, 0.98));
        assert!(j.saturated);
        assert_eq!(j.criterion.as_deref(), Some("sustained_lag+busy"));
        assert!(j.reasons[0].contains("6 of 6 sending seconds") && j.reasons[0].contains("50%"), "{j:?}");

        let mut short = kept_up()?;
        short.throughput.sent_per_s = 800.0;
        short.throughput.messages_per_s = 800.0;
        let j = judgement(&short, &seconds(6, 1000, 0.5, 0.5));
        assert_eq!(j.criterion.as_deref(), Some("sustained_lag+short_of_rate"), "{j:?}");
        assert!(j.reasons.iter().any(|r| r.contains("sent 800 messages/s of the 1000/s offered")));
        Ok(())
    }

    #[test]
    fn a_busy_generator_that_lost_messages_is_saturated_on_its_receiving_side() -> anyhow::Result<()> {
        let mut s = kept_up()?;
        // Senders on time, threads busy, but deliveries never opened.
        s.messages.lost = 5_000;
        let j = judgement(&s, &seconds(10, 1_000, 0.0, 0.95));
        assert!(j.saturated, "{:?}", j.reasons);
        assert_eq!(j.criterion.as_deref(), Some("busy+lost"));
        assert!(j.reasons[0].contains("5000 message(s)"), "{:?}", j.reasons);
        // Busy without loss, or loss without a busy generator: the relay's to answer for.
        assert!(!judgement(&s, &seconds(10, 1_000, 0.0, 0.5)).saturated);
        s.messages.lost = 0;
        assert!(!judgement(&s, &seconds(10, 1_000, 0.0, 0.95)).saturated);
        Ok(())
    }

    #[test]
    fn the_late_share_is_of_messages_not_of_the_deliveries_a_fan_out_makes() {
        use crate::driver::recorder::{Counters, Histograms};
        use crate::driver::{Phase, Second};
        // 100 messages fanned out to 30 members each, 10 of them late: 10 %, not 0.3 %.
        let mut delta = Counters::new();
        (delta.messages, delta.sent, delta.late_sends) = (100, 3_000, 10);
        let second = Second {
            t: 1,
            phase: Phase::Steady,
            hist: Histograms::new(),
            delta,
            connected: 30,
            busy: 0.5,
            stage: None,
            at_s: 1.0,
        };
        let ev = SecondEvidence::of(&[second]);
        assert_eq!((ev[0].sends, ev[0].late_share), (100, 0.1));
        assert!(ev[0].late());
    }

    #[test]
    fn a_stall_that_merged_seconds_into_one_row_weighs_as_long_as_it_lasted() -> anyhow::Result<()> {
        use crate::driver::recorder::{Counters, Histograms};
        use crate::driver::{Phase, Second};
        let row = |at_s: f64, messages: u64, late: u64| {
            let mut delta = Counters::new();
            (delta.messages, delta.sent, delta.late_sends) = (messages, messages, late);
            Second {
                t: at_s as u64,
                phase: Phase::Steady,
                hist: Histograms::new(),
                delta,
                connected: 8,
                busy: 0.4,
                stage: None,
                at_s,
            }
        };
        // One on-time second, then a shard held for 14 s: one row of 14 late seconds.
        let rows = [row(1.0, 300, 0), row(2.0, 300, 0), row(16.0, 4_200, 4_000)];
        let ev = SecondEvidence::of(&rows);
        assert_eq!(ev.iter().map(|e| e.span).collect::<Vec<_>>(), [1, 1, 14]);
        let j = judgement(&kept_up()?, &ev);
        assert!(j.reasons.iter().any(|r| r.contains("in 14 of 16 sending seconds")), "{j:?}");
        assert_eq!(j.lag_spikes, 0, "sustained, not a spike: {j:?}");
        // Too few sends for the seconds the row covers: no evidence.
        let rows = [row(1.0, 300, 0), row(15.0, 100, 90)];
        assert!(!SecondEvidence::of(&rows)[1].counts());
        Ok(())
    }

    #[test]
    fn sustained_lag_without_a_generator_cause_is_a_note() -> anyhow::Result<()> {
        let s = kept_up()?;
        let j = judgement(&s, &seconds(6, 1000, 0.5, 0.4));
        assert!(!j.saturated && j.reasons[0].contains("shared"), "{j:?}");
        Ok(())
    }

    #[test]
    fn other_processes_taking_the_cores_are_named_whatever_the_verdict() -> anyhow::Result<()> {
        let mut s = kept_up()?;
        s.header.provenance.cores = 2;
        (s.generator.others_cores, s.generator.steal_cores) = (Some(1.31), Some(0.0));
        // Saturated by a short rate, while a compiler took most of a core and more.
        (s.throughput.sent_per_s, s.throughput.messages_per_s) = (800.0, 800.0);
        let j = judgement(&s, &seconds(6, 1000, 0.5, 0.5));
        assert!(j.saturated, "{j:?}");
        assert!(j.reasons.iter().any(|r| r.contains("other processes used 1.31 of this machine's 2 cores")), "{j:?}");
        // A relay on loopback is one of them, and the verdict says so.
        s.relay = "ws://127.0.0.1:9000/".into();
        let j = judgement(&s, &seconds(6, 1000, 0.5, 0.5));
        assert!(j.reasons.iter().any(|r| r.contains("(the external relay on this machine among them)")), "{j:?}");
        s.relay = String::new();
        // Sustained lag, rate kept: the note names them as the cause.
        (s.throughput.sent_per_s, s.throughput.messages_per_s) = (1000.0, 1000.0);
        let j = judgement(&s, &seconds(6, 1000, 0.5, 0.4));
        assert!(!j.saturated && j.reasons[0].contains("other processes on the machine, below"), "{j:?}");
        // A quiet machine (kernel threads, the console): nothing to say.
        s.generator.others_cores = Some(0.08);
        let j = judgement(&s, &seconds(10, 1000, 0.0, 0.5));
        assert!(j.reasons.is_empty(), "{j:?}");
        // The hypervisor's other guests count too.
        (s.generator.others_cores, s.generator.steal_cores) = (Some(0.05), Some(0.4));
        let j = judgement(&s, &seconds(10, 1000, 0.0, 0.5));
        assert!(j.reasons.iter().any(|r| r.contains("hypervisor gave 0.40")), "{j:?}");
        Ok(())
    }

    #[test]
    fn the_rate_is_judged_in_messages_not_in_the_deliveries_they_fan_out_into() -> anyhow::Result<()> {
        // Groups of 10: 500 messages/s of the 1,000 offered is 4,500 deliveries/s.
        let mut s = kept_up()?;
        (s.throughput.sent_per_s, s.throughput.messages_per_s) = (4_500.0, 500.0);
        assert!(short_of_rate(&s).is_some_and(|r| r.contains("500 messages/s of the 1000/s")));
        (s.throughput.sent_per_s, s.throughput.messages_per_s) = (9_000.0, 1_000.0);
        assert!(short_of_rate(&s).is_none());
        Ok(())
    }

    #[test]
    fn a_short_rate_within_poisson_noise_or_an_interrupted_run_is_not_short() -> anyhow::Result<()> {
        let mut s = kept_up()?;
        (s.throughput.offered_per_s, s.throughput.seconds, s.throughput.sent_per_s) = (1.0, 2.0, 0.0);
        assert!(short_of_rate(&s).is_none(), "2 expected messages are no evidence");
        let mut s = kept_up()?;
        (s.throughput.sent_per_s, s.throughput.messages_per_s) = (100.0, 100.0);
        s.interrupted = true;
        assert!(short_of_rate(&s).is_none());
        Ok(())
    }
}
