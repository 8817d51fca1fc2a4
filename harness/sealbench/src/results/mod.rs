//! Result files of `sealbench run`: consumers of a finished [`crate::driver::Outcome`].
//!
//! # Layout
//! - [`summary`] — `summary.json`; [`hlog`] — `latency.hlog`; [`timeseries`] —
//!   `timeseries.csv`; [`console`] — the progress line and the final table.
//! - Plots are drawn by [`crate::present::plot::run`].

pub mod hlog;
pub mod summary;
pub mod timeseries;

use crate::driver::Outcome;
use crate::output::{write_atomic, write_json};
use anyhow::Result;
use std::path::{Path, PathBuf};
use summary::Summary;

/// Writes every result file of a run into `dir`; returns their paths.
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_all(dir: &Path, outcome: &Outcome, summary: &Summary) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let p = dir.join("summary.json");
    write_json(&p, summary)?;
    files.push(p);
    let p = dir.join("latency.hlog");
    write_atomic(&p, &hlog::render(&outcome.seconds, outcome.started_unix_s)?)?;
    files.push(p);
    let p = dir.join("timeseries.csv");
    write_atomic(&p, timeseries::render(&outcome.seconds).as_bytes())?;
    files.push(p);
    files.extend(crate::present::plot::run::render_all(dir, outcome, summary)?);
    Ok(files)
}
