//! Reading result files back as a flat list of named, comparable figures.

use crate::crypto::CryptoReport;
use crate::provenance::Provenance;
use crate::results::capacity::Capacity;
use crate::results::figure::{Counter, ERRORS_RATE, Stat};
use crate::results::hlog;
use crate::results::matrix::{Matrix, Spread};
use crate::results::summary::{Latency, Summary};
use anyhow::{Context, Result, bail};
use sealcore::Backend;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller is better (latency, cost, losses).
    Lower,
    /// Larger is better (throughput, operations per second).
    Higher,
}

/// One comparable figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable name, e.g. `e2e.p99`, `crypto.seal_ns[chacha20-poly1305,1024]`.
    pub name: String,
    /// Value (µs for latencies, ns for crypto per-message costs, plain otherwise).
    pub value: f64,
    /// Unit, for display.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// Relative change below which a difference is noise: this result's own uncertainty
    /// (three standard errors, at least a floor). Two results' bands add in quadrature.
    pub noise: f64,
    /// Whether a verdict is given at all: figures of the set-up burst (connect, register,
    /// handshake) rest on one event per client with no run-to-run estimate, so they are
    /// shown but not judged (an explicit `--fail-on` rule still applies to them).
    pub judged: bool,
    /// Each run's value when the result is `run --repeat N` (`value` is their mean):
    /// two such results are judged on the spread between runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// A run's summary and, when its interval log lies beside it, the run's own variability.
#[derive(Debug)]
pub struct RunResult {
    /// `summary.json`.
    pub summary: Summary,
    /// Relative noise band of each latency figure (`e2e.p99`): Student's t times the
    /// standard error estimated from the run's per-second intervals (empty without
    /// `latency.hlog`).
    pub spread: BTreeMap<String, f64>,
}

/// A result loaded for comparison.
#[derive(Debug)]
pub enum Loaded {
    /// `summary.json` of `sealbench run` (with its interval log's spread).
    Run(Box<RunResult>),
    /// `crypto.json` of `sealbench crypto`.
    Crypto(Box<CryptoReport>),
    /// `matrix.json` of `sealbench matrix`.
    Matrix(Box<Matrix>),
    /// `capacity.json` of `sealbench capacity`.
    Capacity(Box<Capacity>),
    /// `repeats.json` of `sealbench run --repeat N`: its runs.
    Repeats(Vec<RunResult>),
}

impl Loaded {
    /// Provenance of the result.
    pub fn provenance(&self) -> &Provenance {
        match self {
            Loaded::Run(r) => &r.summary.header.provenance,
            Loaded::Crypto(c) => &c.header.provenance,
            Loaded::Matrix(m) => &m.header.provenance,
            Loaded::Capacity(c) => &c.header.provenance,
            Loaded::Repeats(runs) => &runs[0].summary.header.provenance,
        }
    }

    /// `run` or `crypto`.
    pub fn kind(&self) -> &'static str {
        match self {
            Loaded::Run(_) | Loaded::Repeats(_) => "run",
            Loaded::Crypto(_) => "crypto",
            Loaded::Matrix(_) => "matrix",
            Loaded::Capacity(_) => "capacity",
        }
    }
}

/// Finds the result file of `path` (a result directory or the file itself).
///
/// # Errors
/// When nothing comparable is there.
pub fn locate(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    for name in ["repeats.json", "summary.json", "crypto.json", "matrix.json", "capacity.json"] {
        let p = path.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{}: no summary.json, repeats.json, crypto.json, matrix.json or capacity.json here (expected a result directory)",
        path.display()
    )
}

/// Loads a result for comparison.
///
/// # Errors
/// Unreadable or unrecognised file (the message names it).
pub fn load(path: &Path) -> Result<Loaded> {
    let file = locate(path)?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    plausible(&v).with_context(|| format!("{}: cannot be a result of this sealbench", file.display()))?;
    match v.get("kind").and_then(|k| k.as_str()) {
        Some("run" | "merge") => Ok(Loaded::Run(Box::new(run_result(&file, v)?))),
        Some("repeats") => {
            let r: crate::results::repeats::Repeats = serde_json::from_value(v)
                .with_context(|| format!("{}: not a sealbench repeats.json", file.display()))?;
            let dir = file.parent().unwrap_or(Path::new("."));
            let mut runs = Vec::new();
            for run in &r.runs {
                let f = dir.join(run).join("summary.json");
                let text = std::fs::read_to_string(&f).with_context(|| {
                    format!("{}: lists run {run}, but {} cannot be read", file.display(), f.display())
                })?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", f.display()))?;
                plausible(&v).with_context(|| format!("{}: cannot be a result of this sealbench", f.display()))?;
                runs.push(run_result(&f, v)?);
            }
            if runs.is_empty() {
                bail!("{}: lists no runs", file.display());
            }
            Ok(Loaded::Repeats(runs))
        }
        Some("crypto") => Ok(Loaded::Crypto(Box::new(
            serde_json::from_value(v).with_context(|| format!("{}: not a sealbench crypto report", file.display()))?,
        ))),
        Some("matrix") => Ok(Loaded::Matrix(Box::new(
            serde_json::from_value(v).with_context(|| format!("{}: not a sealbench matrix", file.display()))?,
        ))),
        Some("capacity") => Ok(Loaded::Capacity(Box::new(
            serde_json::from_value(v)
                .with_context(|| format!("{}: not a sealbench capacity result", file.display()))?,
        ))),
        _ => bail!("{}: not a sealbench result (no `kind` of run, crypto, matrix or capacity)", file.display()),
    }
}

/// A run's summary (`v`, read from `file`) and the spread of its interval log beside it.
fn run_result(file: &Path, v: serde_json::Value) -> Result<RunResult> {
    let summary: Summary =
        serde_json::from_value(v).with_context(|| format!("{}: not a sealbench run summary", file.display()))?;
    let log = file.with_file_name("latency.hlog");
    let spread = match std::fs::read(&log) {
        Ok(bytes) => interval_spread(&hlog::read(&bytes).with_context(|| format!("reading {}", log.display()))?),
        Err(_) => BTreeMap::new(),
    };
    Ok(RunResult { summary, spread })
}

/// The newest layout of each kind this build reads.
fn newest_schema(kind: &str) -> Option<u64> {
    Some(u64::from(match kind {
        "run" | "merge" => crate::results::summary::SCHEMA_VERSION,
        "crypto" => crate::crypto::report::SCHEMA_VERSION,
        "matrix" | "capacity" => 1,
        "repeats" => crate::results::repeats::SCHEMA_VERSION,
        _ => return None,
    }))
}

/// Refuses what no sealbench of this version writes: a layout newer than it reads, and a
/// duration or cost below zero (or not a number) anywhere — a negative latency would
/// otherwise compare as an improvement.
fn plausible(v: &serde_json::Value) -> Result<()> {
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if let (Some(newest), Some(found)) = (newest_schema(kind), v.get("schema_version").and_then(|s| s.as_u64()))
        && found > newest
    {
        bail!(
            "schema_version {found} is newer than this sealbench reads for a {kind} result ({newest}): compare it with the sealbench that wrote it"
        );
    }
    fn walk(v: &serde_json::Value, path: &mut Vec<String>) -> Result<()> {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    path.push(k.clone());
                    walk(x, path)?;
                    path.pop();
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    walk(x, path)?;
                    path.pop();
                }
            }
            serde_json::Value::Number(n) => {
                let key = path.last().map_or("", String::as_str);
                let timed = key.ends_with("_us") || key.ends_with("_ns") || key.starts_with("ns_");
                if timed && !n.as_f64().is_some_and(|x| x.is_finite() && x >= 0.0) {
                    bail!("`{}` is {n}: a duration or cost cannot be negative", path.join("."));
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(v, &mut Vec::new())
}

/// Floor of a run latency's noise band: HdrHistogram has 3 significant digits, and
/// repeated runs on a shared 2-core machine differ by a few percent.
pub const RUN_NOISE: f64 = 0.05;
/// Standard errors in a noise band (about one false alarm in 370 per judged figure when
/// the errors are normal and the standard error is known).
pub const Z: f64 = 3.0;

/// The same confidence when the standard error is itself estimated from `blocks` blocks:
/// Student's t at the 3-sigma level (one-sided 0.135 %) with `blocks − 1` degrees of
/// freedom. Few blocks say little, so the band widens instead of pretending to know.
pub fn t_multiplier(blocks: usize) -> f64 {
    match blocks {
        0..=2 => 235.8,
        3 => 19.21,
        4 => 9.219,
        5 => 6.620,
        _ => Z,
    }
}

/// Blocks of consecutive seconds a run's intervals are split into to estimate its spread.
pub const BLOCKS: usize = 5;
/// Metrics of the set-up burst: shown, not judged.
pub const SET_UP: [&str; 7] = ["connect", "tcp", "tls", "upgrade", "register", "login", "handshake"];

/// Each latency figure's relative noise band (t × standard error), from the run's own intervals: the
/// seconds of each metric are split into up to [`BLOCKS`] blocks of consecutive seconds,
/// the statistic is taken per block, and the spread of the blocks over √blocks estimates
/// how far the whole run's figure could move in a repeat. Needs two blocks at least.
pub fn interval_spread(intervals: &[hlog::Interval]) -> BTreeMap<String, f64> {
    let mut by_tag: BTreeMap<&str, Vec<&hdrhistogram::Histogram<u64>>> = BTreeMap::new();
    for i in intervals.iter().filter(|i| !i.hist.is_empty()) {
        by_tag.entry(i.tag.as_str()).or_default().push(&i.hist);
    }
    let mut out = BTreeMap::new();
    for (tag, secs) in by_tag {
        let k = secs.len().min(BLOCKS);
        if k < 2 || SET_UP.contains(&tag) {
            continue;
        }
        let blocks: Vec<Latency> = (0..k)
            .filter_map(|b| {
                let (from, to) = (b * secs.len() / k, (b + 1) * secs.len() / k);
                let mut h = secs[from].clone();
                for s in &secs[from + 1..to] {
                    h.add(*s).ok()?;
                }
                Latency::of(&h)
            })
            .collect();
        for stat in Stat::TABLE {
            let v: Vec<f64> = blocks.iter().map(|l| l.get(stat)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            if v.len() < 2 || mean <= 0.0 {
                continue;
            }
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            // Stored as a band half-width in standard errors already scaled by t.
            out.insert(
                format!("{tag}.{}", stat.name()),
                t_multiplier(v.len()) * var.sqrt() / mean / (v.len() as f64).sqrt(),
            );
        }
    }
    out
}

/// The figures of a result.
pub fn figures(l: &Loaded) -> Vec<Figure> {
    match l {
        Loaded::Run(r) => run_figures(&r.summary, &r.spread),
        Loaded::Crypto(c) => crypto_figures(c),
        Loaded::Matrix(m) => matrix_figures(m),
        Loaded::Capacity(c) => capacity_figures(c),
        Loaded::Repeats(runs) => repeated_figures(runs),
    }
}

/// Floor of a repeated figure's band: what HdrHistogram's 3 significant digits and the
/// rounding of rates leave (the runs' spread is the estimate above it).
pub const REPEAT_NOISE: f64 = 0.01;

/// The figures every run of a repeated result has, each the mean of the runs with the
/// runs' values as its samples; its own band is the floor ([`REPEAT_NOISE`]) or, for an
/// exact counter, none: two repeated results are judged on their samples
/// (`compare::row`).
fn repeated_figures(runs: &[RunResult]) -> Vec<Figure> {
    let per_run: Vec<Vec<Figure>> = runs.iter().map(|r| run_figures(&r.summary, &r.spread)).collect();
    let Some(first) = per_run.first() else { return Vec::new() };
    first
        .iter()
        .filter_map(|f| {
            let values: Option<Vec<f64>> =
                per_run.iter().map(|figs| figs.iter().find(|g| g.name == f.name).map(|g| g.value)).collect();
            let values = values?;
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let noise = if f.noise == 0.0 { 0.0 } else { REPEAT_NOISE };
            Some(Figure { value: mean, noise, samples: values, ..f.clone() })
        })
        .collect()
}

/// A run's latency statistics, rates, losses, error rate and generator cost.
fn run_figures(s: &Summary, spread: &BTreeMap<String, f64>) -> Vec<Figure> {
    let mut v = Vec::new();
    // All classes together (`e2e.p99`), then each class (`e2e{class=dm}.p99`), matched
    // between the two results by name.
    let tagged = s
        .latency_by_tag
        .iter()
        .flat_map(|(metric, by)| by.iter().map(move |(tag, lat)| (format!("{metric}{{{tag}}}"), metric.as_str(), lat)));
    let series = s.latency.iter().map(|(m, lat)| (m.clone(), m.as_str(), lat)).chain(tagged);
    for (series, metric, lat) in series {
        for stat in Stat::TABLE {
            let name = format!("{series}.{}", stat.name());
            // A percentile rests on the samples beyond it: with k of them, its counting
            // error is about 1/sqrt(k). The run's own spread over time (when its interval
            // log is there) is the better estimate; the larger of the two counts.
            let tail = (lat.count as f64 * (1.0 - stat.quantile())).max(1.0);
            let band = spread.get(&name).copied().unwrap_or(0.0).max(1.0 / tail.sqrt());
            let mut f = fig(&name, lat.get(stat), "µs", Better::Lower, RUN_NOISE.max(band));
            f.judged = !SET_UP.contains(&metric);
            v.push(f);
        }
    }
    let t = &s.throughput;
    v.push(fig(Counter::DeliveredPerS.path(), t.delivered_per_s, "msg/s", Better::Higher, 0.02));
    v.push(fig(Counter::SentPerS.path(), t.sent_per_s, "msg/s", Better::Higher, 0.02));
    let mut hs = fig("throughput.handshakes_per_s", t.handshakes_per_s, "1/s", Better::Higher, RUN_NOISE * 2.0);
    hs.judged = false;
    v.push(hs);
    let m = &s.messages;
    v.push(fig(Counter::MessagesLost.path(), m.lost as f64, "msgs", Better::Lower, 0.0));
    v.push(fig(Counter::MessagesRefused.path(), m.refused as f64, "msgs", Better::Lower, 0.0));
    v.push(fig(Counter::MessagesAuthFailed.path(), m.auth_failed as f64, "msgs", Better::Lower, 0.0));
    if let Some(r) = s.lookup(ERRORS_RATE) {
        v.push(fig(ERRORS_RATE, r, "fraction", Better::Lower, 0.0));
    }
    v.push(fig("generator.cpu_us_per_msg", s.generator.driver_cpu_us_per_msg, "µs", Better::Lower, RUN_NOISE * 2.0));
    if let Some(r) = s.generator.relay_cpu_us_per_msg {
        v.push(fig("relay.cpu_us_per_msg", r, "µs", Better::Lower, RUN_NOISE * 2.0));
    }
    if let Some(f) = &s.generator.floor {
        // Multiples of each machine's own floor: comparable where the machines differ.
        v.push(fig("generator.cpu_floor_multiple", f.driver, "×", Better::Lower, RUN_NOISE * 2.0));
        if let Some(t) = f.together {
            v.push(fig("together.cpu_floor_multiple", t, "×", Better::Lower, RUN_NOISE * 2.0));
        }
    }
    v
}

/// A crypto sweep's seal/open costs, handshake and X25519 rates and KDF-chain overhead;
/// the noise band is each measurement's own spread (at least 3 %). Figures match by
/// backend: `,<backend>` ends the key unless it is rustcrypto (so files from before
/// backends were a dimension still match).
fn crypto_figures(c: &CryptoReport) -> Vec<Figure> {
    let noise = |a: f64| a.max(0.03);
    let on = |b: &str| if b == Backend::RustCrypto.name() { String::new() } else { format!(",{b}") };
    let mut v = Vec::new();
    for r in &c.aead {
        let key = format!("{},{}{}", r.aead, r.size, on(&r.backend));
        v.push(fig(
            &format!("crypto.seal_ns[{key}]"),
            r.seal.ns_per_msg,
            "ns",
            Better::Lower,
            noise(r.seal.timing.spread),
        ));
        v.push(fig(
            &format!("crypto.open_ns[{key}]"),
            r.open.ns_per_msg,
            "ns",
            Better::Lower,
            noise(r.open.timing.spread),
        ));
    }
    for h in &c.handshakes {
        let name = format!("crypto.handshakes_per_s[{}{}]", h.suite, on(&h.backend));
        v.push(fig(&name, h.handshakes_per_s, "1/s", Better::Higher, noise(h.timing.spread)));
    }
    for x in &c.x25519 {
        let name = if x.backend == Backend::RustCrypto.name() {
            "crypto.x25519_ops_per_s".to_owned()
        } else {
            format!("crypto.x25519_ops_per_s[{}]", x.backend)
        };
        v.push(fig(&name, x.ops_per_s, "1/s", Better::Higher, noise(x.timing.spread)));
    }
    for m in &c.transport_modes {
        let name = format!("crypto.chain_extra_ns[{}{}]", m.aead, on(&m.backend));
        v.push(fig(&name, m.chain_extra_ns, "ns", Better::Lower, 0.05));
    }
    v
}

/// Each matrix cell's medians; the repeats' own spread is the noise band (at least
/// RUN_NOISE).
fn matrix_figures(m: &Matrix) -> Vec<Figure> {
    let mut v = Vec::new();
    for c in &m.cells {
        // Cells match by backend, transport and franking too: `aead/pattern/mode/ring/wss/franked`
        // (the defaults, rustcrypto, ws and unfranked, left out), and the old mode name `ratchet` is
        // `kdf-chain`.
        let mode = if c.mode == crate::scenario::OLD_KDF_CHAIN_NAME { "kdf-chain" } else { c.mode.as_str() };
        let franked = if c.franking { "/franked" } else { "" };
        let cell =
            format!("{}/{}/{mode}{}{}{franked}", c.aead, c.pattern, c.backend_suffix("/"), c.transport_suffix("/"));
        let mut add = |what: &str, st: Option<Spread>, unit: &'static str, better: Better| {
            if let Some(st) = st {
                let spread = if st.median.abs() > 0.0 { (st.max - st.min) / st.median.abs() } else { 0.0 };
                v.push(fig(&format!("matrix.{what}[{cell}]"), st.median, unit, better, spread.max(RUN_NOISE)));
            }
        };
        add("delivered_per_s", c.throughput_per_s, "msg/s", Better::Higher);
        add("e2e_p50_us", c.e2e_p50_us, "µs", Better::Lower);
        add("e2e_p99_us", c.e2e_p99_us, "µs", Better::Lower);
        add("e2e_p999_us", c.e2e_p999_us, "µs", Better::Lower);
        add("handshake_p99_us", c.handshake_p99_us, "µs", Better::Lower);
        add("connect_p99_us", c.connect_p99_us, "µs", Better::Lower);
        add("tls_p99_us", c.tls_p99_us, "µs", Better::Lower);
        add("seal_ns", c.seal_ns, "ns", Better::Lower);
        add("open_ns", c.open_ns, "ns", Better::Lower);
        add("cpu_ms_per_1000_msgs", c.cpu_ms_per_1000_msgs, "ms", Better::Lower);
    }
    // Connect times come from the set-up burst: shown, not judged (as in a run's figures).
    for f in v.iter_mut().filter(|f| f.name.starts_with("matrix.connect_") || f.name.starts_with("matrix.tls_")) {
        f.judged = false;
    }
    v
}

/// What a capacity search found; its precision is the noise band.
fn capacity_figures(c: &Capacity) -> Vec<Figure> {
    let unit = if c.search == "clients" { "clients" } else { "msg/s" };
    let precision = 0.05;
    [
        ("capacity.value", c.capacity),
        ("capacity.highest_passing", c.highest_passing),
        ("capacity.generator_limit", c.generator_limit),
    ]
    .into_iter()
    .filter_map(|(name, x)| x.map(|x| fig(name, x, unit, Better::Higher, precision)))
    .collect()
}

fn fig(name: &str, value: f64, unit: &'static str, better: Better, noise: f64) -> Figure {
    Figure { name: name.to_owned(), value, unit, better, noise, judged: true, samples: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timing() -> serde_json::Value {
        json!({"ns_median": 100.0, "ns_min": 99.0, "ns_max": 101.0, "spread": 0.02, "iterations": 10, "samples": 5})
    }

    fn op() -> serde_json::Value {
        json!({"ns_per_msg": 100.0, "mb_per_s": 1.0, "timing": timing()})
    }

    /// A crypto.json of schema 1 (no backends; `x25519` one object; `ratchet_*` fields)
    /// with, when `ring` is set, a schema 2 ring row added.
    fn report(ring: bool) -> CryptoReport {
        let mut aead = vec![json!({"aead": "aes-256-gcm", "encrypted": true, "size": 64, "seal": op(), "open": op()})];
        if ring {
            aead.push(json!({"backend": "ring", "aead": "aes-256-gcm", "encrypted": true, "size": 64, "seal": op(), "open": op()}));
        }
        let v = json!({
            "schema_version": 1, "kind": "crypto",
            "provenance": {"sealbench_version": "0.1.0", "git_revision": "x", "crate_versions": {}, "cpu_model": "c",
                "cpu_flags": {}, "cores": 2, "os": "linux", "build_profile": "release", "started_at": "t"},
            "settings": {"quick": true, "sample_ms": 30.0, "samples": 5, "ring_bytes": 1, "duration_s": 1.0},
            "aead": aead,
            "handshakes": [],
            "x25519": {"ops_per_s": 1.0, "us_per_op": 1.0, "timing": timing()},
            "transport_modes": [{"aead": "aes-256-gcm", "size": 256, "noise_seal_ns": 1.0, "noise_open_ns": 1.0,
                "ratchet_seal_ns": 2.0, "ratchet_open_ns": 2.0, "ratchet_extra_ns": 2.0,
                "timings": [timing(), timing(), timing(), timing()]}]
        });
        serde_json::from_value(v).expect("a schema 1 crypto.json still loads")
    }

    #[test]
    fn crypto_figures_match_by_backend_and_old_files_keep_their_names() {
        let names: Vec<String> = crypto_figures(&report(true)).into_iter().map(|f| f.name).collect();
        for n in [
            "crypto.seal_ns[aes-256-gcm,64]",
            "crypto.seal_ns[aes-256-gcm,64,ring]",
            "crypto.x25519_ops_per_s",
            "crypto.chain_extra_ns[aes-256-gcm]",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        let old = report(false);
        assert_eq!(old.transport_modes[0].chain_extra_ns, 2.0);
        assert_eq!(old.x25519.len(), 1);
        assert_eq!(old.aead[0].backend, "rustcrypto");
    }
}
