//! `sealbench capacity SCENARIO --slo 'e2e.p99<20ms'`: asks the capacity search
//! ([`crate::verdict::capacity`]) for each step, runs it, feeds back what it showed, then
//! writes `capacity.json` and its presentation. With `--method ramp`, the steps are the
//! stages of one run (a stepped ramp), each judged on its own stage's figures by the
//! same rules.

use crate::cli::{CapacityArgs, CapacityMode};
use crate::commands::run::load_plan;
use crate::commands::run::{execute_quiet, execute_quiet_outcome};
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::capacity::{self, Capacity, Step};
use crate::results::figure::format_us;
use crate::results::header::Header;
use crate::results::stages;
use crate::scenario::{Edits, Plan, Scenario, Stage};
use crate::verdict::capacity::{Next, Observation, Params, Search, StepSpec};
use crate::verdict::saturation;
use crate::verdict::threshold::{self, Threshold};
use anyhow::{Context, anyhow};
use std::path::Path;
use std::process::ExitCode;

/// Runs `sealbench capacity`.
///
/// # Errors
/// Exit 2 for bad arguments; exit 1 when a step cannot run.
pub fn run(args: &CapacityArgs) -> Outcome {
    let common = &args.common;
    // `--duration` is each step's measured time here, not the scenario's.
    let edits = Edits { duration: None, transport: args.transport, ..common.edits() };
    let plan = load_plan(&common.scenario, &common.set, &edits).map_err(Failure::usage)?;
    crate::driver::preflight(&plan).map_err(Failure::usage)?;
    // The SLOs: the scenario's thresholds, with --slo added (or alone, --slo-only).
    let mut exprs = if args.slo_only { Vec::new() } else { plan.scenario.thresholds.clone() };
    let same = |a: &str, b: &str| a.split_whitespace().collect::<String>() == b.split_whitespace().collect::<String>();
    for e in &args.slo {
        if !exprs.iter().any(|x| same(x, e)) {
            exprs.push(e.clone());
        }
    }
    if exprs.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no SLO to search against: give --slo EXPR (e.g. 'e2e.p99<25ms'), or thresholds in the scenario"
        )));
    }
    let slos = threshold::parse_for(&exprs, &plan.tags()).map_err(Failure::usage)?;
    let per_conv = plan.rate_per_conversation;
    let conversations = plan.conversations();
    let base = plan.scenario;
    let clients_mode = args.over_clients();
    let start =
        args.start.unwrap_or(if clients_mode { base.clients.count as f64 } else { per_conv * conversations as f64 });
    let search = Search::new(Params {
        start,
        max: args.max.unwrap_or(if clients_mode { 9_000.0 } else { 1e7 }),
        factor: args.factor,
        precision: args.precision,
        max_steps: args.max_steps,
        clients: clients_mode,
        confirm: !args.no_confirm,
    })
    .map_err(Failure::usage)?;
    if args.method == CapacityMode::Ramp && clients_mode {
        return Err(Failure::usage(anyhow!(
            "--method ramp steps the message rate within one run; --search clients needs one run per step (--method runs)"
        )));
    }
    let max = args.max.unwrap_or(if clients_mode { 9_000.0 } else { 1e7 });
    let plan_line = plan_line(args, &base, start, max);
    if common.dry_run {
        crate::output::stdout(&format!("capacity of `{}` is valid: {plan_line}\n", base.name));
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("capacity of `{}`: {plan_line}", base.name);
    let mut batch = crate::commands::run::live::Batch::start(&common.live, !common.no_plots)?;
    let dir =
        output::result_dir(common.out.as_deref(), &format!("{}-capacity-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::with_calibration();
    let observe = |steps: &[Step]| -> Vec<Observation> {
        steps.iter().map(|s| Observation { offered: s.offered, pass: s.pass, saturated: s.saturated }).collect()
    };
    let (steps, found) = if args.method == CapacityMode::Ramp {
        let steps = run_ramp(args, &base, &slos, &dir, &search.ramp(), &mut batch)?;
        let found = search.conclude(&observe(&steps));
        (steps, found)
    } else {
        let mut steps: Vec<Step> = Vec::new();
        let found = loop {
            match search.next_step(&observe(&steps)) {
                Next::Run(spec) => steps.push(run_step(args, &base, per_conv, &slos, &dir, spec, &mut batch)?),
                Next::Done(found) => break found,
            }
        };
        (steps, found)
    };
    let conclusion = with_other_work(found.conclusion, &steps);
    let steps_for_fleet = steps.clone();
    let cap = Capacity {
        header: Header::new(1, "capacity", provenance),
        scenario: base,
        search: match (clients_mode, args.method) {
            (true, _) => "clients",
            (false, CapacityMode::Runs) => "rate",
            (false, CapacityMode::Ramp) => "rate-ramp",
        }
        .into(),
        slos: exprs.clone(),
        steps,
        capacity: found.capacity,
        first_failure: found.first_failure,
        generator_limit: found.generator_limit,
        highest_passing: found.highest_passing,
        conclusion,
        fleet: Capacity::fleet_line(&steps_for_fleet, found.capacity.or(found.highest_passing)),
    };
    capacity::write(&dir, &cap)?;
    let md = present::write_capacity(&dir, &cap)?;
    crate::output::stdout(&format!("{md}\nresults: {}\n", dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// The search's plan in one line, with an estimate of its duration: the growth steps from
/// `start` by `factor` to the first failure (at most to `max`), then the bisection to
/// `precision`; each step a run of warm-up + duration + cool-down and its set-up.
fn plan_line(args: &CapacityArgs, base: &Scenario, start: f64, max: f64) -> String {
    let growth = ((max / start.max(1.0)).ln() / args.factor.max(1.000_001).ln()).ceil().max(0.0) as usize + 1;
    let bisect = ((args.factor - 1.0).max(1e-9) / args.precision.max(1e-9)).log2().ceil().max(0.0) as usize;
    let steps = (growth + bisect).min(args.max_steps);
    let per_step = args.warmup + args.step_duration() + base.cooldown + std::time::Duration::from_secs(2);
    let what = if args.over_clients() { "clients" } else { "msgs/s" };
    format!(
        "search over {what} from {start:.0} by ×{} up to {max:.0}, bisecting to {:.0} %, at most {} steps of {:?} + \
         {:?} warm-up ({}); at most about {:.0} s (each step ≈ {:.0} s with set-up and cool-down)",
        args.factor,
        100.0 * args.precision,
        args.max_steps,
        args.step_duration(),
        args.warmup,
        if args.method == CapacityMode::Ramp { "one run, a stage per step" } else { "a run per step" },
        steps as f64 * per_step.as_secs_f64(),
        per_step.as_secs_f64()
    )
}

/// Runs one step of the search into `dir/stepNN-<value>/` and prints how it went.
fn run_step(
    args: &CapacityArgs,
    base: &Scenario,
    per_conv: f64,
    slos: &[Threshold],
    dir: &Path,
    spec: StepSpec,
    batch: &mut crate::commands::run::live::Batch,
) -> Result<Step, Failure> {
    let x = spec.offered;
    // Each step is a typed edit of the one scenario.
    let mut scenario = base.clone();
    (scenario.duration, scenario.warmup) = (args.step_duration(), args.warmup);
    scenario.stages.clear(); // a step is one flat rate
    if args.over_clients() {
        scenario.clients.count = x as usize;
        scenario.traffic.set_rate(per_conv);
    } else {
        scenario.traffic.set_aggregate_rate(x);
    }
    let plan = Plan::new(scenario)
        .map_err(|e| Failure::usage(anyhow!("{}: step {x}: {e:#}", args.common.scenario.display())))?;
    let name = format!("step{:02}-{}{}", spec.index, x as u64, if spec.confirm { "-again" } else { "" });
    eprintln!(
        "[step {}] offered {} {}{}",
        spec.index,
        x,
        if args.over_clients() { "clients" } else { "msgs/s" },
        if spec.confirm { " (again, to confirm)" } else { "" }
    );
    let s = execute_quiet(&plan, &dir.join(&name), slos, batch).with_context(|| format!("capacity {name}"))?;
    let step = Step::of(spec.index, x, plan.scenario.clients.count, name, &s);
    eprintln!(
        "         delivered {:.0}/s, e2e p99 {}, {}{}",
        step.delivered_per_s,
        step.e2e_p99_us.map_or("-".into(), format_us),
        if step.pass { "SLO met" } else { "SLO broken" },
        if step.saturated { " — GENERATOR SATURATED" } else { "" }
    );
    if let Some(w) = &step.other_work {
        eprintln!("         note: {w}");
    }
    Ok(step)
}

/// `--method ramp`: one run whose stages are the steps (after one unmeasured warm-up stage
/// at the first rate), into `dir/ramp/`; each stage is judged as a step would be, on its
/// own figures ([`stages::summary_of`]): saturation from its seconds, then the SLOs.
fn run_ramp(
    args: &CapacityArgs,
    base: &Scenario,
    slos: &[Threshold],
    dir: &Path,
    rates: &[f64],
    batch: &mut crate::commands::run::live::Batch,
) -> Result<Vec<Step>, Failure> {
    let mut scenario = base.clone();
    (scenario.duration, scenario.warmup) = (Default::default(), Default::default());
    (scenario.traffic.rate, scenario.traffic.aggregate_rate) = (None, None);
    let flat = |name: String, duration, rate: f64, measure| Stage {
        name: Some(name),
        duration,
        rate: Some(rate),
        from: Some(rate),
        measure,
        clients: None,
    };
    scenario.stages = Vec::new();
    if !args.warmup.is_zero() {
        scenario.stages.push(flat("warm-up".into(), args.warmup, rates[0], false));
    }
    let first_step = scenario.stages.len();
    for (i, &x) in rates.iter().enumerate() {
        scenario.stages.push(flat(format!("step{:02}-{}", i + 1, x as u64), args.step_duration(), x, true));
    }
    let plan =
        Plan::new(scenario).map_err(|e| Failure::usage(anyhow!("{}: ramp: {e:#}", args.common.scenario.display())))?;
    let total: std::time::Duration = plan.scenario.stages.iter().map(|s| s.duration).sum();
    eprintln!("[ramp] {} steps of {:?} in one run ({total:?}): {:?} msgs/s", rates.len(), args.step_duration(), rates);
    let (run, outcome) = execute_quiet_outcome(&plan, &dir.join("ramp"), &[], batch).context("capacity ramp")?;
    let mut steps = Vec::with_capacity(rates.len());
    for (i, &x) in rates.iter().enumerate() {
        let stage = first_step + i;
        let mut s = stages::summary_of(&run, &plan.profile, &outcome.seconds, stage);
        saturation::judge(&mut s, &stages::seconds_of(&outcome.seconds, stage));
        threshold::judge(&mut s, slos);
        let step = Step::of(i + 1, x, plan.scenario.clients.count, "ramp".into(), &s);
        eprintln!(
            "[step {}] offered {x} msgs/s: delivered {:.0}/s, e2e p99 {}, {}{}",
            i + 1,
            step.delivered_per_s,
            step.e2e_p99_us.map_or("-".into(), format_us),
            if step.pass { "SLO met" } else { "SLO broken" },
            if step.saturated { " — GENERATOR SATURATED" } else { "" }
        );
        if let Some(w) = &step.other_work {
            eprintln!("         note: {w}");
        }
        steps.push(step);
    }
    Ok(steps)
}

/// The search's conclusion, saying so when other processes took part of the machine's
/// cores during some step: those steps measured the sharing too, so the figure found may
/// be low (a quiet machine is the check).
fn with_other_work(conclusion: String, steps: &[Step]) -> String {
    let shared: Vec<String> = steps.iter().filter(|s| s.other_work.is_some()).map(|s| s.index.to_string()).collect();
    if shared.is_empty() {
        return conclusion;
    }
    format!(
        "{conclusion} — but other processes took part of this machine's cores during step(s) {}: those steps \
         measured the sharing too; rerun on a quiet machine before relying on the figure",
        shared.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: usize, other_work: Option<&str>) -> Step {
        Step {
            index,
            offered: 1000.0 * index as f64,
            offered_per_s: 1000.0 * index as f64,
            clients: 10,
            delivered_per_s: 1000.0 * index as f64,
            e2e_p50_us: None,
            e2e_p99_us: None,
            e2e_p999_us: None,
            lost: 0,
            slos: Vec::new(),
            pass: true,
            saturated: false,
            other_work: other_work.map(String::from),
            relay_cpu_us_per_msg: None,
            relay_msgs_per_core_s: None,
            dir: format!("step{index:02}"),
        }
    }

    #[test]
    fn a_conclusion_names_the_steps_that_shared_the_machine() {
        let quiet = [step(1, None), step(2, None)];
        assert_eq!(with_other_work("capacity 2000 msgs/s".into(), &quiet), "capacity 2000 msgs/s");
        let shared = [step(1, None), step(2, Some("other processes used 1.2 …")), step(3, Some("…"))];
        let c = with_other_work("capacity 2000 msgs/s".into(), &shared);
        assert!(c.starts_with("capacity 2000 msgs/s — but other processes") && c.contains("step(s) 2, 3"), "{c}");
    }
}
