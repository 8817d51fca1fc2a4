//! `sealbench capacity SCENARIO --slo 'e2e.p99<20ms'`: steps the offered aggregate rate
//! (or, with `--clients`, the number of clients) geometrically until an SLO breaks, then
//! bisects; reports the highest value that met every SLO. Steps where the load generator
//! itself saturated say nothing about the relay: the search brackets below them, and when
//! the generator saturates before any SLO breaks, no capacity is claimed.

use crate::cli::CapacityArgs;
use crate::commands::run::execute_quiet;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::provenance::Provenance;
use crate::scenario::Scenario;
use crate::verdict::threshold::{Threshold, Verdict};
use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::process::ExitCode;

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
    /// The step's run directory (relative).
    pub dir: String,
}

/// `capacity.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// Layout version.
    pub schema_version: u32,
    /// Always `capacity`.
    pub kind: String,
    /// Machine and software.
    pub provenance: Provenance,
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
}

/// Runs `sealbench capacity`.
///
/// # Errors
/// Exit 2 for bad arguments; exit 1 when a step cannot run.
pub fn run(args: &CapacityArgs) -> Outcome {
    let base = Scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
    let slos: Vec<Threshold> =
        args.slo.iter().map(|s| Threshold::parse(s)).collect::<Result<_, _>>().map_err(Failure::usage)?;
    if args.factor.is_nan() || args.factor <= 1.0 || args.precision.is_nan() || args.precision <= 0.0 {
        return Err(Failure::usage(anyhow!("--factor must be > 1 and --precision > 0")));
    }
    let plan = base.plan().map_err(Failure::usage)?;
    let per_conv = plan.rate_per_conversation;
    let conversations = (base.clients.count / 2) as f64;
    let clients_mode = args.clients;
    let start = args.start.unwrap_or(if clients_mode { base.clients.count as f64 } else { per_conv * conversations });
    let max = args.max.unwrap_or(if clients_mode { 9_000.0 } else { 1e7 });
    if !(start > 0.0 && max >= start) {
        return Err(Failure::usage(anyhow!("--start must be positive and at most --max")));
    }
    let dir =
        output::result_dir(args.out.as_deref(), &format!("{}-capacity-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::collect();
    let mut steps: Vec<Step> = Vec::new();
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    let mut generator_limit: Option<f64> = None;
    let mut x = start;
    while steps.len() < args.max_steps {
        let x_run = if clients_mode { ((x / 2.0).round() * 2.0).max(2.0) } else { x.round().max(1.0) };
        if steps.iter().any(|s| (s.offered - x_run).abs() < 0.5) {
            break; // the bracket cannot be split further at this resolution
        }
        let mut sets = args.set.clone();
        sets.push(format!("duration=\"{}\"", args.step));
        sets.push(format!("warmup=\"{}\"", args.warmup));
        if clients_mode {
            sets.push(format!("clients.count={}", x_run as u64));
            sets.push(format!("traffic.rate={per_conv}"));
            sets.push("traffic.aggregate_rate=".into());
        } else {
            sets.push(format!("traffic.aggregate_rate={x_run}"));
            sets.push("traffic.rate=".into());
        }
        let scenario = Scenario::load(&args.scenario, &sets).map_err(Failure::usage)?;
        let name = format!("step{:02}-{}", steps.len() + 1, x_run as u64);
        eprintln!("[step {}] offered {} {}", steps.len() + 1, x_run, if clients_mode { "clients" } else { "msgs/s" });
        let s = execute_quiet(&scenario, &dir.join(&name), &slos).with_context(|| format!("capacity {name}"))?;
        let e2e = s.latency.get("e2e");
        let pass = s.thresholds_pass();
        let step = Step {
            index: steps.len() + 1,
            offered: x_run,
            offered_per_s: s.throughput.offered_per_s,
            clients: scenario.clients.count,
            delivered_per_s: s.throughput.delivered_per_s,
            e2e_p50_us: e2e.map(|l| l.p50_us),
            e2e_p99_us: e2e.map(|l| l.p99_us),
            e2e_p999_us: e2e.map(|l| l.p999_us),
            lost: s.messages.lost,
            slos: s.thresholds.clone(),
            pass,
            saturated: s.generator.saturated,
            dir: name,
        };
        eprintln!(
            "         delivered {:.0}/s, e2e p99 {}, {}{}",
            step.delivered_per_s,
            step.e2e_p99_us.map_or("-".into(), crate::present::console::fmt_us),
            if pass { "SLO met" } else { "SLO broken" },
            if step.saturated { " — GENERATOR SATURATED" } else { "" }
        );
        let saturated = step.saturated;
        steps.push(step);
        if saturated {
            // The generator could not keep up: nothing at or above this value says anything
            // about the relay. Keep bisecting below it to find how far the SLO provably holds.
            generator_limit = Some(generator_limit.map_or(x_run, |g: f64| g.min(x_run)));
        } else if pass {
            good = Some(good.map_or(x_run, |g: f64| g.max(x_run)));
        } else {
            bad = Some(bad.map_or(x_run, |b: f64| b.min(x_run)));
        }
        let upper = match (bad, generator_limit) {
            (Some(b), Some(g)) => Some(b.min(g)),
            (b, g) => b.or(g),
        };
        x = match (good, upper) {
            (Some(g), None) => {
                if g >= max {
                    break;
                }
                (g * args.factor).min(max)
            }
            (None, Some(u)) => u / args.factor,
            (Some(g), Some(u)) => {
                if (u - g) / g <= args.precision {
                    break;
                }
                (g + u) / 2.0
            }
            (None, None) => break,
        };
        if x < 1.0 {
            break;
        }
    }
    let unit = if clients_mode { "clients" } else { "msgs/s" };
    let slo_limited = match (bad, generator_limit) {
        (Some(b), Some(g)) => b < g,
        (Some(_), None) => true,
        _ => false,
    };
    let (capacity, conclusion) = match (good, slo_limited, generator_limit) {
        (Some(g), true, _) => {
            (Some(g), format!("capacity {g} {unit}: every SLO held there; {} {unit} broke one", bad.unwrap_or(g)))
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
                steps.iter().map(|s| s.offered).fold(f64::INFINITY, f64::min)
            ),
        ),
    };
    let cap = Capacity {
        schema_version: 1,
        kind: "capacity".into(),
        provenance,
        scenario: base,
        search: if clients_mode { "clients" } else { "rate" }.into(),
        slos: args.slo.clone(),
        steps,
        capacity,
        first_failure: bad,
        generator_limit,
        highest_passing: good,
        conclusion,
    };
    output::write_json(&dir.join("capacity.json"), &cap)?;
    let md = markdown(&cap);
    output::write_atomic(&dir.join("capacity.md"), md.as_bytes())?;
    crate::present::plot::capacity::render_all(&dir, &cap)?;
    crate::present::html::write_capacity(&dir, &cap, &md)?;
    println!("{md}");
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The step table and the conclusion.
pub fn markdown(c: &Capacity) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## sealbench capacity — `{}`, SLO: {}\n", c.scenario.name, c.slos.join(" and "));
    let _ = writeln!(s, "**{}**\n", c.conclusion);
    let what = if c.search == "clients" { "clients" } else { "offered msg/s" };
    let _ = writeln!(
        s,
        "| step | {what} | delivered msg/s | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | lost | SLO | generator |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    let ms = |v: Option<f64>| v.map_or("—".into(), |u| format!("{:.3}", u / 1e3));
    for st in &c.steps {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            st.index,
            st.offered,
            st.delivered_per_s,
            ms(st.e2e_p50_us),
            ms(st.e2e_p99_us),
            ms(st.e2e_p999_us),
            st.lost,
            if st.pass { "met" } else { "broken" },
            if st.saturated { "SATURATED" } else { "ok" }
        );
    }
    s
}
