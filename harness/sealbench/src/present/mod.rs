//! Presentation: consumers of finished result data ([`crate::results`]) and their
//! verdicts. Nothing here measures or judges.
//!
//! # Layout
//! - [`console`] — the progress line and the final table of `run`.
//! - while a run goes on: [`live`] — the terminal view redrawn each second;
//!   [`prometheus`] — the driver's `/metrics`, served by [`metrics_http`]; [`dashboard`] —
//!   the live page in the browser (`run --dashboard`); [`remote_write`] — the same figures
//!   pushed to Prometheus (`run --remote-write`).
//! - [`markdown`] — `matrix.md` and `capacity.md`; [`html`] — the self-contained
//!   `report.html` of a run, a matrix or a capacity search.
//! - [`plot`] — charts (PNG + SVG).
//! - this module — what every table shares, and one function per command that writes its
//!   presentation: [`write_run`], [`write_matrix`], [`write_capacity`].

pub mod console;
pub mod dashboard;
pub mod html;
pub mod live;
pub mod markdown;
pub mod metrics_http;
pub mod plot;
pub mod prometheus;
pub mod remote_write;
pub mod server_thread;

use crate::driver::Outcome;
use crate::output::write_atomic;
use crate::results::capacity::Capacity;
use crate::results::figure::{Metric, Stat, TABLE_ORDER, format_us};
use crate::results::matrix::Matrix;
use crate::results::summary::{Latency, Summary};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Column headings of a latency row ([`latency_cells`]).
pub fn latency_columns() -> [&'static str; 7] {
    let mut c = ["count"; 7];
    for (i, s) in Stat::TABLE.iter().enumerate() {
        c[i + 1] = s.label();
    }
    c
}

/// The row a latency table shows (console and `report.html`): the count, then each of
/// [`Stat::TABLE`] with a unit that fits.
pub fn latency_cells(l: &Latency) -> [String; 7] {
    let mut c: [String; 7] = Default::default();
    c[0] = l.count.to_string();
    for (i, s) in Stat::TABLE.iter().enumerate() {
        c[i + 1] = format_us(l.get(*s));
    }
    c
}

/// A latency table's rows in table order: each metric all classes together, then one row
/// per traffic class it was recorded under, labelled `{class=group,size=50}`. The bool
/// tells a class's row (shown indented under its metric).
pub fn latency_rows(s: &Summary) -> Vec<(String, bool, &Latency)> {
    let mut rows = Vec::new();
    for m in TABLE_ORDER {
        if let Some(l) = s.latency.get(m.name()) {
            rows.push((m.name().to_owned(), false, l));
        }
        for (tag, l) in s.by_tag(m) {
            rows.push((format!("{{{tag}}}"), true, l));
        }
    }
    // A metric this build does not know (a newer summary read back) still shows.
    for (name, l) in &s.latency {
        if crate::results::figure::metric(name).is_none() {
            rows.push((name.clone(), false, l));
        }
    }
    rows
}

/// The metrics a run has per-class figures of.
pub fn tagged_metrics(s: &Summary) -> Vec<Metric> {
    Metric::TAGGED.into_iter().filter(|m| s.latency_by_tag.contains_key(m.name())).collect()
}

/// Writes a run's plots and `report.html` into `dir` (after its data files,
/// [`crate::results::write_run`]); returns their paths.
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_run(dir: &Path, outcome: &Outcome, summary: &Summary) -> Result<Vec<PathBuf>> {
    let mut files = plot::run::render_all(dir, outcome, summary)?;
    files.extend(plot::classes::render_all(dir, outcome, summary)?);
    files.push(html::write_run(dir, summary)?);
    Ok(files)
}

/// Writes `matrix.md`, the matrix plots and `report.html` into `dir`; returns the Markdown
/// (for the console).
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_matrix(dir: &Path, m: &Matrix) -> Result<String> {
    let md = markdown::matrix(m);
    write_atomic(&dir.join("matrix.md"), md.as_bytes())?;
    plot::matrix::render_all(dir, m).context("drawing the matrix plots")?;
    html::write_matrix(dir, m)?;
    Ok(md)
}

/// Writes `capacity.md`, the capacity plots and `report.html` into `dir`; returns the
/// Markdown (for the console).
///
/// # Errors
/// When a file cannot be written (the message names it).
pub fn write_capacity(dir: &Path, c: &Capacity) -> Result<String> {
    let md = markdown::capacity(c);
    write_atomic(&dir.join("capacity.md"), md.as_bytes())?;
    plot::capacity::render_all(dir, c).context("drawing the capacity plots")?;
    html::write_capacity(dir, c)?;
    Ok(md)
}
