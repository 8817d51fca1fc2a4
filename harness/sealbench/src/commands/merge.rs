//! `sealbench merge DIR... --out DIR`: the parts of a split run combined into one result,
//! judged against the scenario's thresholds, written and drawn like any run.

use crate::cli::MergeArgs;
use crate::error::{EXIT_THRESHOLDS, Failure, Outcome};
use crate::output;
use crate::present::{self, console};
use crate::provenance::Provenance;
use crate::results::{self, merge};
use crate::verdict::threshold;
use anyhow::{Context, anyhow};
use std::process::ExitCode;

/// Runs `sealbench merge`.
///
/// # Errors
/// Exit 2 for results that cannot be merged (named); exit 1 when the merged files cannot
/// be written.
pub fn run(args: &MergeArgs) -> Outcome {
    let parts = args
        .dirs
        .iter()
        .map(|d| merge::PartResult::read(d))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(Failure::usage)?;
    let merged = merge::merge(&parts, args.partial).map_err(Failure::usage)?;
    for w in &merged.warnings {
        eprintln!("warning: {w}");
    }
    let scenario = &merged.plan.scenario;
    let thresholds = threshold::parse_for(&scenario.thresholds, &merged.plan.tags())
        .map_err(|e| Failure::usage(anyhow!("thresholds: {e:#}")))?;
    let mut summary = merge::summary(&merged, Provenance::collect());
    threshold::judge(&mut summary, &thresholds);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut files = results::write_run(&args.out, &merged.outcome, &summary).context("writing the merged result")?;
    if !args.no_plots {
        files.extend(present::write_run(&args.out, &merged.outcome, &summary).context("writing the merged result")?);
    }
    let partial = summary.partial.as_deref().map_or_else(String::new, |p| format!(" — PARTIAL: {p}"));
    let title = format!("{} (merged from {} parts){partial}", args.out.display(), parts.len());
    output::stdout(&format!("{}  wrote {} files\n", console::table(&summary, &title), files.len()));
    if !summary.thresholds_pass() {
        eprintln!("thresholds failed: exit {EXIT_THRESHOLDS}");
        return Ok(ExitCode::from(EXIT_THRESHOLDS));
    }
    Ok(ExitCode::SUCCESS)
}
