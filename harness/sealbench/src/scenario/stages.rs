//! Load that changes within a run: the `[[stages]]` of a scenario and the rate profile
//! they describe.
//!
//! A stage lasts `duration` and moves the target rate (messages per second over all
//! conversations) linearly from where it starts to its `rate`, reaching it at the stage's
//! end (k6's semantics). A stage starts at the previous stage's target unless it says
//! `from` (a step); the first stage starts at its own target unless it says `from`. A
//! stage without `rate` holds the rate it starts at.
//!
//! The [`Profile`] is that piecewise-linear intensity λ(t) with its integral Λ(t) (the
//! expected number of messages sent by `t`). The open-loop schedule inverts Λ: a sender
//! carrying a share `f` of the traffic sends its next message when `f·Λ` has grown by one
//! gap (1 for constant arrivals, Exp(1) for Poisson), which is exact for ramps and skips
//! stages at rate 0. A scenario without stages is the profile of one unmeasured warm-up
//! stage (when it has one) and one measured stage, both at the scenario's rate.
//!
//! Pure: no clock, no I/O; times are seconds since the steady start.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One `[[stages]]` entry of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Shown in the summary, the console and the timeline (default `stage N`, from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long the stage lasts (more than 0).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Target rate at the stage's end, messages/s over all conversations (0 allowed: no
    /// traffic). Absent: the stage holds the rate it starts at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Rate at the stage's start, messages/s over all conversations. Absent: the previous
    /// stage's target (a ramp), or for the first stage its own `rate` (flat). Set it to
    /// make a step, or to ramp the first stage up from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    /// `false`: warm-up or cool-down traffic, sent and accounted but not in the
    /// histograms. Only leading and trailing stages may be unmeasured, so that the
    /// measured phase is one window.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub measure: bool,
    /// Connected clients (devices) at the stage's end, ramped linearly from the previous
    /// stage's target (before the first target: every client). Devices above the target
    /// are held offline — messages to them are stored by the relay — and come back (a new
    /// connection, stored messages first) as the target rises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}

/// One stage as run: where it lies and the rates it moves between.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The stage's name.
    pub name: String,
    /// Start, seconds since the steady start.
    pub start_s: f64,
    /// End, seconds since the steady start.
    pub end_s: f64,
    /// Target rate at the start, messages/s (all conversations).
    pub from: f64,
    /// Target rate at the end, messages/s.
    pub to: f64,
    /// In the histograms.
    pub measure: bool,
    /// Λ at the start: messages due before it.
    cum: f64,
}

impl Span {
    fn len(&self) -> f64 {
        self.end_s - self.start_s
    }
    /// Messages due within the span (∫λ over it).
    pub fn expected(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.len()
    }
}

/// The run's rate profile: its stages in order, contiguous from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    spans: Vec<Span>,
}

impl Profile {
    /// The profile of a scenario without stages: `warmup` (unmeasured, when not zero) then
    /// `duration`, both at `rate` messages/s.
    pub fn steady(warmup: Duration, duration: Duration, rate: f64) -> Profile {
        let mut stages = Vec::new();
        for (name, d, measure) in [("warm-up", warmup, false), ("steady", duration, true)] {
            if !d.is_zero() {
                let s = Stage {
                    name: Some(name.into()),
                    duration: d,
                    rate: Some(rate),
                    from: None,
                    measure,
                    clients: None,
                };
                stages.push(s);
            }
        }
        Profile::build(&stages)
    }

    /// The profile of a scenario's `[[stages]]`.
    ///
    /// # Errors
    /// Names the stage and field (`stages[2].duration`) and says what is accepted: a
    /// duration of 0, a negative or non-finite rate, a first stage without a rate,
    /// unmeasured stages between measured ones, no
    /// measured stage, or no traffic at all.
    pub fn new(stages: &[Stage]) -> Result<Profile> {
        if stages.is_empty() {
            bail!("stages: give at least one [[stages]] entry, or leave `stages` out");
        }
        for (i, s) in stages.iter().enumerate() {
            if s.duration.is_zero() {
                bail!("stages[{i}].duration: must be more than 0 (e.g. \"30s\")");
            }
            for (field, v) in [("rate", s.rate), ("from", s.from)] {
                if let Some(r) = v.filter(|r| !(r.is_finite() && *r >= 0.0)) {
                    bail!(
                        "stages[{i}].{field}: must be 0 or a positive number of messages per second over all conversations, got {r}"
                    );
                }
            }
            if let Some(name) = &s.name
                && (name.is_empty() || name.chars().any(char::is_control))
            {
                bail!("stages[{i}].name: give a non-empty name without control characters");
            }
        }
        if stages[0].rate.is_none() && stages[0].from.is_none() {
            bail!("stages[0].rate: the first stage needs a target rate (there is no previous one to hold)");
        }
        let first_measured = stages.iter().position(|s| s.measure);
        let last_measured = stages.iter().rposition(|s| s.measure);
        let (Some(a), Some(b)) = (first_measured, last_measured) else {
            bail!("stages: every stage has `measure = false`; at least one must be measured");
        };
        if let Some(i) = (a..=b).find(|&i| !stages[i].measure) {
            bail!(
                "stages[{i}].measure: an unmeasured stage may only come before every measured one (warm-up) or after \
                 them all (cool-down): the measured phase is one window"
            );
        }
        let p = Profile::build(stages);
        if p.total_units() <= 0.0 {
            bail!("stages: every rate is 0, so nothing would be sent; give some stage a positive `rate`");
        }
        Ok(p)
    }

    /// The spans of well-formed stages (checked by [`Profile::new`]).
    fn build(stages: &[Stage]) -> Profile {
        let mut spans: Vec<Span> = Vec::with_capacity(stages.len());
        let (mut t, mut cum, mut prev) = (0.0, 0.0, None::<f64>);
        for (i, s) in stages.iter().enumerate() {
            let from = s.from.or(prev).or(s.rate).unwrap_or(0.0);
            let to = s.rate.unwrap_or(from);
            let len = s.duration.as_secs_f64();
            let name = s.name.clone().unwrap_or_else(|| format!("stage {}", i + 1));
            let span = Span { name, start_s: t, end_s: t + len, from, to, measure: s.measure, cum };
            cum += span.expected();
            t += len;
            prev = Some(to);
            spans.push(span);
        }
        Profile { spans }
    }

    /// The stages as run.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// How long sending lasts, s.
    pub fn total_s(&self) -> f64 {
        self.spans.last().map_or(0.0, |s| s.end_s)
    }

    /// The measured window, seconds since the steady start: from the first measured
    /// stage's start to the last one's end.
    pub fn window_s(&self) -> (f64, f64) {
        let a = self.spans.iter().find(|s| s.measure).map_or(0.0, |s| s.start_s);
        let b = self.spans.iter().rfind(|s| s.measure).map_or(0.0, |s| s.end_s);
        (a, b)
    }

    /// Messages due over the whole run (Λ at its end).
    pub fn total_units(&self) -> f64 {
        self.spans.last().map_or(0.0, |s| s.cum + s.expected())
    }

    /// The mean target rate over the run, messages/s.
    pub fn mean_rate(&self) -> f64 {
        let t = self.total_s();
        if t > 0.0 { self.total_units() / t } else { 0.0 }
    }

    /// The stage running at `t_s` (None outside the run).
    pub fn stage_at(&self, t_s: f64) -> Option<usize> {
        if !(t_s >= 0.0 && t_s < self.total_s()) {
            return None;
        }
        Some(self.spans.partition_point(|s| s.end_s <= t_s).min(self.spans.len() - 1))
    }

    /// The target rate at `t_s`, messages/s (0 outside the run).
    pub fn rate_at(&self, t_s: f64) -> f64 {
        self.stage_at(t_s).map_or(0.0, |i| {
            let s = &self.spans[i];
            s.from + (s.to - s.from) * (t_s - s.start_s) / s.len()
        })
    }

    /// Λ(t): messages due by `t_s` (clamped to the run).
    pub fn cumulative(&self, t_s: f64) -> f64 {
        if t_s <= 0.0 {
            return 0.0;
        }
        match self.stage_at(t_s) {
            None => self.total_units(),
            Some(i) => {
                let s = &self.spans[i];
                let x = t_s - s.start_s;
                s.cum + s.from * x + (s.to - s.from) * x * x / (2.0 * s.len())
            }
        }
    }

    /// Λ⁻¹(u): the time (s since the steady start) at which `u` messages are due; None
    /// when the run ends first. Within a span λ(x) = a + k·x, so Λ grows by
    /// a·x + k·x²/2 and the root taken is x = 2d / (a + √(a² + 2kd)), which holds for
    /// flat spans (k = 0), ramps down (k < 0) and ramps up from 0 (a = 0) alike. Spans at
    /// rate 0 hold no messages and are skipped. Allocates nothing.
    #[inline]
    pub fn invert(&self, u: f64) -> Option<f64> {
        if !(u >= 0.0 && u < self.total_units()) {
            return None;
        }
        // The first span whose end lies beyond u (its start is at or before u).
        let i = self.spans.partition_point(|s| s.cum + s.expected() <= u);
        let s = self.spans.get(i)?;
        let d = u - s.cum;
        if d <= 0.0 {
            return Some(s.start_s);
        }
        let (a, k) = (s.from, (s.to - s.from) / s.len());
        let x = 2.0 * d / (a + (a * a + 2.0 * k * d).max(0.0).sqrt());
        Some(s.start_s + x.clamp(0.0, s.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: u64, rate: Option<f64>, from: Option<f64>) -> Stage {
        Stage { name: None, duration: Duration::from_secs(secs), rate, from, measure: true, clients: None }
    }

    #[test]
    fn stages_ramp_from_the_previous_target_hold_without_a_rate_and_step_with_from() -> Result<()> {
        let p = Profile::new(&[
            stage(2, Some(100.0), None),
            stage(2, Some(300.0), None),
            stage(1, None, None),
            stage(1, Some(50.0), Some(50.0)),
        ])?;
        let r: Vec<(f64, f64)> = p.spans().iter().map(|s| (s.from, s.to)).collect();
        assert_eq!(r, vec![(100.0, 100.0), (100.0, 300.0), (300.0, 300.0), (50.0, 50.0)]);
        assert_eq!(p.rate_at(3.0), 200.0);
        assert_eq!(p.total_units(), 200.0 + 400.0 + 300.0 + 50.0);
        assert_eq!(p.stage_at(4.0), Some(2));
        assert_eq!(p.stage_at(6.0), None);
        assert_eq!(p.spans()[0].name, "stage 1");
        Ok(())
    }

    #[test]
    fn inverting_the_cumulative_intensity_gives_back_the_time() -> Result<()> {
        // Flat, ramp up from 0, a pause at 0, ramp down to 0.
        let p = Profile::new(&[
            stage(2, Some(100.0), None),
            stage(3, Some(400.0), Some(0.0)),
            stage(2, Some(0.0), Some(0.0)),
            stage(4, Some(0.0), Some(250.0)),
        ])?;
        for i in 0..=1100 {
            let t = i as f64 * 0.01;
            if (5.0..7.0).contains(&t) {
                continue; // no messages are due at rate 0: Λ is flat and has no inverse there
            }
            let u = p.cumulative(t);
            if u >= p.total_units() {
                continue;
            }
            let back = p.invert(u).expect("within the run");
            assert!((back - t).abs() < 1e-6, "t {t} → Λ {u} → {back}");
        }
        // A message due just after the pause's Λ goes at its end, not in it.
        let at_pause = p.cumulative(5.0);
        assert!((p.invert(at_pause + 1e-9).unwrap() - 7.0).abs() < 1e-3);
        assert_eq!(p.invert(p.total_units()), None);
        assert_eq!(p.invert(f64::NAN), None);
        Ok(())
    }

    #[test]
    fn the_default_profile_is_an_unmeasured_warmup_then_the_measured_phase() {
        let p = Profile::steady(Duration::from_secs(2), Duration::from_secs(10), 50.0);
        assert_eq!(p.window_s(), (2.0, 12.0));
        assert_eq!(p.mean_rate(), 50.0);
        let p = Profile::steady(Duration::ZERO, Duration::from_secs(10), 50.0);
        assert_eq!((p.spans().len(), p.window_s()), (1, (0.0, 10.0)));
    }

    #[test]
    fn bad_stages_are_refused_naming_the_stage_and_field() {
        let err = |stages: &[Stage]| Profile::new(stages).unwrap_err().to_string();
        assert!(err(&[stage(0, Some(1.0), None)]).starts_with("stages[0].duration"));
        assert!(err(&[stage(1, Some(1.0), None), stage(1, Some(-3.0), None)]).starts_with("stages[1].rate"));
        assert!(err(&[stage(1, None, None)]).starts_with("stages[0].rate"));
        assert!(err(&[stage(1, Some(0.0), None)]).contains("nothing would be sent"));
        let mut gap = vec![stage(1, Some(1.0), None), stage(1, None, None), stage(1, None, None)];
        gap[1].measure = false;
        assert!(err(&gap).starts_with("stages[1].measure"));
        gap[1].measure = true;
        gap[0].measure = false;
        gap[2].measure = false;
        assert_eq!(Profile::new(&gap).map(|p| p.window_s()).ok(), Some((1.0, 2.0)));
        for s in &mut gap {
            s.measure = false;
        }
        assert!(err(&gap).contains("at least one must be measured"));
    }
}

/// The connected-client target `t_s` seconds after the steady start, when some stage sets
/// one: linear within each stage from the previous stage's target (before the first
/// target, `all` — every client connected), held after the last stage. None when no stage
/// sets `clients` (everyone stays connected).
pub fn clients_at(stages: &[Stage], all: usize, t_s: f64) -> Option<f64> {
    if stages.iter().all(|s| s.clients.is_none()) {
        return None;
    }
    let (mut start, mut prev) = (0.0, all as f64);
    for s in stages {
        let len = s.duration.as_secs_f64();
        let to = s.clients.map_or(prev, |c| c as f64);
        if t_s < start + len {
            let f = ((t_s - start) / len).clamp(0.0, 1.0);
            return Some(prev + (to - prev) * f);
        }
        start += len;
        prev = to;
    }
    Some(prev)
}

#[cfg(test)]
mod clients_tests {
    use super::*;

    #[test]
    fn connected_client_targets_ramp_from_everyone_and_hold() {
        let st = |secs: u64, clients: Option<usize>| Stage {
            name: None,
            duration: Duration::from_secs(secs),
            rate: Some(10.0),
            from: None,
            measure: true,
            clients,
        };
        assert_eq!(clients_at(&[st(2, None)], 100, 1.0), None, "no target: everyone stays");
        let stages = [st(2, Some(20)), st(4, None), st(4, Some(100))];
        assert_eq!(clients_at(&stages, 100, 0.0), Some(100.0));
        assert_eq!(clients_at(&stages, 100, 1.0), Some(60.0), "halfway from everyone to 20");
        assert_eq!(clients_at(&stages, 100, 4.0), Some(20.0), "a stage without a target holds");
        assert_eq!(clients_at(&stages, 100, 8.0), Some(60.0));
        assert_eq!(clients_at(&stages, 100, 60.0), Some(100.0), "held after the last stage");
    }
}
