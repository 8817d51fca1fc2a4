//! `sealbench capacity SCENARIO --slo 'e2e.p99<20ms'`: asks the capacity search
//! ([`crate::verdict::capacity`]) for each step, runs it, feeds back what it showed, then
//! writes `capacity.json` and its presentation.

use crate::cli::CapacityArgs;
use crate::commands::run::execute_quiet;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::capacity::{self, Capacity, Step};
use crate::results::figure::format_us;
use crate::scenario::Scenario;
use crate::verdict::capacity::{Next, Observation, Params, Search, StepSpec};
use crate::verdict::threshold::{self, Threshold};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// Runs `sealbench capacity`.
///
/// # Errors
/// Exit 2 for bad arguments; exit 1 when a step cannot run.
pub fn run(args: &CapacityArgs) -> Outcome {
    let base = Scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
    let slos = threshold::parse_all(&args.slo).map_err(Failure::usage)?;
    let per_conv = base.plan().map_err(Failure::usage)?.rate_per_conversation;
    let clients_mode = args.clients;
    let start = args.start.unwrap_or(if clients_mode {
        base.clients.count as f64
    } else {
        per_conv * (base.clients.count / 2) as f64
    });
    let search = Search::new(Params {
        start,
        max: args.max.unwrap_or(if clients_mode { 9_000.0 } else { 1e7 }),
        factor: args.factor,
        precision: args.precision,
        max_steps: args.max_steps,
        clients: clients_mode,
    })
    .map_err(Failure::usage)?;
    let dir =
        output::result_dir(args.out.as_deref(), &format!("{}-capacity-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::collect();
    let mut steps: Vec<Step> = Vec::new();
    let found = loop {
        let seen: Vec<Observation> =
            steps.iter().map(|s| Observation { offered: s.offered, pass: s.pass, saturated: s.saturated }).collect();
        match search.next_step(&seen) {
            Next::Run(spec) => steps.push(run_step(args, per_conv, &slos, &dir, spec)?),
            Next::Done(found) => break found,
        }
    };
    let cap = Capacity {
        schema_version: 1,
        kind: "capacity".into(),
        provenance,
        scenario: base,
        search: if clients_mode { "clients" } else { "rate" }.into(),
        slos: args.slo.clone(),
        steps,
        capacity: found.capacity,
        first_failure: found.first_failure,
        generator_limit: found.generator_limit,
        highest_passing: found.highest_passing,
        conclusion: found.conclusion,
    };
    capacity::write(&dir, &cap)?;
    let md = present::write_capacity(&dir, &cap)?;
    println!("{md}");
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs one step of the search into `dir/stepNN-<value>/` and prints how it went.
fn run_step(
    args: &CapacityArgs,
    per_conv: f64,
    slos: &[Threshold],
    dir: &Path,
    spec: StepSpec,
) -> Result<Step, Failure> {
    let x = spec.offered;
    let mut sets = args.set.clone();
    sets.push(format!("duration=\"{}\"", args.step));
    sets.push(format!("warmup=\"{}\"", args.warmup));
    if args.clients {
        sets.push(format!("clients.count={}", x as u64));
        sets.push(format!("traffic.rate={per_conv}"));
        sets.push("traffic.aggregate_rate=".into());
    } else {
        sets.push(format!("traffic.aggregate_rate={x}"));
        sets.push("traffic.rate=".into());
    }
    let scenario = Scenario::load(&args.scenario, &sets).map_err(Failure::usage)?;
    let name = format!("step{:02}-{}", spec.index, x as u64);
    eprintln!("[step {}] offered {} {}", spec.index, x, if args.clients { "clients" } else { "msgs/s" });
    let s = execute_quiet(&scenario, &dir.join(&name), slos).with_context(|| format!("capacity {name}"))?;
    let step = Step::of(spec.index, x, scenario.clients.count, name, &s);
    eprintln!(
        "         delivered {:.0}/s, e2e p99 {}, {}{}",
        step.delivered_per_s,
        step.e2e_p99_us.map_or("-".into(), format_us),
        if step.pass { "SLO met" } else { "SLO broken" },
        if step.saturated { " — GENERATOR SATURATED" } else { "" }
    );
    Ok(step)
}
