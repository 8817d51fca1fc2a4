//! The open-loop schedule: when each sender's next message is *intended* to go, and how
//! big it is. Deterministic from the scenario's seed.

use crate::scenario::{Arrival, Profile};

/// The schedule's generator: moved to [`crate::rng`] (the scenario's population draws from
/// it too); kept here under its old path.
pub use crate::rng::Rng;

/// One sender's schedule: its position on the run's rate profile, in messages due over
/// all conversations (Λ), and the gap between its messages on that scale.
///
/// A sender carrying a share `f` of the aggregate rate has intensity `f·λ(t)`; its next
/// message is due when `f·Λ` has grown by one unit gap (1 for constant arrivals, Exp(1)
/// for Poisson), i.e. when Λ has grown by that gap over `f`. Inverting Λ (see
/// [`Profile::invert`]) follows ramps exactly and jumps over stages at rate 0.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Messages due over all conversations between two of this sender's (1 / its share).
    unit_gap: f64,
    arrival: Arrival,
    rng: Rng,
    /// Λ at this sender's latest intended send.
    at: f64,
    /// The steady start (ns on the process clock): time 0 of the profile.
    start_ns: u64,
}

impl Schedule {
    /// A schedule for a sender carrying `share` (0..=1) of the aggregate rate.
    pub fn new(share: f64, arrival: Arrival, rng: Rng) -> Self {
        Schedule { unit_gap: 1.0 / share, arrival, rng, at: 0.0, start_ns: 0 }
    }

    /// The first intended send time of a run whose steady phase starts at `start_ns`, so
    /// that thousands of senders do not all fire on the same instant and the traffic is
    /// stationary from the start: constant arrivals at a uniform random phase within one
    /// gap; Poisson arrivals one exponential gap in (a Poisson process seen from time 0 —
    /// a uniform phase would add half a message per sender to the first gap). None when
    /// the sender has nothing to send in the run.
    pub fn first(&mut self, start_ns: u64, profile: &Profile) -> Option<u64> {
        self.start_ns = start_ns;
        self.at = match self.arrival {
            Arrival::Constant => self.rng.next_f64() * self.unit_gap,
            Arrival::Poisson => self.gap_units(),
        };
        self.intended(profile)
    }

    /// The intended send time of the next message, or None when the run ends first.
    /// Allocates nothing.
    #[inline]
    pub fn next(&mut self, profile: &Profile) -> Option<u64> {
        self.at += self.gap_units();
        self.intended(profile)
    }

    /// One gap, in messages due over all conversations.
    #[inline]
    fn gap_units(&mut self) -> f64 {
        match self.arrival {
            Arrival::Constant => self.unit_gap,
            // Inverse transform sampling of the exponential distribution.
            Arrival::Poisson => -(1.0 - self.rng.next_f64()).ln() * self.unit_gap,
        }
    }

    #[inline]
    fn intended(&self, profile: &Profile) -> Option<u64> {
        profile.invert(self.at).map(|t| self.start_ns + (t * 1e9) as u64)
    }

    /// A message size from the cumulative distribution `sizes`.
    #[inline]
    pub fn size(&mut self, sizes: &[(usize, f64)]) -> usize {
        if sizes.len() == 1 {
            return sizes[0].0;
        }
        let x = self.rng.next_f64();
        sizes.iter().find(|(_, c)| x < *c).unwrap_or(&sizes[sizes.len() - 1]).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;
    use std::time::Duration;

    fn flat(rate: f64, secs: u64) -> Profile {
        Profile::steady(Duration::ZERO, Duration::from_secs(secs), rate)
    }

    fn stage(secs: u64, rate: f64, from: Option<f64>) -> Stage {
        Stage { name: None, duration: Duration::from_secs(secs), rate: Some(rate), from, measure: true, clients: None }
    }

    /// Every intended send of `senders` senders sharing `profile` equally, ns after 0.
    fn all_sends(profile: &Profile, senders: u64, arrival: Arrival) -> Vec<u64> {
        let mut out = Vec::new();
        for i in 0..senders {
            let mut s = Schedule::new(1.0 / senders as f64, arrival, Rng::new(11, i));
            let mut t = s.first(0, profile);
            while let Some(at) = t {
                out.push(at);
                t = s.next(profile);
            }
        }
        out
    }

    #[test]
    fn poisson_gaps_have_the_requested_mean_and_constant_gaps_are_exact() {
        let p = flat(1000.0, 400);
        let mut s = Schedule::new(1.0, Arrival::Poisson, Rng::new(7, 1));
        let (first, n) = (s.first(0, &p).unwrap(), 200_000);
        let last = (0..n).map(|_| s.next(&p).unwrap()).last().unwrap();
        let mean = (last - first) as f64 / n as f64;
        assert!((mean - 1e6).abs() < 1e4, "mean gap {mean}");
        let p = flat(4.0, 10);
        let mut c = Schedule::new(1.0, Arrival::Constant, Rng::new(7, 1));
        let a = c.first(0, &p).unwrap();
        assert!((c.next(&p).unwrap() - a).abs_diff(250_000_000) <= 1);
    }

    #[test]
    fn intended_sends_per_stage_match_the_integral_of_the_rate() {
        // A ramp up, a flat top, a pause at 0 and a step back down.
        let p = Profile::new(&[
            stage(2, 400.0, None),
            stage(3, 1200.0, None),
            stage(2, 1200.0, None),
            stage(1, 0.0, Some(0.0)),
            stage(2, 400.0, Some(400.0)),
        ])
        .unwrap();
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let sends = all_sends(&p, 500, arrival);
            for span in p.spans() {
                let (a, b) = ((span.start_s * 1e9) as u64, (span.end_s * 1e9) as u64);
                let n = sends.iter().filter(|&&t| t >= a && t < b).count() as f64;
                let want = span.expected();
                // Constant: ±½ per sender at most, far less on average (random phases);
                // Poisson: counts within ~3 standard deviations (√n).
                let tol = if arrival == Arrival::Constant { 0.01 * want + 5.0 } else { 3.5 * want.sqrt() + 1.0 };
                assert!((n - want).abs() <= tol, "{arrival:?} {}: {n} sends, ∫λ = {want}", span.name);
            }
            assert!(sends.iter().all(|&t| t < 10_000_000_000), "nothing is due after the run");
        }
    }

    #[test]
    fn within_a_ramp_the_send_rate_follows_the_line() {
        let p = Profile::new(&[stage(4, 2000.0, Some(0.0))]).unwrap();
        let sends = all_sends(&p, 100, Arrival::Constant);
        for q in 0..4u64 {
            let n = sends.iter().filter(|&&t| t / 1_000_000_000 == q).count() as f64;
            let want = p.cumulative(q as f64 + 1.0) - p.cumulative(q as f64);
            assert!((n - want).abs() <= 0.02 * want + 3.0, "second {q}: {n} vs {want}");
        }
    }

    #[test]
    fn sizes_follow_their_weights() {
        let mut s = Schedule::new(1.0, Arrival::Constant, Rng::new(1, 2));
        let cdf = [(64usize, 0.75), (1024, 1.0)];
        let small = (0..40_000).filter(|_| s.size(&cdf) == 64).count();
        assert!((29_000..31_000).contains(&small), "{small}");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let p = flat(10.0, 10);
        let run = || {
            let mut s = Schedule::new(0.5, Arrival::Poisson, Rng::new(3, 9));
            let first = s.first(5, &p);
            std::iter::once(first).chain((0..5).map(|_| s.next(&p))).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
