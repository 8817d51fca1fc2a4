//! `sealbench capacity SCENARIO --slo 'e2e.p99<20ms'`: asks the capacity search
//! ([`crate::verdict::capacity`]) for each step, runs it, feeds back what it showed, then
//! writes `capacity.json` and its presentation.

use crate::cli::CapacityArgs;
use crate::commands::run::execute_quiet;
use crate::commands::run::load_plan;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::capacity::{self, Capacity, Step};
use crate::results::figure::format_us;
use crate::scenario::{Edits, Plan, Scenario};
use crate::verdict::capacity::{Next, Observation, Params, Search, StepSpec};
use crate::verdict::threshold::{self, Threshold};
use anyhow::{Context, anyhow};
use std::path::Path;
use std::process::ExitCode;

/// Runs `sealbench capacity`.
///
/// # Errors
/// Exit 2 for bad arguments; exit 1 when a step cannot run.
pub fn run(args: &CapacityArgs) -> Outcome {
    let plan = load_plan(&args.scenario, &args.set, &Edits::default()).map_err(Failure::usage)?;
    let slos = threshold::parse_for(&args.slo, &plan.tags()).map_err(Failure::usage)?;
    let per_conv = plan.rate_per_conversation;
    let base = plan.scenario;
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
            Next::Run(spec) => steps.push(run_step(args, &base, per_conv, &slos, &dir, spec)?),
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
    crate::output::stdout(&format!("{md}\nresults: {}\n", dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// Runs one step of the search into `dir/stepNN-<value>/` and prints how it went.
fn run_step(
    args: &CapacityArgs,
    base: &Scenario,
    per_conv: f64,
    slos: &[Threshold],
    dir: &Path,
    spec: StepSpec,
) -> Result<Step, Failure> {
    let x = spec.offered;
    // Each step is a typed edit of the one scenario.
    let mut scenario = base.clone();
    (scenario.duration, scenario.warmup) = (args.step, args.warmup);
    if args.clients {
        scenario.clients.count = x as usize;
        scenario.traffic.set_rate(per_conv);
    } else {
        scenario.traffic.set_aggregate_rate(x);
    }
    let plan =
        Plan::new(scenario).map_err(|e| Failure::usage(anyhow!("{}: step {x}: {e:#}", args.scenario.display())))?;
    let name = format!("step{:02}-{}", spec.index, x as u64);
    eprintln!("[step {}] offered {} {}", spec.index, x, if args.clients { "clients" } else { "msgs/s" });
    let s = execute_quiet(&plan, &dir.join(&name), slos).with_context(|| format!("capacity {name}"))?;
    let step = Step::of(spec.index, x, plan.scenario.clients.count, name, &s);
    eprintln!(
        "         delivered {:.0}/s, e2e p99 {}, {}{}",
        step.delivered_per_s,
        step.e2e_p99_us.map_or("-".into(), format_us),
        if step.pass { "SLO met" } else { "SLO broken" },
        if step.saturated { " — GENERATOR SATURATED" } else { "" }
    );
    Ok(step)
}
