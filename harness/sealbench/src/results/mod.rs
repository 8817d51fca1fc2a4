//! Result data of every command: the files a run, a matrix or a capacity search leaves
//! behind, and the types they are read back into. Nothing here draws, prints or judges:
//! verdicts ([`crate::verdict`]) and presentation ([`crate::present`]) consume this data.
//!
//! # Layout
//! - [`summary`] — `summary.json`; [`hlog`] — `latency.hlog`; [`timeseries`] —
//!   `timeseries.csv`: a run's data files, all written by [`write_run`].
//! - [`live`] — one record per second of a running run; [`buckets`] — its latencies as
//!   cumulative buckets since the start (`/metrics` histograms); [`stream`] — `--json-stream`,
//!   those records as JSON lines.
//! - [`accounting`] — `summary.json`'s `clients` and `messages`: the run's counters as a
//!   result shows them, generated from the one list of counters.
//! - [`transport`] — `summary.json`'s `transport` (ws or wss, whom TLS trusted).
//! - [`stages`] — per-stage figures of a staged run (`summary.json`'s `stages`).
//! - [`matrix`] — `matrix.json`; [`capacity`] — `capacity.json`; [`repeats`] —
//!   `repeats.json` (`run --repeat N`).
//! - [`others`] — whether a run had its machine to itself (other work while sending).
//! - [`merge`] — the parts of a split run read back and combined into one run's data.
//! - [`header`] — what every result file starts with (layout version, kind, provenance).
//! - [`figure`] — the one vocabulary of figures (metric and statistic names, figure
//!   paths, what counts as an error) and units (one parser, one formatter).

pub mod accounting;
pub mod buckets;
pub mod capacity;
pub mod figure;
pub mod header;
pub mod hlog;
pub mod live;
pub mod matrix;
pub mod merge;
pub mod others;
pub mod repeats;
pub mod stages;
pub mod stance;
pub mod stream;
pub mod summary;
pub mod timeseries;
pub mod transport;

use crate::driver::Outcome;
use crate::output::{write_atomic, write_json};
use anyhow::Result;
use std::path::{Path, PathBuf};
use summary::Summary;

/// Writes the data files of a run into `dir` (`summary.json`, `latency.hlog`,
/// `timeseries.csv`); returns their paths. Plots and `report.html` are
/// [`crate::present::write_run`]'s.
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_run(dir: &Path, outcome: &Outcome, summary: &Summary) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let p = dir.join("summary.json");
    write_json(&p, summary)?;
    files.push(p);
    let p = dir.join("latency.hlog");
    write_atomic(&p, &hlog::render(&outcome.seconds, outcome.started_unix_s)?)?;
    files.push(p);
    let p = dir.join("timeseries.csv");
    write_atomic(&p, timeseries::render(&outcome.seconds, outcome.started_unix_s).as_bytes())?;
    files.push(p);
    Ok(files)
}
