//! `sealbench run SCENARIO`: the load driver, with live progress, result files and an exit
//! code that reflects the thresholds.

use crate::cli::RunArgs;
use crate::driver::{self, RunOptions};
use crate::error::{EXIT_THRESHOLDS, Failure, Outcome};
use crate::output;
use crate::present::console;
use crate::provenance::Provenance;
use crate::results::{self as report, summary::Summary};
use crate::scenario::Scenario;
use crate::verdict::threshold::Threshold;
use anyhow::{Context, anyhow};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Runs `sealbench run`.
///
/// # Errors
/// Exit 2 for a bad scenario or override; exit 1 when the run cannot start or results
/// cannot be written.
pub fn run(args: &RunArgs) -> Outcome {
    let scenario = Scenario::load(&args.scenario, &args.overrides()).map_err(Failure::usage)?;
    let thresholds: Vec<Threshold> = scenario
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::usage(anyhow!("{}: thresholds: {e:#}", args.scenario.display())))?;
    let dir = output::result_dir(args.out.as_deref(), &format!("{}-{}", crate::timefmt::compact_now(), scenario.name))
        .map_err(Failure::usage)?;
    let provenance = Provenance::collect();
    let interrupt = Arc::new(AtomicBool::new(false));
    install_ctrl_c(interrupt.clone());
    let options = RunOptions { shards: args.shards, interrupt: Some(interrupt.clone()), stall: None };
    let tty = std::io::stderr().is_terminal();
    let mut last_plain = Instant::now();
    let clients = scenario.clients.count;
    if scenario.crypto.aead == "none" {
        eprintln!("WARNING: aead = none: this run sends UNENCRYPTED messages (a baseline to isolate crypto cost)");
    }
    eprintln!("sealbench run `{}`: {} clients → results in {}", scenario.name, clients, dir.display());
    let outcome = driver::run(&scenario, &options, |sec, total| {
        let line = console::progress_line(sec, total, clients);
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if last_plain.elapsed().as_secs() >= 5 {
            eprintln!("{line}");
            last_plain = Instant::now();
        }
    });
    if tty {
        eprintln!();
    }
    let outcome = outcome.map_err(|e| Failure::from(e.context(format!("running {}", args.scenario.display()))))?;
    let summary = Summary::build(&scenario, &outcome, &thresholds, provenance);
    let files = write_results(&dir, &outcome, &summary, !args.no_plots)?;
    print!("{}", console::table(&summary, &dir.display().to_string()));
    println!("  wrote {} files", files.len());
    if interrupt.load(Ordering::Relaxed) {
        return Ok(ExitCode::from(130));
    }
    if !summary.thresholds_pass() {
        eprintln!("thresholds failed: exit {EXIT_THRESHOLDS}");
        return Ok(ExitCode::from(EXIT_THRESHOLDS));
    }
    if outcome.aborted.is_some() {
        return Err(Failure::from(anyhow!(
            "the run was cut short: {} (results were written)",
            outcome.aborted.unwrap_or_default()
        )));
    }
    Ok(ExitCode::SUCCESS)
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

/// Writes a run's result files (plots and `report.html` unless `plots` is false).
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_results(
    dir: &std::path::Path,
    outcome: &driver::Outcome,
    summary: &Summary,
    plots: bool,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    if plots {
        let mut files = report::write_all(dir, outcome, summary).context("writing results")?;
        files.push(crate::present::html::write_run(dir, summary)?);
        return Ok(files);
    }
    let mut f = Vec::new();
    let p = dir.join("summary.json");
    output::write_json(&p, summary)?;
    f.push(p);
    let p = dir.join("latency.hlog");
    output::write_atomic(&p, &report::hlog::render(&outcome.seconds, outcome.started_unix_s)?)?;
    f.push(p);
    let p = dir.join("timeseries.csv");
    output::write_atomic(&p, report::timeseries::render(&outcome.seconds).as_bytes())?;
    f.push(p);
    Ok(f)
}

/// Runs `scenario` quietly (one plain progress line every 5 s) into `dir` and returns its
/// summary: what `matrix` and `capacity` do per cell or step.
///
/// # Errors
/// When the run cannot start or its results cannot be written.
pub fn execute_quiet(scenario: &Scenario, dir: &std::path::Path, thresholds: &[Threshold]) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let provenance = Provenance::collect();
    let clients = scenario.clients.count;
    let mut last = Instant::now();
    let outcome = driver::run(scenario, &RunOptions::default(), |sec, total| {
        if last.elapsed().as_secs() >= 5 {
            eprintln!("    {}", console::progress_line(sec, total, clients));
            last = Instant::now();
        }
    })?;
    let summary = Summary::build(scenario, &outcome, thresholds, provenance);
    write_results(dir, &outcome, &summary, true)?;
    Ok(summary)
}
