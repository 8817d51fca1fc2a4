//! `sealbench matrix SCENARIO --aead a,b --pattern XX,IK --mode noise,ratchet`: the same
//! scenario (same seed, same schedule) once per combination, in an interleaved order
//! repeated `--repeat` times, then one table of what each choice costs end to end.

use crate::cli::MatrixArgs;
use crate::commands::run::execute_quiet;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::provenance::Provenance;
use crate::results::summary::Summary;
use crate::scenario::Scenario;
use anyhow::{Context, anyhow};
use sealcore::AeadKind;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::process::ExitCode;

/// Median and spread of one figure over the repeats.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stat { median, min: v[0], max: v[n - 1] })
    }
}

/// One combination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// AEAD short name (`none` = UNENCRYPTED baseline).
    pub aead: String,
    /// Handshake pattern.
    pub pattern: String,
    /// Transport mode.
    pub mode: String,
    /// Run directories (relative to the matrix directory), one per repeat.
    pub runs: Vec<String>,
    /// Delivered messages per second.
    pub throughput_per_s: Option<Stat>,
    /// e2e p50, µs.
    pub e2e_p50_us: Option<Stat>,
    /// e2e p99, µs.
    pub e2e_p99_us: Option<Stat>,
    /// e2e p99.9, µs.
    pub e2e_p999_us: Option<Stat>,
    /// Handshake p99, µs.
    pub handshake_p99_us: Option<Stat>,
    /// Seal, mean ns per message (sampled in the run).
    pub seal_ns: Option<Stat>,
    /// Open, mean ns per message.
    pub open_ns: Option<Stat>,
    /// Driver CPU per 1,000 messages, ms (= µs per message).
    pub cpu_ms_per_1000_msgs: Option<Stat>,
    /// (seal + open) / e2e p50: the share of the median end-to-end time that is crypto.
    pub crypto_share: Option<f64>,
    /// Lost messages over all repeats.
    pub lost: u64,
    /// Some repeat's generator saturated (its latencies describe the generator).
    pub saturated: bool,
}

impl Cell {
    /// `aead / pattern / mode`.
    pub fn label(&self) -> String {
        let aead = self.aead.parse::<AeadKind>().map(|a| a.label().to_owned()).unwrap_or_else(|_| self.aead.clone());
        format!("{aead} / {} / {}", self.pattern, self.mode)
    }
}

/// `matrix.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Matrix {
    /// Layout version.
    pub schema_version: u32,
    /// Always `matrix`.
    pub kind: String,
    /// Machine and software.
    pub provenance: Provenance,
    /// The scenario every cell ran (before the cell's crypto overrides).
    pub scenario: Scenario,
    /// Repeats per cell.
    pub repeat: usize,
    /// The order runs were made in (cell indices), for drift analysis.
    pub order: Vec<usize>,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// Runs `sealbench matrix`.
///
/// # Errors
/// Exit 2 for a bad scenario or choice; exit 1 when a run fails.
pub fn run(args: &MatrixArgs) -> Outcome {
    let base = Scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
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
    let cells: Vec<Cell> = cells.iter().zip(&summaries).map(|((a, p, m), runs)| cell(a, p, m, runs)).collect();
    let matrix = Matrix { schema_version: 1, kind: "matrix".into(), provenance, scenario: base, repeat, order, cells };
    output::write_json(&dir.join("matrix.json"), &matrix)?;
    let md = markdown(&matrix);
    output::write_atomic(&dir.join("matrix.md"), md.as_bytes())?;
    crate::present::plot::matrix::render_all(&dir, &matrix)?;
    crate::present::html::write_matrix(&dir, &matrix, &md)?;
    println!("{md}");
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn cell(a: &str, p: &str, m: &str, runs: &[(String, Summary)]) -> Cell {
    let get = |f: &dyn Fn(&Summary) -> Option<f64>| Stat::of(runs.iter().filter_map(|(_, s)| f(s)).collect());
    let lat = |name: &'static str, pick: fn(&crate::results::summary::Latency) -> f64| {
        move |s: &Summary| s.latency.get(name).map(pick)
    };
    let e2e_p50 = get(&lat("e2e", |l| l.p50_us));
    let seal = get(&|s| s.latency.get("seal").map(|l| l.mean_us * 1e3));
    let open = get(&|s| s.latency.get("open").map(|l| l.mean_us * 1e3));
    let crypto_share = match (seal, open, e2e_p50) {
        (Some(s), Some(o), Some(e)) if e.median > 0.0 => Some((s.median + o.median) / (e.median * 1e3)),
        _ => None,
    };
    Cell {
        aead: a.into(),
        pattern: p.into(),
        mode: m.into(),
        runs: runs.iter().map(|(n, _)| n.clone()).collect(),
        throughput_per_s: get(&|s| Some(s.throughput.delivered_per_s)),
        e2e_p50_us: e2e_p50,
        e2e_p99_us: get(&lat("e2e", |l| l.p99_us)),
        e2e_p999_us: get(&lat("e2e", |l| l.p999_us)),
        handshake_p99_us: get(&lat("handshake", |l| l.p99_us)),
        seal_ns: seal,
        open_ns: open,
        cpu_ms_per_1000_msgs: get(&|s| Some(s.generator.driver_cpu_us_per_msg)),
        crypto_share,
        lost: runs.iter().map(|(_, s)| s.messages.lost).sum(),
        saturated: runs.iter().any(|(_, s)| s.generator.saturated),
    }
}

fn fmt_stat(s: Option<Stat>, scale: f64, digits: usize) -> String {
    match s {
        None => "—".into(),
        Some(s) if (s.max - s.min).abs() < f64::EPSILON => format!("{:.*}", digits, s.median * scale),
        Some(s) => {
            format!("{:.*} ({:.*}–{:.*})", digits, s.median * scale, digits, s.min * scale, digits, s.max * scale)
        }
    }
}

/// The table a person can paste into a design doc.
pub fn markdown(m: &Matrix) -> String {
    let mut s = String::new();
    let sc = &m.scenario;
    let _ = writeln!(
        s,
        "## sealbench matrix — `{}`: {} clients, {} B messages, {} repeat(s), median (min–max)\n",
        sc.name, sc.clients.count, sc.traffic.size, m.repeat
    );
    let _ = writeln!(
        s,
        "| AEAD / pattern / mode | delivered msg/s | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | handshake p99 ms | seal ns/msg | open ns/msg | driver CPU ms / 1000 msgs | crypto share of e2e p50 | lost |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &m.cells {
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.label(),
            if c.saturated { " ⚠ generator saturated" } else { "" },
            fmt_stat(c.throughput_per_s, 1.0, 0),
            fmt_stat(c.e2e_p50_us, 1e-3, 3),
            fmt_stat(c.e2e_p99_us, 1e-3, 3),
            fmt_stat(c.e2e_p999_us, 1e-3, 3),
            fmt_stat(c.handshake_p99_us, 1e-3, 2),
            fmt_stat(c.seal_ns, 1.0, 0),
            fmt_stat(c.open_ns, 1.0, 0),
            fmt_stat(c.cpu_ms_per_1000_msgs, 1.0, 2),
            c.crypto_share.map_or("—".into(), |x| format!("{:.1}%", x * 100.0)),
            c.lost
        );
    }
    let _ = writeln!(
        s,
        "\n`none` is the UNENCRYPTED baseline: the difference to it is what encryption costs. Seal/open are\n\
         means of the per-message timings sampled inside the runs; driver CPU is the load driver's (relay excluded)."
    );
    s
}
