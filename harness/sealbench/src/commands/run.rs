//! `sealbench run SCENARIO`: the load driver, with live progress, result files and an exit
//! code that reflects the thresholds.

use crate::cli::RunArgs;
use crate::driver::{self, RunOptions};
use crate::error::{EXIT_THRESHOLDS, Failure, Outcome};
use crate::output;
use crate::present::{self, console};
use crate::provenance::Provenance;
use crate::results::{self, summary::Summary};
use crate::scenario::{Edits, Plan, Scenario};
use crate::verdict::threshold::{self, Threshold};
use anyhow::{Context, anyhow};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod live;

/// Runs `sealbench run`.
///
/// # Errors
/// Exit 2 for a bad scenario or override; exit 1 when the run cannot start or results
/// cannot be written.
pub fn run(args: &RunArgs) -> Outcome {
    let plan = load_plan(&args.common.scenario, &args.common.set, &args.edits()).map_err(Failure::usage)?;
    let plan = match args.part().map_err(|e| Failure::usage(anyhow!(e)))? {
        Some(part) => plan.with_part(part).map_err(Failure::usage)?,
        None => plan,
    };
    let start_at = args.start_at().map_err(|e| Failure::usage(anyhow!(e)))?;
    let cpus = args.cpus.clone().unwrap_or_default();
    cpus.check().map_err(|e| Failure::usage(anyhow!("--cpus {e}")))?;
    if cpus.relay.is_some() && !matches!(plan.scenario.relay.url, crate::scenario::RelayTarget::Embedded) {
        return Err(Failure::usage(anyhow!(
            "--cpus {cpus}: the relay is external (relay.url); pin it where it runs (e.g. `taskset -c`), and give only driver=LIST here"
        )));
    }
    crate::driver::check_relay_threads(&plan, args.relay_threads.map(usize::from), &cpus).map_err(Failure::usage)?;
    let scenario = &plan.scenario;
    // What this machine allows (open files, ephemeral ports) is checked before anything
    // else, and by --dry-run too: a dry run that says "valid" must not be refused by the run.
    crate::driver::preflight(&plan).map_err(Failure::usage)?;
    let thresholds = threshold::parse_for(&scenario.thresholds, &plan.tags())
        .map_err(|e| Failure::usage(anyhow!("{}: thresholds: {e:#}", args.common.scenario.display())))?;
    if args.common.dry_run {
        if let Some(why) = crate::driver::resolves(&plan) {
            eprintln!("warning: {why}: a run from this machine would fail to connect (exit 1)");
        }
        output::stdout(&dry_run(&plan, start_at));
        return Ok(ExitCode::SUCCESS);
    }
    let dir =
        output::result_dir(args.common.out.as_deref(), &format!("{}-{}", crate::timefmt::compact_now(), scenario.name))
            .map_err(Failure::usage)?;
    let interrupt = Arc::new(AtomicBool::new(false));
    install_ctrl_c(interrupt.clone());
    let options = RunOptions {
        shards: args.shards,
        relay_threads: args.relay_threads.map(usize::from),
        interrupt: Some(interrupt.clone()),
        stall: None,
        start_at,
        cpus,
    };
    if let Some(why) = plan.unencrypted() {
        let p = plan.scenario.crypto.protocol;
        eprintln!("WARNING: protocol {p}: this run sends UNENCRYPTED messages ({why})");
    }
    let repeat = args.repeat.max(1);
    if repeat == 1 {
        let done = run_once(args, &plan, &options, &thresholds, &dir, &interrupt).map(|(code, _)| code);
        if done.is_err() {
            // A run that failed before writing anything leaves no empty directory behind.
            output::remove_if_empty(&dir);
        }
        return done;
    }
    // `--repeat N`: N runs one after the other, nothing interleaved, each a whole result
    // directory; `repeats.json` lists them and `compare` judges on their spread.
    let mut worst = ExitCode::SUCCESS;
    let mut runs = Vec::new();
    for i in 1..=repeat {
        eprintln!("[run {i}/{repeat}]");
        let name = format!("run-{i}");
        let sub = dir.join(&name);
        std::fs::create_dir_all(&sub).map_err(|e| Failure::usage(anyhow!("creating {}: {e}", sub.display())))?;
        let (code, summary) = run_once(args, &plan, &options, &thresholds, &sub, &interrupt)?;
        runs.push((name, summary));
        if code != ExitCode::SUCCESS {
            worst = code;
        }
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
    }
    let r = crate::results::repeats::Repeats::of(&runs);
    crate::results::repeats::write(&dir, &r)?;
    output::stdout(&format!("{}results: {}\n", crate::results::repeats::table(&r), dir.display()));
    Ok(worst)
}

/// One run of `plan` into `dir`: the live view, the result files, the table; its exit code
/// and summary.
fn run_once(
    args: &RunArgs,
    plan: &Plan,
    options: &RunOptions,
    thresholds: &[Threshold],
    dir: &std::path::Path,
    interrupt: &AtomicBool,
) -> Result<(ExitCode, Summary), Failure> {
    let scenario = &plan.scenario;
    let provenance = Provenance::with_calibration();
    let clients = plan.local().1;
    match plan.part {
        Some(p) => eprintln!(
            "sealbench run `{}`, part {p}: {clients} of {} clients → results in {}",
            scenario.name,
            scenario.clients.count,
            dir.display()
        ),
        None => eprintln!("sealbench run `{}`: {} clients → results in {}", scenario.name, clients, dir.display()),
    }
    let mut watch = live::Watch::start(&args.common.live, plan)?;
    let outcome = driver::run(plan, options, |sec, total| watch.on_second(sec, total));
    watch.finish();
    let outcome =
        outcome.map_err(|e| Failure::from(e.context(format!("running {}", args.common.scenario.display()))))?;
    let summary = summarise(plan, &outcome, thresholds, provenance);
    let files = write_outputs(dir, &outcome, &summary, !args.common.no_plots)?;
    watch.report(&summary, dir);
    let table = format!("{}  wrote {} files\n", console::table(&summary, &dir.display().to_string()), files.len());
    if watch.human_on_stderr() {
        eprint!("{table}")
    } else {
        output::stdout(&table)
    }
    if interrupt.load(Ordering::Relaxed) {
        return Ok((ExitCode::from(130), summary));
    }
    if !summary.thresholds_pass() {
        eprintln!("thresholds failed: exit {EXIT_THRESHOLDS}");
        return Ok((ExitCode::from(EXIT_THRESHOLDS), summary));
    }
    if let Some(why) = &outcome.aborted {
        return Err(Failure::from(anyhow!("the run was cut short: {why} (results were written)")));
    }
    Ok((ExitCode::SUCCESS, summary))
}

/// What `run --dry-run` says: the run this process would make.
fn dry_run(plan: &Plan, start_at: Option<std::time::SystemTime>) -> String {
    let s = &plan.scenario;
    let (chats, devices) = plan.local();
    let part = plan.part.map_or_else(|| "the whole run".to_owned(), |p| format!("part {p}"));
    let start = start_at
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| "when set up".to_owned(), |d| format!("at {:.3} (Unix seconds)", d.as_secs_f64()));
    format!(
        "scenario `{}` is valid: {part}: {chats} of {} conversations, {devices} of {} clients, {:.1} of {:.1} msgs/s \
         offered; relay {}; steady phase starts {start}\n",
        s.name,
        plan.conversations(),
        s.clients.count,
        plan.local_offered_rate(),
        plan.offered_rate(),
        s.relay.url,
    )
}

/// The first Ctrl-C sets `flag` (the run ends early and writes its results); a second one
/// exits at once.
fn install_ctrl_c(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            crate::signals::wait_for_stop().await;
            eprintln!("\ninterrupted: stopping and writing results (Ctrl-C again to quit at once)");
            flag.store(true, Ordering::Relaxed);
            crate::signals::wait_for_stop().await;
            std::process::exit(130);
        });
    });
}

/// The summary of a run, judged.
fn summarise(plan: &Plan, outcome: &driver::Outcome, thresholds: &[Threshold], provenance: Provenance) -> Summary {
    let mut summary = Summary::build(plan, outcome, provenance);
    crate::verdict::judge_run(&mut summary, &outcome.seconds, thresholds);
    summary
}

/// Writes a run's data files, then (unless `plots` is false) its plots and `report.html`.
///
/// # Errors
/// When a file cannot be written (the message names it).
fn write_outputs(
    dir: &std::path::Path,
    outcome: &driver::Outcome,
    summary: &Summary,
    plots: bool,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = results::write_run(dir, outcome, summary).context("writing results")?;
    if plots {
        files.extend(present::write_run(dir, outcome, summary).context("writing results")?);
    } else {
        // A directory reused with --no-plots must not show the last run's report and plots
        // beside this run's summary: they would be read as this run's.
        output::remove_stale_presentation(dir).context("removing the previous run's plots")?;
    }
    Ok(files)
}

/// Runs `scenario` quietly (one plain progress line every 5 s) into `dir` and returns its
/// summary: what `matrix` and `capacity` do per cell or step.
///
/// # Errors
/// When the run cannot start or its results cannot be written.
pub fn execute_quiet(
    plan: &Plan,
    dir: &std::path::Path,
    thresholds: &[Threshold],
    batch: &mut live::Batch,
) -> anyhow::Result<Summary> {
    execute_quiet_outcome(plan, dir, thresholds, batch).map(|(summary, _)| summary)
}

/// As [`execute_quiet`], also returning the run's outcome (its seconds, for judging a
/// staged run stage by stage).
///
/// # Errors
/// As [`execute_quiet`].
pub fn execute_quiet_outcome(
    plan: &Plan,
    dir: &std::path::Path,
    thresholds: &[Threshold],
    batch: &mut live::Batch,
) -> anyhow::Result<(Summary, driver::Outcome)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let provenance = Provenance::collect();
    let mut watch = live::Watch::in_batch(batch, plan);
    let outcome = driver::run(plan, &RunOptions::default(), |sec, total| watch.on_second(sec, total));
    watch.end_in(batch);
    let outcome = outcome?;
    let summary = summarise(plan, &outcome, thresholds, provenance);
    write_outputs(dir, &outcome, &summary, batch.plots)?;
    batch.report(&summary, dir);
    Ok((summary, outcome))
}

/// Reads a scenario file, applies `--set` overrides then typed `edits`, and checks the
/// result once into a [`Plan`]. Errors name the file (and the line, field or `--set`).
///
/// # Errors
/// As [`Scenario::load`] and [`Plan::new`].
pub fn load_plan(path: &std::path::Path, sets: &[String], edits: &Edits) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
    let origin = path.display().to_string();
    let mut scenario = Scenario::parse_fields(&text, &origin, sets)?;
    edits.apply(&mut scenario);
    edits.check(&mut scenario).map_err(|e| anyhow!("{origin}: {e:#}"))?;
    let plan = Plan::new(scenario).map_err(|e| anyhow!("{origin}: {e:#}"))?;
    if plan.scenario.relay.insecure {
        // Here, so that run, matrix and capacity all say it.
        eprintln!(
            "WARNING: insecure: the relay's TLS certificate is NOT checked (any certificate is accepted; recorded in \
             summary.json as transport.insecure). For self-signed test relays only; --ca FILE trusts a private CA."
        );
    }
    Ok(plan)
}
