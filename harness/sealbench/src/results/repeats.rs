//! `run --repeat N`'s `repeats.json`: which runs a repeated run made (each a whole result
//! directory beside it) and, for the figures a gate looks at, their mean and spread across
//! the runs. The spread between runs is what one run's own seconds cannot show (another
//! process for the whole run, a different host): `compare` of two repeated results judges on
//! it (`verdict::compare`).

use super::figure::{Metric, Stat};
use super::header::Header;
use super::summary::Summary;
use crate::provenance::Provenance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Layout version of `repeats.json`.
pub const SCHEMA_VERSION: u32 = 1;

/// One figure across the runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Across {
    /// Each run's value, in run order.
    pub values: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 with one run).
    pub sd: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Across {
    /// The spread of `values` (at least one).
    pub fn of(values: Vec<f64>) -> Across {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Across { values, mean, sd, min, max }
    }
}

/// `repeats.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Repeats {
    /// Layout version, kind (always `repeats`) and provenance.
    #[serde(flatten)]
    pub header: Header,
    /// The runs' directories, relative to this file's.
    pub runs: Vec<String>,
    /// The gate's figures across the runs (µs for latencies).
    pub figures: BTreeMap<String, Across>,
}

/// The figures `repeats.json` spells out (every other one is in each run's summary, and
/// `compare` reads them all from there).
const SHOWN: [&str; 6] =
    ["e2e.p50", "e2e.p99", "e2e.p999", "throughput.delivered_per_s", "messages.lost", "generator.cpu_us_per_msg"];

impl Repeats {
    /// The record of `runs` (directory name, summary).
    pub fn of(runs: &[(String, Summary)]) -> Repeats {
        let mut figures = BTreeMap::new();
        for name in SHOWN {
            let values: Option<Vec<f64>> = runs.iter().map(|(_, s)| value(s, name)).collect();
            if let Some(v) = values.filter(|v| !v.is_empty()) {
                figures.insert(name.to_owned(), Across::of(v));
            }
        }
        let provenance = runs.first().map_or_else(Provenance::collect, |(_, s)| s.header.provenance.clone());
        Repeats {
            header: Header::new(SCHEMA_VERSION, "repeats", provenance),
            runs: runs.iter().map(|(d, _)| d.clone()).collect(),
            figures,
        }
    }
}

fn value(s: &Summary, name: &str) -> Option<f64> {
    match name {
        "generator.cpu_us_per_msg" => Some(s.generator.driver_cpu_us_per_msg),
        "e2e.p50" => s.latency.get(Metric::E2e.name()).map(|l| l.get(Stat::P50)),
        "e2e.p99" => s.latency.get(Metric::E2e.name()).map(|l| l.get(Stat::P99)),
        "e2e.p999" => s.latency.get(Metric::E2e.name()).map(|l| l.get(Stat::P999)),
        other => s.lookup(other),
    }
}

/// Writes `repeats.json` into `dir`.
///
/// # Errors
/// When it cannot be written (the message names it).
pub fn write(dir: &std::path::Path, r: &Repeats) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join("repeats.json");
    crate::output::write_json(&p, r)?;
    Ok(p)
}

/// The spread table printed after the runs.
pub fn table(r: &Repeats) -> String {
    let mut out = format!("{} runs: each figure's mean, range and spread (standard deviation ÷ mean)\n", r.runs.len());
    for (name, a) in &r.figures {
        let spread = if a.mean.abs() > f64::EPSILON { 100.0 * a.sd / a.mean.abs() } else { 0.0 };
        out.push_str(&format!(
            "  {name:<28} mean {:>12.2}  min {:>12.2}  max {:>12.2}  spread {spread:>5.1} %\n",
            a.mean, a.min, a.max
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_of_values_is_their_sample_deviation() {
        let a = Across::of(vec![2.0, 4.0, 6.0]);
        assert_eq!((a.mean, a.sd, a.min, a.max), (4.0, 2.0, 2.0, 6.0));
        assert_eq!(Across::of(vec![5.0]).sd, 0.0);
    }
}
