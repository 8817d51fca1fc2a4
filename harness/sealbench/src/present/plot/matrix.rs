//! Charts of `sealbench matrix`: e2e percentiles and throughput per combination, and the
//! share of e2e time that is cryptography.
//!
//! Why the throughput chart turns into a cost chart: at a fixed offered rate every cell
//! that kept up delivers the same messages per second, so its throughput bars are equal by
//! construction and say nothing about the choice. When every cell kept up
//! ([`Cell::offered_met`](crate::results::matrix::Cell::offered_met)) the chart is CPU per
//! message instead (`matrix-cpu`: the driver's, and the relay's where it was measured);
//! when some cell fell behind, throughput is what differs, and the chart stays
//! `matrix-throughput`.

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
    let load = if all_kept_up(m) { Kind::CpuPerMessage } else { Kind::Throughput };
    files.extend(super::render(dir, &MatrixChart(m, load))?);
    files.extend(super::render(dir, &MatrixChart(m, Kind::CryptoShare))?);
    Ok(files)
}

/// Every cell kept up with the offered rate: the load chart shows cost, not throughput.
pub fn all_kept_up(m: &Matrix) -> bool {
    !m.cells.is_empty() && m.cells.iter().all(|c| c.offered_met)
}

#[derive(Clone, Copy)]
enum Kind {
    Latency,
    Throughput,
    CpuPerMessage,
    CryptoShare,
}

struct MatrixChart<'a>(&'a Matrix, Kind);

impl Chart for MatrixChart<'_> {
    fn stem(&self) -> &str {
        match self.1 {
            Kind::Latency => "matrix-latency",
            Kind::Throughput => "matrix-throughput",
            Kind::CpuPerMessage => "matrix-cpu",
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
            Kind::CpuPerMessage => {
                let relay = m.cells.iter().any(|c| c.relay_cpu_us_per_msg.is_some());
                let values: Vec<Vec<Option<f64>>> = m
                    .cells
                    .iter()
                    .map(|c| {
                        let mut v = vec![med(c.cpu_ms_per_1000_msgs, 1.0)];
                        if relay {
                            v.push(med(c.relay_cpu_us_per_msg, 1.0));
                        }
                        v
                    })
                    .collect();
                let series: &[&str] = if relay { &["driver", "relay"] } else { &["driver"] };
                bars::grouped(
                    root,
                    &format!(
                        "CPU per message at the offered rate (every cell kept up) — {} (median of {} runs)",
                        m.scenario.name, m.repeat
                    ),
                    "CPU per message (µs)",
                    &labels,
                    series,
                    &values,
                    &|v| format!("{v:.1}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::matrix::{Cell, Spread, fixture};

    fn cell(aead: &str, cpu: f64, kept_up: bool) -> Cell {
        let s = |v: f64| Some(Spread { median: v, min: v, max: v });
        Cell { cpu_ms_per_1000_msgs: s(cpu), throughput_per_s: s(5000.0), offered_met: kept_up, ..fixture::cell(aead) }
    }

    fn stems(m: &Matrix) -> Vec<String> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = render_all(dir.path(), m).expect("charts");
        let mut stems: Vec<String> =
            files.iter().filter_map(|f| f.file_stem()).map(|s| s.to_string_lossy().into_owned()).collect();
        stems.dedup();
        stems
    }

    #[test]
    fn the_load_chart_is_cost_per_message_only_when_every_cell_kept_up() {
        let kept = fixture::matrix(vec![cell("chacha20-poly1305", 30.0, true), cell("aes-256-gcm", 25.0, true)]);
        assert_eq!(stems(&kept), ["matrix-latency", "matrix-cpu", "matrix-crypto-share"]);
        let behind = fixture::matrix(vec![cell("chacha20-poly1305", 30.0, true), cell("aes-256-gcm", 25.0, false)]);
        assert_eq!(stems(&behind), ["matrix-latency", "matrix-throughput", "matrix-crypto-share"]);
    }
}
