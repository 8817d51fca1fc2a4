//! The capacity search as a pure state machine: no I/O, no clock, no driver.
//!
//! It grows the offered value geometrically (by `factor`) while every SLO holds, then
//! bisects between the highest value that held and the lowest that did not, until the
//! bracket is `precision` wide. Steps where the load generator itself saturated say
//! nothing about the relay: they bound the bracket from above like a failure, and when
//! the generator saturates before any SLO breaks, no capacity is claimed.
//!
//! **No single run decides** (with [`Params::confirm`], the default of `capacity`): a value
//! that broke an SLO once is run again before the search narrows past it, and it counts as
//! broken only when two runs of it broke one (more breaks than passes); one pass and one
//! break is run a third time. The value the search ends on is confirmed the same way: it
//! must have passed twice. So a lone lag spike on a shared machine can neither end the
//! growth nor be the answer.
//!
//! ```
//! use sealbench::verdict::capacity::{Next, Observation, Params, Search};
//! let search = Search::new(Params { start: 200.0, max: 800.0, ..Params::default() })?;
//! let mut seen = Vec::new();
//! while let Next::Run(step) = search.next_step(&seen) {
//!     // run the step at `step.offered`, then feed back what it showed:
//!     seen.push(Observation { offered: step.offered, pass: true, saturated: false });
//! }
//! let Next::Done(found) = search.next_step(&seen) else { unreachable!() };
//! assert_eq!(found.capacity, Some(800.0));
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{Result, bail};

/// What the search is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// The first value tried.
    pub start: f64,
    /// The highest value tried.
    pub max: f64,
    /// Growth factor while the SLOs hold (> 1).
    pub factor: f64,
    /// Relative width of the bracket at which the search stops (> 0).
    pub precision: f64,
    /// Most steps run.
    pub max_steps: usize,
    /// Values are client counts (run as even numbers, at least 2) rather than aggregate
    /// rates in msgs/s (run as whole numbers, at least 1).
    pub clients: bool,
    /// Confirm breaks and the answer by running them again (see the module's docs).
    pub confirm: bool,
}

impl Default for Params {
    /// `capacity`'s flag defaults for a rate search, from 1,000 msgs/s, confirming.
    fn default() -> Self {
        Params { start: 1000.0, max: 1e7, factor: 2.0, precision: 0.05, max_steps: 24, clients: false, confirm: true }
    }
}

/// What one step showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The value the step ran at (its [`StepSpec::offered`]).
    pub offered: f64,
    /// Every SLO held.
    pub pass: bool,
    /// The load generator could not keep its schedule.
    pub saturated: bool,
}

/// The next step to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSpec {
    /// Its number, from 1.
    pub index: usize,
    /// The value to run at (already rounded to what can run).
    pub offered: f64,
    /// A run again of a value already run (to confirm a break, or the answer).
    pub confirm: bool,
}

/// What a finished search found (the verdict fields of `capacity.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The highest value that met every SLO with the generator keeping up, when an SLO
    /// (not the generator) bounded the search or the SLOs held up to the largest value tried.
    pub capacity: Option<f64>,
    /// The lowest value that broke an SLO.
    pub first_failure: Option<f64>,
    /// The lowest value at which the generator saturated.
    pub generator_limit: Option<f64>,
    /// The highest value that met every SLO with the generator keeping up.
    pub highest_passing: Option<f64>,
    /// How to read the result.
    pub conclusion: String,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run this step and feed its [`Observation`] back.
    Run(StepSpec),
    /// The search is over.
    Done(Found),
}

/// The search: its parameters. Its state is the observations fed to
/// [`Search::next_step`], so the same observations always give the same answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    params: Params,
}

/// What the observations so far bracket.
#[derive(Debug, Clone, Default)]
struct Bracket {
    good: Option<f64>,
    bad: Option<f64>,
    generator_limit: Option<f64>,
    /// Values whose runs disagree or broke only once (confirming: run again).
    unsettled: Vec<f64>,
    /// Passes of the `good` value.
    good_passes: u32,
}

/// The runs of one value.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    pass: u32,
    fail: u32,
    saturated: bool,
}

impl Bracket {
    fn of(observations: &[Observation], confirm: bool) -> Self {
        let mut values: Vec<(f64, Tally)> = Vec::new();
        for o in observations {
            let i = match values.iter().position(|(v, _)| (v - o.offered).abs() < 0.5) {
                Some(i) => i,
                None => {
                    values.push((o.offered, Tally::default()));
                    values.len() - 1
                }
            };
            let t = &mut values[i].1;
            if o.saturated {
                t.saturated = true;
            } else if o.pass {
                t.pass += 1;
            } else {
                t.fail += 1;
            }
        }
        let mut b = Bracket::default();
        for (x, t) in values {
            if t.saturated {
                // Nothing at or above a saturated step says anything about the relay.
                b.generator_limit = Some(b.generator_limit.map_or(x, |g| g.min(x)));
                continue;
            }
            let (good, bad) = if confirm {
                (t.pass >= 2 && t.pass > t.fail || t.pass == 1 && t.fail == 0, t.fail >= 2 && t.fail > t.pass)
            } else {
                (t.fail == 0, t.fail > 0)
            };
            if good && b.good.is_none_or(|g| x > g) {
                (b.good, b.good_passes) = (Some(x), t.pass);
            } else if bad {
                b.bad = Some(b.bad.map_or(x, |v| v.min(x)));
            } else if !good {
                b.unsettled.push(x);
            }
        }
        b
    }

    /// The lowest value known not to hold (an SLO broke, or the generator saturated).
    fn upper(&self) -> Option<f64> {
        match (self.bad, self.generator_limit) {
            (Some(b), Some(g)) => Some(b.min(g)),
            (b, g) => b.or(g),
        }
    }
}

impl Search {
    /// A search with `params`.
    ///
    /// # Errors
    /// When `factor` is not above 1, `precision` not positive, or `start` not in `(0, max]`
    /// (the messages name the flags).
    pub fn new(params: Params) -> Result<Self> {
        let Params { factor, precision, start, max, .. } = params;
        if factor.is_nan() || factor <= 1.0 || precision.is_nan() || precision <= 0.0 {
            bail!("--factor must be > 1 and --precision > 0");
        }
        if !(start > 0.0 && max >= start) {
            bail!("--start must be positive and at most --max");
        }
        Ok(Search { params })
    }

    /// The step after `observations` (every step run so far, in order), or what the
    /// search found.
    pub fn next_step(&self, observations: &[Observation]) -> Next {
        let p = &self.params;
        let bracket = Bracket::of(observations, p.confirm);
        let done = |b: &Bracket| Next::Done(self.found(b, observations));
        if observations.len() >= p.max_steps {
            return done(&bracket);
        }
        let index = observations.len() + 1;
        // A value that broke once (or whose runs disagree) is run again before anything else.
        if let Some(&x) = bracket.unsettled.first() {
            return Next::Run(StepSpec { index, offered: x, confirm: true });
        }
        let x = if observations.is_empty() { Some(p.start) } else { self.after(&bracket) };
        let next = x.map(|x| self.runnable(x)).filter(|x| !observations.iter().any(|o| (o.offered - x).abs() < 0.5));
        match next {
            Some(offered) => Next::Run(StepSpec { index, offered, confirm: false }),
            // The search would end: its answer must have held twice when a break bounds it.
            None => match bracket.good {
                Some(g) if p.confirm && bracket.good_passes < 2 && bracket.upper().is_some() => {
                    Next::Run(StepSpec { index, offered: g, confirm: true })
                }
                _ => done(&bracket),
            },
        }
    }

    /// What `observations` found, without asking for more steps: for `capacity --mode
    /// ramp`, whose steps were all run in one go (no bisection after the fact).
    pub fn conclude(&self, observations: &[Observation]) -> Found {
        // A ramp runs each value once: a break there is a break (it cannot be re-run).
        self.found(&Bracket::of(observations, false), observations)
    }

    /// The values a stepped ramp runs through: the growth the search makes while every
    /// SLO holds, from `start` by `factor` up to `max`, at most `max_steps` of them.
    pub fn ramp(&self) -> Vec<f64> {
        let mut seen: Vec<Observation> = Vec::new();
        while let Next::Run(step) = self.next_step(&seen) {
            seen.push(Observation { offered: step.offered, pass: true, saturated: false });
        }
        seen.into_iter().map(|o| o.offered).collect()
    }

    /// The value to try after a step, or None when the search is over: grow while nothing
    /// broke, shrink while nothing held, then bisect to `precision`.
    fn after(&self, b: &Bracket) -> Option<f64> {
        let p = &self.params;
        let x = match (b.good, b.upper()) {
            (Some(g), None) if g >= p.max => return None,
            (Some(g), None) => (g * p.factor).min(p.max),
            (None, Some(u)) => u / p.factor,
            (Some(g), Some(u)) if (u - g) / g <= p.precision => return None,
            (Some(g), Some(u)) => (g + u) / 2.0,
            (None, None) => return None,
        };
        if x < 1.0 { None } else { Some(x) }
    }

    /// `x` as a step can run it: an even client count (at least 2), or a whole rate (at
    /// least 1).
    fn runnable(&self, x: f64) -> f64 {
        if self.params.clients { ((x / 2.0).round() * 2.0).max(2.0) } else { x.round().max(1.0) }
    }

    fn found(&self, b: &Bracket, observations: &[Observation]) -> Found {
        let unit = if self.params.clients { "clients" } else { "msgs/s" };
        let slo_limited = match (b.bad, b.generator_limit) {
            (Some(bad), Some(g)) => bad < g,
            (Some(_), None) => true,
            _ => false,
        };
        let (capacity, conclusion) = match (b.good, slo_limited, b.generator_limit) {
            (Some(g), true, _) => {
                (Some(g), format!("capacity {g} {unit}: every SLO held there; {} {unit} broke one", b.bad.unwrap_or(g)))
            }
            (good, false, Some(lim)) => (
                None,
                format!(
                    "no capacity reported: the load generator itself saturates at {lim} {unit}, before any SLO broke{}; \
                     the relay's limit lies beyond what this machine's generator can show (run the relay as its own \
                     process, or the driver elsewhere)",
                    good.map_or(String::new(), |v| format!(" (the SLOs held, generator keeping up, up to {v} {unit})"))
                ),
            ),
            (Some(g), false, None) => {
                (Some(g), format!("capacity ≥ {g} {unit}: the SLOs held up to the largest value tried"))
            }
            (None, _, _) => (
                None,
                format!(
                    "no capacity: the SLOs broke even at the smallest value tried ({:.0} {unit})",
                    observations.iter().map(|o| o.offered).fold(f64::INFINITY, f64::min)
                ),
            ),
        };
        Found {
            capacity,
            first_failure: b.bad,
            generator_limit: b.generator_limit,
            highest_passing: b.good,
            conclusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `search` against `verdict` (offered value → (pass, saturated)); returns the
    /// values stepped through and what was found.
    fn script(search: &Search, verdict: impl Fn(f64) -> (bool, bool)) -> (Vec<f64>, Found) {
        let mut seen: Vec<Observation> = Vec::new();
        loop {
            match search.next_step(&seen) {
                Next::Run(step) => {
                    assert_eq!(step.index, seen.len() + 1);
                    let (pass, saturated) = verdict(step.offered);
                    seen.push(Observation { offered: step.offered, pass, saturated });
                }
                Next::Done(found) => return (seen.iter().map(|o| o.offered).collect(), found),
            }
        }
    }

    /// A search that trusts every run (the growth and bisection alone).
    fn search(start: f64, max: f64) -> Search {
        Search::new(Params { start, max, confirm: false, ..Params::default() }).expect("valid parameters")
    }

    #[test]
    fn a_break_is_confirmed_before_the_search_narrows_past_it_and_so_is_the_answer() {
        let s = Search::new(Params { start: 1000.0, max: 1e7, ..Params::default() }).expect("valid");
        let (steps, found) = script(&s, |x| (x <= 1700.0, false));
        // Each break is run twice; the answer is run twice.
        assert_eq!(steps, vec![1000.0, 2000.0, 2000.0, 1500.0, 1750.0, 1750.0, 1625.0, 1688.0, 1688.0]);
        assert_eq!((found.capacity, found.first_failure), (Some(1688.0), Some(1750.0)));
    }

    #[test]
    fn a_step_that_breaks_once_and_passes_on_re_run_is_not_the_boundary() {
        // 4000 breaks on its first run only (a lag spike), holds on its second and third.
        let s = Search::new(Params { start: 1000.0, max: 8000.0, ..Params::default() }).expect("valid");
        let mut seen: Vec<Observation> = Vec::new();
        let mut runs_of_4000 = 0;
        while let Next::Run(step) = s.next_step(&seen) {
            let pass = if step.offered == 4000.0 {
                runs_of_4000 += 1;
                runs_of_4000 > 1
            } else {
                true
            };
            seen.push(Observation { offered: step.offered, pass, saturated: false });
        }
        let Next::Done(found) = s.next_step(&seen) else { unreachable!() };
        assert_eq!(runs_of_4000, 3, "one break, then run until two agree");
        assert_eq!(found.first_failure, None, "{}", found.conclusion);
        assert_eq!(found.capacity, Some(8000.0), "{}", found.conclusion);
    }

    #[test]
    fn grows_by_the_factor_while_the_slo_holds_and_stops_at_max() {
        let (steps, found) = script(&search(200.0, 800.0), |_| (true, false));
        assert_eq!(steps, vec![200.0, 400.0, 800.0]);
        assert_eq!(found.capacity, Some(800.0));
        assert_eq!(found.highest_passing, Some(800.0));
        assert_eq!(found.first_failure, None);
        assert_eq!(found.conclusion, "capacity ≥ 800 msgs/s: the SLOs held up to the largest value tried");
    }

    #[test]
    fn growth_is_clamped_to_max() {
        let (steps, _) = script(&search(300.0, 1000.0), |_| (true, false));
        assert_eq!(steps, vec![300.0, 600.0, 1000.0]);
    }

    #[test]
    fn bisects_after_a_failure_until_the_bracket_is_precise() {
        let (steps, found) = script(&search(1000.0, 1e7), |x| (x <= 1700.0, false));
        // 1000 ok, 2000 broke, then halves of the bracket until (bad − good)/good ≤ 5 %.
        assert_eq!(steps, vec![1000.0, 2000.0, 1500.0, 1750.0, 1625.0, 1688.0]);
        assert_eq!(found.capacity, Some(1688.0));
        assert_eq!(found.first_failure, Some(1750.0));
        assert_eq!(found.conclusion, "capacity 1688 msgs/s: every SLO held there; 1750 msgs/s broke one");
    }

    #[test]
    fn shrinks_by_the_factor_when_the_first_step_fails() {
        let (steps, found) = script(&search(1000.0, 1e7), |x| (x <= 300.0, false));
        assert_eq!(steps[..4], [1000.0, 500.0, 250.0, 375.0]);
        assert_eq!(found.capacity.map(|c| c <= 300.0), Some(true));
    }

    #[test]
    fn never_passing_ends_below_one_and_claims_nothing() {
        let (steps, found) = script(&search(4.0, 100.0), |_| (false, false));
        assert_eq!(steps, vec![4.0, 2.0, 1.0]);
        assert_eq!(found.capacity, None);
        assert_eq!(found.conclusion, "no capacity: the SLOs broke even at the smallest value tried (1 msgs/s)");
    }

    #[test]
    fn stops_after_max_steps() {
        let s = Search::new(Params { start: 10.0, max: 1e7, max_steps: 3, confirm: false, ..Params::default() })
            .expect("valid");
        let (steps, found) = script(&s, |_| (true, false));
        assert_eq!(steps, vec![10.0, 20.0, 40.0]);
        assert_eq!(found.capacity, Some(40.0));
    }

    #[test]
    fn stops_when_the_bracket_cannot_be_split_at_this_resolution() {
        let s = Search::new(Params { start: 10.0, max: 1e7, precision: 0.01, confirm: false, ..Params::default() })
            .expect("valid");
        // 10 ok, 20 broke, 15 broke, 12.5→13 broke, 11.5→12 broke, 11 broke, 10.5→11 again: done.
        let (steps, found) = script(&s, |x| (x <= 10.0, false));
        assert_eq!(steps, vec![10.0, 20.0, 15.0, 13.0, 12.0, 11.0]);
        assert_eq!(found.capacity, Some(10.0));
    }

    #[test]
    fn a_saturated_generator_bounds_the_search_and_claims_no_capacity() {
        let (steps, found) = script(&search(1000.0, 1e7), |x| (true, x >= 1800.0));
        // 2000 saturated: bisect below it like a failure; nothing above says anything.
        assert_eq!(steps, vec![1000.0, 2000.0, 1500.0, 1750.0, 1875.0, 1813.0]);
        assert_eq!(found.capacity, None);
        assert_eq!(found.generator_limit, Some(1813.0));
        assert_eq!(found.highest_passing, Some(1750.0));
        assert!(found.conclusion.starts_with(
            "no capacity reported: the load generator itself saturates at 1813 msgs/s, before any SLO broke \
             (the SLOs held, generator keeping up, up to 1750 msgs/s)"
        ));
    }

    #[test]
    fn an_slo_that_breaks_below_the_generator_limit_still_gives_a_capacity() {
        let (steps, found) = script(&search(1000.0, 1e7), |x| (x < 1400.0, x >= 2000.0));
        assert_eq!(steps, vec![1000.0, 2000.0, 1500.0, 1250.0, 1375.0, 1438.0]);
        assert_eq!(found.generator_limit, Some(2000.0));
        assert_eq!(found.first_failure, Some(1438.0));
        assert_eq!(found.capacity, Some(1375.0));
        assert_eq!(found.conclusion, "capacity 1375 msgs/s: every SLO held there; 1438 msgs/s broke one");
    }

    #[test]
    fn saturation_at_the_first_step_shrinks_below_it() {
        let (steps, found) = script(&search(1000.0, 1e7), |x| (true, x > 600.0));
        assert_eq!(steps[..3], [1000.0, 500.0, 750.0]);
        assert_eq!(found.capacity, None);
        assert!(found.generator_limit.is_some_and(|g| g > 600.0));
    }

    #[test]
    fn client_counts_run_as_even_numbers() {
        let s = Search::new(Params { start: 3.0, max: 13.0, factor: 2.0, clients: true, ..Params::default() })
            .expect("valid");
        let (steps, found) = script(&s, |_| (true, false));
        // 3 runs as 4; growth clamps to 13, which runs as 14 (rounding may pass --max).
        assert_eq!(steps, vec![4.0, 8.0, 14.0]);
        assert_eq!(found.capacity, Some(14.0));
        assert!(found.conclusion.contains("clients"));
    }

    #[test]
    fn a_ramp_runs_the_growth_and_is_concluded_from_its_stages() {
        let s = search(250.0, 2000.0);
        assert_eq!(s.ramp(), vec![250.0, 500.0, 1000.0, 2000.0]);
        let seen: Vec<Observation> =
            s.ramp().into_iter().map(|x| Observation { offered: x, pass: x <= 500.0, saturated: false }).collect();
        let found = s.conclude(&seen);
        assert_eq!((found.capacity, found.first_failure), (Some(500.0), Some(1000.0)));
    }

    #[test]
    fn bad_parameters_name_their_flags() {
        let p = Params::default();
        assert!(Search::new(Params { factor: 1.0, ..p }).is_err());
        assert!(Search::new(Params { precision: 0.0, ..p }).is_err());
        assert!(Search::new(Params { start: 0.0, ..p }).is_err());
        assert!(Search::new(Params { start: 10.0, max: 5.0, ..p }).is_err());
    }
}
