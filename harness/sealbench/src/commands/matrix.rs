//! `sealbench matrix SCENARIO --aead a,b --pattern XX,IK --mode noise,ratchet`: the same
//! scenario (same seed, same schedule) once per combination, in an interleaved order
//! repeated `--repeat` times, then one table of what each choice costs end to end.

use crate::cli::MatrixArgs;
use crate::commands::run::execute_quiet;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::matrix::{self, Cell, Matrix};
use crate::results::summary::Summary;
use crate::scenario::Scenario;
use anyhow::{Context, anyhow};
use sealcore::AeadKind;
use std::process::ExitCode;

/// Runs `sealbench matrix`.
///
/// # Errors
/// Exit 2 for a bad scenario or choice; exit 1 when a run fails.
pub fn run(args: &MatrixArgs) -> Outcome {
    let base = Scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
    let cells = combinations(args, &base)?;
    // Validate every cell's scenario before running anything.
    let mut scenarios = Vec::new();
    for (a, p, m) in &cells {
        let mut sets = args.set.clone();
        sets.extend([
            format!("crypto.aead=\"{a}\""),
            format!("crypto.pattern=\"{p}\""),
            format!("crypto.mode=\"{m}\""),
        ]);
        scenarios.push(Scenario::load(&args.scenario, &sets).map_err(Failure::usage)?);
    }
    let repeat = args.repeat.max(1);
    let dir =
        output::result_dir(args.out.as_deref(), &format!("{}-matrix-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::collect();
    let mut summaries: Vec<Vec<(String, Summary)>> = vec![Vec::new(); cells.len()];
    let mut order = Vec::new();
    let total = repeat * cells.len();
    for r in 0..repeat {
        // Rotate the starting cell each repeat: no cell always runs first (or last).
        for k in 0..cells.len() {
            let i = (k + r) % cells.len();
            order.push(i);
            let (a, p, m) = &cells[i];
            let name = format!("{a}-{p}-{m}-r{}", r + 1);
            eprintln!("[{}/{total}] {name}", order.len());
            let s =
                execute_quiet(&scenarios[i], &dir.join(&name), &[]).with_context(|| format!("matrix cell {name}"))?;
            summaries[i].push((name, s));
        }
    }
    let cells: Vec<Cell> =
        cells.iter().zip(&summaries).map(|((a, p, m), runs)| Cell::from_runs(a, p, m, runs)).collect();
    let matrix = Matrix { schema_version: 1, kind: "matrix".into(), provenance, scenario: base, repeat, order, cells };
    matrix::write(&dir, &matrix)?;
    let md = present::write_matrix(&dir, &matrix)?;
    println!("{md}");
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Every `(aead, pattern, mode)` the flags ask for (plus the `none` baseline unless
/// `--no-baseline`), AEAD varying fastest.
fn combinations(args: &MatrixArgs, base: &Scenario) -> Result<Vec<(String, String, String)>, Failure> {
    let mut aeads: Vec<String> = args.aead.iter().map(|a| a.trim().to_owned()).collect();
    for a in &aeads {
        a.parse::<AeadKind>().map_err(|e| Failure::usage(anyhow!("--aead: {e}")))?;
    }
    if !args.no_baseline && !aeads.iter().any(|a| a == "none") {
        aeads.push("none".into());
    }
    let patterns = if args.pattern.is_empty() { vec![base.crypto.pattern.clone()] } else { args.pattern.clone() };
    let modes = if args.mode.is_empty() { vec![base.crypto.mode.clone()] } else { args.mode.clone() };
    let mut cells = Vec::new();
    for p in &patterns {
        for m in &modes {
            for a in &aeads {
                cells.push((a.clone(), p.clone(), m.clone()));
            }
        }
    }
    Ok(cells)
}
