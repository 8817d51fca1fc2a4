//! Charts of `sealbench matrix`: e2e percentiles and throughput per combination, and the
//! share of e2e time that is cryptography.

use super::{Chart, bars};
use crate::results::figure::Stat;
use crate::results::matrix::Matrix;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Writes the matrix charts into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn render_all(dir: &Path, m: &Matrix) -> Result<Vec<PathBuf>> {
    let mut files = super::render(dir, &MatrixChart(m, Kind::Latency))?;
    files.extend(super::render(dir, &MatrixChart(m, Kind::Throughput))?);
    files.extend(super::render(dir, &MatrixChart(m, Kind::CryptoShare))?);
    Ok(files)
}

#[derive(Clone, Copy)]
enum Kind {
    Latency,
    Throughput,
    CryptoShare,
}

struct MatrixChart<'a>(&'a Matrix, Kind);

impl Chart for MatrixChart<'_> {
    fn stem(&self) -> &str {
        match self.1 {
            Kind::Latency => "matrix-latency",
            Kind::Throughput => "matrix-throughput",
            Kind::CryptoShare => "matrix-crypto-share",
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let m = self.0;
        let labels: Vec<String> = m.cells.iter().map(|c| c.label()).collect();
        let med = |s: Option<crate::results::matrix::Spread>, k: f64| s.map(|s| s.median * k);
        match self.1 {
            Kind::Latency => {
                let values: Vec<Vec<Option<f64>>> = m
                    .cells
                    .iter()
                    .map(|c| vec![med(c.e2e_p50_us, 1e-3), med(c.e2e_p99_us, 1e-3), med(c.e2e_p999_us, 1e-3)])
                    .collect();
                bars::grouped(
                    root,
                    &format!(
                        "End-to-end latency per cipher choice — {} (median of {} runs)",
                        m.scenario.name, m.repeat
                    ),
                    "e2e latency (ms)",
                    &labels,
                    &[Stat::P50, Stat::P99, Stat::P999].map(Stat::label),
                    &values,
                    &|v| format!("{v:.2}"),
                )
            }
            Kind::Throughput => {
                let values: Vec<Vec<Option<f64>>> =
                    m.cells.iter().map(|c| vec![med(c.throughput_per_s, 1.0)]).collect();
                bars::grouped(
                    root,
                    &format!("Delivered messages per second — {}", m.scenario.name),
                    "messages delivered per second",
                    &labels,
                    &["delivered/s"],
                    &values,
                    &|v| format!("{v:.0}"),
                )
            }
            Kind::CryptoShare => {
                let values: Vec<Vec<Option<f64>>> =
                    m.cells.iter().map(|c| vec![c.crypto_share.map(|x| x * 100.0)]).collect();
                bars::grouped(
                    root,
                    "Crypto cost share: (seal + open) ÷ e2e p50",
                    "share of the median end-to-end latency (%)",
                    &labels,
                    &["seal + open"],
                    &values,
                    &|v| format!("{v:.2}%"),
                )
            }
        }
    }
}
