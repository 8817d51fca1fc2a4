//! `matrix.json`: one scenario run once per cipher choice and transport, each choice's figures as the
//! median and spread over its repeats.

use super::figure::{Metric, Stat};
use super::header::Header;
use super::summary::Summary;
use crate::scenario::Scenario;
use sealcore::AeadKind;
use serde::{Deserialize, Serialize};

/// Median and spread of one figure over the repeats.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `v` (None when empty).
    pub fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1] })
    }
}

/// One combination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// AEAD short name (`none` = UNENCRYPTED baseline).
    pub aead: String,
    /// Which library (matrices made before backends: `rustcrypto`).
    #[serde(default = "rustcrypto")]
    pub backend: String,
    /// Handshake pattern.
    pub pattern: String,
    /// Transport mode.
    pub mode: String,
    /// What carried the WebSocket: `ws` or `wss` (matrices made before TLS: `ws`).
    #[serde(default = "ws")]
    pub transport: String,
    /// The messaging protocol: `noise` (matrices made before protocols: `noise`), `olm`,
    /// `megolm`, `mls`; a cell of another protocol than noise ignores aead/pattern/mode.
    #[serde(default = "noise")]
    pub protocol: String,
    /// Run directories (relative to the matrix directory), one per repeat.
    pub runs: Vec<String>,
    /// Delivered messages per second.
    pub throughput_per_s: Option<Spread>,
    /// e2e p50, µs.
    pub e2e_p50_us: Option<Spread>,
    /// e2e p99, µs.
    pub e2e_p99_us: Option<Spread>,
    /// e2e p99.9, µs.
    pub e2e_p999_us: Option<Spread>,
    /// Handshake p99, µs.
    pub handshake_p99_us: Option<Spread>,
    /// Handshakes completed per second in the run's set-up.
    #[serde(default)]
    pub handshakes_per_s: Option<Spread>,
    /// Bytes of one handshake's messages (a hybrid pattern's ML-KEM-768 step included).
    #[serde(default)]
    pub handshake_bytes: usize,
    /// Connect (TCP + TLS + upgrade) p50, µs.
    #[serde(default)]
    pub connect_p50_us: Option<Spread>,
    /// Connect p99, µs.
    #[serde(default)]
    pub connect_p99_us: Option<Spread>,
    /// The TLS handshake's part of connect, p50, µs (absent for ws).
    #[serde(default)]
    pub tls_p50_us: Option<Spread>,
    /// The TLS handshake's part of connect, p99, µs (absent for ws).
    #[serde(default)]
    pub tls_p99_us: Option<Spread>,
    /// Seal, mean ns per message (sampled in the run).
    pub seal_ns: Option<Spread>,
    /// Open, mean ns per message.
    pub open_ns: Option<Spread>,
    /// Driver CPU per 1,000 messages, ms (= µs per message).
    pub cpu_ms_per_1000_msgs: Option<Spread>,
    /// Relay CPU per message, µs (embedded or measured relay only; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_cpu_us_per_msg: Option<Spread>,
    /// Every repeat kept up with the offered rate ([`offered_met`]): the cell's
    /// throughput is the scenario's, so cost per message is what tells cells apart
    /// (matrices made before: false).
    #[serde(default)]
    pub offered_met: bool,
    /// (seal + open) / e2e p50: the share of the median end-to-end time that is crypto.
    pub crypto_share: Option<f64>,
    /// Lost messages over all repeats.
    pub lost: u64,
    /// Some repeat's generator saturated (its latencies describe the generator).
    pub saturated: bool,
    /// Other processes took ≥ 10 % of the machine's cores during some repeat
    /// ([`super::others::other_work`]): its figures include waiting for them.
    #[serde(default)]
    pub machine_shared: bool,
    /// Its messages were franked (`crypto.franking`; matrices made before: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub franking: bool,
    /// The relay's stance and what it cost (matrices made before stances: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance: Option<super::stance::Stance>,
}

fn ws() -> String {
    "ws".into()
}

fn rustcrypto() -> String {
    sealcore::Backend::RustCrypto.name().into()
}

fn noise() -> String {
    "noise".into()
}

impl Cell {
    /// `aead on backend / pattern / mode`, then ` / wss` for TLS (ws is the default, left
    /// unsaid).
    pub fn label(&self) -> String {
        if self.protocol != "noise" {
            let clear = self.protocol.parse::<sealproto::Protocol>().is_ok_and(|p| !p.encrypts());
            let clear = if clear { " (UNENCRYPTED)" } else { "" };
            return format!("{}{clear}{}", self.protocol, self.transport_suffix(" / "));
        }
        let franked = if self.franking { " + franking" } else { "" };
        let aead = self.aead.parse::<AeadKind>().map(|a| a.label().to_owned()).unwrap_or_else(|_| self.aead.clone());
        format!(
            "{aead} on {} / {} / {}{}{franked}",
            self.backend,
            self.pattern,
            self.mode,
            self.transport_suffix(" / ")
        )
    }

    /// `{sep}<backend>` unless the backend is rustcrypto (cells from before backends were
    /// a dimension keep their names).
    pub fn backend_suffix(&self, sep: &str) -> String {
        if self.backend == rustcrypto() { String::new() } else { format!("{sep}{}", self.backend) }
    }

    /// `{sep}wss` for a TLS cell, nothing for ws: how names and labels tell them apart
    /// while ws cells keep the names they had before transports were a dimension.
    pub fn transport_suffix(&self, sep: &str) -> String {
        if self.transport == "ws" { String::new() } else { format!("{sep}{}", self.transport) }
    }

    /// The cell of `aead / backend / pattern / mode / transport` from its repeats'
    /// summaries (run directory name, summary).
    pub fn from_runs(a: &str, b: &str, p: &str, m: &str, t: &str, runs: &[(String, Summary)]) -> Cell {
        let get = |f: &dyn Fn(&Summary) -> Option<f64>| Spread::of(runs.iter().filter_map(|(_, s)| f(s)).collect());
        let lat = |metric: Metric, stat: Stat| move |s: &Summary| s.latency.get(metric.name()).map(|l| l.get(stat));
        let e2e_p50 = get(&lat(Metric::E2e, Stat::P50));
        let seal = get(&|s| s.latency.get(Metric::Seal.name()).map(|l| l.mean_us * 1e3));
        let open = get(&|s| s.latency.get(Metric::Open.name()).map(|l| l.mean_us * 1e3));
        let crypto_share = match (seal, open, e2e_p50) {
            (Some(s), Some(o), Some(e)) if e.median > 0.0 => Some((s.median + o.median) / (e.median * 1e3)),
            _ => None,
        };
        Cell {
            aead: a.into(),
            backend: b.into(),
            pattern: p.into(),
            mode: m.into(),
            transport: t.into(),
            protocol: "noise".into(),
            runs: runs.iter().map(|(n, _)| n.clone()).collect(),
            throughput_per_s: get(&|s| Some(s.throughput.delivered_per_s)),
            e2e_p50_us: e2e_p50,
            e2e_p99_us: get(&lat(Metric::E2e, Stat::P99)),
            e2e_p999_us: get(&lat(Metric::E2e, Stat::P999)),
            handshake_p99_us: get(&lat(Metric::Handshake, Stat::P99)),
            handshakes_per_s: get(&|s| Some(s.throughput.handshakes_per_s)),
            handshake_bytes: runs.first().map_or(0, |(_, s)| s.handshake_bytes),
            connect_p50_us: get(&lat(Metric::Connect, Stat::P50)),
            connect_p99_us: get(&lat(Metric::Connect, Stat::P99)),
            tls_p50_us: get(&lat(Metric::Tls, Stat::P50)),
            tls_p99_us: get(&lat(Metric::Tls, Stat::P99)),
            seal_ns: seal,
            open_ns: open,
            cpu_ms_per_1000_msgs: get(&|s| Some(s.generator.driver_cpu_us_per_msg)),
            relay_cpu_us_per_msg: get(&|s| s.generator.relay_cpu_us_per_msg),
            offered_met: !runs.is_empty() && runs.iter().all(|(_, s)| offered_met(s)),
            crypto_share,
            lost: runs.iter().map(|(_, s)| s.messages.lost).sum(),
            saturated: runs.iter().any(|(_, s)| s.generator.saturated),
            machine_shared: runs.iter().any(|(_, s)| super::others::other_work(s).is_some()),
            franking: runs.first().is_some_and(|(_, s)| s.scenario.crypto.franking),
            stance: Some(super::stance::Stance::from_runs("noise", runs)),
        }
    }
}

/// Share of the offered rate a run must reach, in messages handled and in deliveries of
/// what it sent, to count as having kept up (a few percent of room for Poisson noise and
/// the run's first and last partial seconds).
pub const KEPT_UP: f64 = 0.95;

/// The run kept up with the offered rate: its generator did not saturate, it handled at
/// least [`KEPT_UP`] of the offered messages per second, delivered at least that share of
/// what it sent, and lost nothing.
pub fn offered_met(s: &Summary) -> bool {
    let t = &s.throughput;
    !s.generator.saturated
        && s.messages.lost == 0
        && t.offered_per_s > 0.0
        && t.messages_per_s >= KEPT_UP * t.offered_per_s
        && t.delivered_per_s >= KEPT_UP * t.sent_per_s
}

/// `matrix.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Matrix {
    /// Layout version, kind (always `matrix`) and provenance.
    #[serde(flatten)]
    pub header: Header,
    /// The scenario every cell ran (before the cell's crypto overrides).
    pub scenario: Scenario,
    /// Repeats per cell.
    pub repeat: usize,
    /// The order runs were made in (cell indices), for drift analysis.
    pub order: Vec<usize>,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// Writes `matrix.json` into `dir`; returns its path.
///
/// # Errors
/// When the file cannot be written (the message names it).
pub fn write(dir: &std::path::Path, m: &Matrix) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join("matrix.json");
    crate::output::write_json(&p, m)?;
    Ok(p)
}

/// Test fixtures: a matrix of the quickstart scenario whose cells are `cells`, and a
/// cell with nothing measured to fill in.
#[cfg(test)]
pub(crate) mod fixture {
    use super::{Cell, Matrix};

    /// A cell of `aead` with nothing measured (XX, rustcrypto, noise).
    pub fn cell(aead: &str) -> Cell {
        let mut c: Cell = serde_json::from_value(serde_json::json!({
            "aead": "x", "backend": "rustcrypto", "pattern": "XX", "mode": "noise", "runs": [],
            "handshake_bytes": 0, "lost": 0, "saturated": false
        }))
        .expect("a cell");
        c.aead = aead.into();
        c
    }

    /// The quickstart scenario's matrix of `cells`, three repeats each.
    pub fn matrix(cells: Vec<Cell>) -> Matrix {
        let text = include_str!("../../../../scenarios/quickstart.toml");
        let scenario = crate::scenario::Scenario::parse(text, "q.toml", &[]).expect("scenario");
        Matrix {
            header: crate::results::header::Header::new(1, "matrix", crate::provenance::Provenance::collect()),
            scenario,
            repeat: 3,
            order: Vec::new(),
            cells,
        }
    }
}
