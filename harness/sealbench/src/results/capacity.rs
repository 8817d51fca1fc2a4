//! `capacity.json`: the steps of a capacity search and what it found. The search itself
//! is [`crate::verdict::capacity`].

use super::figure::{Metric, Stat};
use super::header::Header;
use super::summary::{Summary, Verdict};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Order of the step.
    pub index: usize,
    /// Offered aggregate rate (msgs/s), or client count with `--clients`.
    pub offered: f64,
    /// Offered aggregate rate, msgs/s (also in clients mode).
    pub offered_per_s: f64,
    /// Clients in the step.
    pub clients: usize,
    /// Delivered msgs/s.
    pub delivered_per_s: f64,
    /// e2e p50 / p99 / p99.9, µs.
    pub e2e_p50_us: Option<f64>,
    /// e2e p99, µs.
    pub e2e_p99_us: Option<f64>,
    /// e2e p99.9, µs.
    pub e2e_p999_us: Option<f64>,
    /// Lost messages.
    pub lost: u64,
    /// SLO verdicts.
    pub slos: Vec<Verdict>,
    /// Every SLO held.
    pub pass: bool,
    /// The generator could not keep its schedule (latencies not about the relay).
    pub saturated: bool,
    /// Other processes on the machine took part of its cores while the step sent: what
    /// the verdict said of them ([`super::others::other_work`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_work: Option<String>,
    /// The relay's CPU per delivered message in the step, µs: the embedded relay's
    /// threads, or an external relay's process CPU from its `/metrics` (`--relay-metrics`);
    /// absent for an external relay without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_cpu_us_per_msg: Option<f64>,
    /// Messages a second one relay core would carry at that cost (1 s ÷ CPU per message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_msgs_per_core_s: Option<f64>,
    /// The step's run directory (relative).
    pub dir: String,
}

impl Step {
    /// Step number `index` (from 1) at `offered` (msgs/s, or clients with `--clients`),
    /// run with `clients` clients into `dir`, from the run's summary.
    pub fn of(index: usize, offered: f64, clients: usize, dir: String, s: &Summary) -> Step {
        let e2e = s.latency.get(Metric::E2e.name());
        Step {
            index,
            offered,
            offered_per_s: s.throughput.offered_per_s,
            clients,
            delivered_per_s: s.throughput.delivered_per_s,
            e2e_p50_us: e2e.map(|l| l.get(Stat::P50)),
            e2e_p99_us: e2e.map(|l| l.get(Stat::P99)),
            e2e_p999_us: e2e.map(|l| l.get(Stat::P999)),
            lost: s.messages.lost,
            slos: s.thresholds.clone(),
            pass: s.thresholds_pass(),
            saturated: s.generator.saturated,
            other_work: super::others::other_work(s),
            relay_cpu_us_per_msg: s.generator.relay_cpu_us_per_msg,
            relay_msgs_per_core_s: s.generator.relay_cpu_us_per_msg.filter(|c| *c > 0.0).map(|c| 1e6 / c),
            dir,
        }
    }
}

/// `capacity.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// Layout version, kind (always `capacity`) and provenance.
    #[serde(flatten)]
    pub header: Header,
    /// The scenario scaled.
    pub scenario: Scenario,
    /// `rate` or `clients`.
    pub search: String,
    /// The SLOs.
    pub slos: Vec<String>,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The highest offered value that met every SLO with the generator keeping up; null
    /// when none did or when the generator saturated first.
    pub capacity: Option<f64>,
    /// The lowest value that broke an SLO (the bracket's top), if found.
    pub first_failure: Option<f64>,
    /// The lowest value at which the load generator saturated, if any.
    pub generator_limit: Option<f64>,
    /// The highest value that met every SLO with the generator keeping up.
    pub highest_passing: Option<f64>,
    /// How to read the result.
    pub conclusion: String,
    /// What to plan a fleet with: the relay's messages a second per core at the capacity
    /// step, and its caveat; absent when the relay's CPU was not measured (an external
    /// relay without `--relay-metrics`) or no step passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
}

impl Capacity {
    /// The fleet line of the step that `capacity` (or, without one, `highest_passing`)
    /// names: its relay messages a second per core and what they rest on.
    pub fn fleet_line(steps: &[Step], at: Option<f64>) -> Option<String> {
        let at = at?;
        let step = steps.iter().rfind(|s| s.pass && !s.saturated && s.offered == at)?;
        let (cpu, per_core) = (step.relay_cpu_us_per_msg?, step.relay_msgs_per_core_s?);
        Some(format!(
            "plan a fleet with {per_core:.0} msgs/s per relay core ({cpu:.1} µs of relay CPU per message at {:.0} msgs/s \
             delivered, e2e p99 {}); caveat: one relay process on this machine, its cores shared with the generator \
             unless pinned, and per-core figures assume the relay scales linearly with cores — confirm on the target \
             hardware at two sizes",
            step.delivered_per_s,
            step.e2e_p99_us.map_or("-".into(), crate::results::figure::format_us)
        ))
    }
}

/// Writes `capacity.json` into `dir`; returns its path.
///
/// # Errors
/// When the file cannot be written (the message names it).
pub fn write(dir: &std::path::Path, c: &Capacity) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join("capacity.json");
    crate::output::write_json(&p, c)?;
    Ok(p)
}
