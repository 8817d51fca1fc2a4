//! Combining the results of a split run (`sealbench run --shard I/N` on several processes
//! or machines) into one result, exactly: histograms added from every part's interval log
//! (never percentiles averaged), counters summed, seconds aligned on wall-clock time.
//!
//! The merge reads only the files a run leaves (`summary.json`, `latency.hlog`,
//! `timeseries.csv`) and rebuilds the run's [`Outcome`], so the merged result is written,
//! judged and drawn by the same code as any run. What cannot be merged is kept per part:
//! the generator's saturation verdict (a verdict about one process), and how late each part
//! was for the common start.

use super::hlog;
use super::summary::{PartVerdict, Summary};
use crate::driver::recorder::{Counters, Histograms, Metric};
use crate::driver::{Outcome, Phase, Second, Tally};
use crate::scenario::Plan;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One part's result, read back.
#[derive(Debug)]
pub struct PartResult {
    /// Its directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its interval log's base time (the run's start), Unix seconds.
    base_unix_s: f64,
    /// Its interval log.
    intervals: Vec<hlog::Interval>,
    /// Its `timeseries.csv` rows.
    rows: Vec<Row>,
}

/// The counts of one `timeseries.csv` row that a merged second sums.
#[derive(Debug, Clone)]
struct Row {
    t: u64,
    phase: Phase,
    connected: usize,
    handshakes: u64,
    sent: u64,
    delivered: u64,
    refused: u64,
    errors: u64,
    messages: u64,
}

impl PartResult {
    /// Reads the result in `dir`.
    ///
    /// # Errors
    /// A file missing or unreadable (named), or one that is not what `run` writes.
    pub fn read(dir: &Path) -> Result<PartResult> {
        let file = |name: &str| dir.join(name);
        let text = std::fs::read_to_string(file("summary.json"))
            .with_context(|| format!("{}: not a run's result", file("summary.json").display()))?;
        let summary: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run's summary", file("summary.json").display()))?;
        let log = std::fs::read(file("latency.hlog")).with_context(|| format!("{}", file("latency.hlog").display()))?;
        let base_unix_s = base_time(&log).ok_or_else(|| anyhow!("{}: no BaseTime", file("latency.hlog").display()))?;
        let intervals = hlog::read(&log).with_context(|| format!("{}", file("latency.hlog").display()))?;
        let csv = std::fs::read_to_string(file("timeseries.csv"))
            .with_context(|| format!("{}", file("timeseries.csv").display()))?;
        let rows = rows(&csv).with_context(|| format!("{}", file("timeseries.csv").display()))?;
        agrees(&summary, &intervals).with_context(|| {
            format!("{} disagrees with {}", file("latency.hlog").display(), file("summary.json").display())
        })?;
        Ok(PartResult { dir: dir.to_owned(), summary, base_unix_s, intervals, rows })
    }
}

/// A part's interval log holds exactly the samples its summary counts, metric by metric
/// (a truncated or foreign log would otherwise merge silently into wrong figures).
fn agrees(summary: &Summary, intervals: &[hlog::Interval]) -> Result<()> {
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for i in intervals.iter().filter(|i| i.class.is_none()) {
        *counted.entry(i.metric.as_str()).or_default() += i.hist.len();
    }
    for (metric, l) in &summary.latency {
        let logged = counted.get(metric.as_str()).copied().unwrap_or(0);
        if logged != l.count {
            bail!(
                "`{metric}`: the log holds {logged} samples, the summary counts {} (a truncated or foreign log?)",
                l.count
            );
        }
    }
    if let Some((metric, n)) = counted.iter().find(|(m, n)| **n > 0 && !summary.latency.contains_key(**m)) {
        bail!("`{metric}`: the log holds {n} samples the summary does not count");
    }
    Ok(())
}

/// The `#[BaseTime: …]` of an interval log.
fn base_time(log: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(&log[..log.len().min(4096)]).ok()?;
    let line = text.lines().find(|l| l.starts_with("#[BaseTime:"))?;
    line.trim_start_matches("#[BaseTime:").split_whitespace().next()?.parse().ok()
}

/// The rows of a `timeseries.csv`, by column name (later columns may be added).
fn rows(csv: &str) -> Result<Vec<Row>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| anyhow!("empty"))?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| anyhow!("no column `{name}`"));
    let c = [
        col("t_s")?,
        col("phase")?,
        col("connected")?,
        col("handshakes")?,
        col("sent_per_s")?,
        col("delivered_per_s")?,
        col("refused")?,
        col("errors")?,
    ];
    let messages = col("messages_per_s").ok();
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            let num = |k: usize| -> Result<u64> {
                cells.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("line {}: column {k}", i + 2))
            };
            let phase =
                cells.get(c[1]).and_then(|p| Phase::from_name(p)).ok_or_else(|| anyhow!("line {}: phase", i + 2))?;
            Ok(Row {
                t: num(c[0])?,
                phase,
                connected: num(c[2])? as usize,
                handshakes: num(c[3])?,
                sent: num(c[4])?,
                delivered: num(c[5])?,
                refused: num(c[6])?,
                errors: num(c[7])?,
                // Older files: one message per delivery.
                messages: messages.map_or(Ok(num(c[4])?), &num)?,
            })
        })
        .collect()
}

/// The merged run: its plan (the whole scenario), its rebuilt outcome, and each part's
/// verdict.
#[derive(Debug)]
pub struct Merged {
    /// The plan of the whole run.
    pub plan: Plan,
    /// The outcome rebuilt from every part.
    pub outcome: Outcome,
    /// Each part's directory, part and generator verdict.
    pub parts: Vec<PartVerdict>,
    /// What the merge found worth saying (a part missing, parts that did not overlap).
    pub warnings: Vec<String>,
    /// The largest part's peak memory, KiB.
    pub parts_peak_rss_kib: u64,
    /// Only some parts were merged (`--partial`): which are missing.
    pub partial: Option<String>,
}

/// Merges `parts` (at least one).
///
/// # Errors
/// Parts of different scenarios, the same part twice, or parts that are not of one split.
pub fn merge(parts: &[PartResult], allow_partial: bool) -> Result<Merged> {
    let first = parts.first().ok_or_else(|| anyhow!("merge: give at least one result directory"))?;
    // Parts may connect from different addresses (machines): the rest must be the same.
    let same = |s: &crate::scenario::Scenario| {
        let mut s = s.clone();
        s.clients.source_addresses.clear();
        s
    };
    let scenario = same(&first.summary.scenario);
    let mut warnings = Vec::new();
    let mut partial = None;
    let mut seen = BTreeMap::new();
    for p in parts {
        if same(&p.summary.scenario) != scenario {
            bail!(
                "{} ran a different scenario than {} (name, seed or a field differs): only parts of one run merge",
                p.dir.display(),
                first.dir.display()
            );
        }
        if let Some(split) = &p.summary.split {
            if split.part.index >= split.part.count {
                bail!(
                    "{}: part {} cannot be (parts are numbered 0 to {})",
                    p.dir.display(),
                    split.part,
                    split.part.count - 1
                );
            }
            if let Some(other) = seen.insert(split.part.index, &p.dir) {
                bail!("{} and {} are both part {}", other.display(), p.dir.display(), split.part);
            }
        }
    }
    let counts: Vec<usize> = parts.iter().filter_map(|p| p.summary.split.as_ref().map(|s| s.part.count)).collect();
    if let Some(&n) = counts.first() {
        if counts.iter().any(|&c| c != n) || counts.len() != parts.len() {
            bail!("the results are not all parts of one split into {n} (check each summary.json's `split`)");
        }
        let missing: Vec<usize> = (0..n).filter(|i| !seen.contains_key(i)).collect();
        if !missing.is_empty() {
            let what = format!("parts {missing:?} of {n} are missing: the merged figures cover only the others");
            if !allow_partial {
                bail!(
                    "{what}. Give every part, or pass --partial to merge these alone (the result then says it is partial)"
                );
            }
            partial = Some(what.clone());
            warnings.push(what);
        }
    }
    // The parts' source addresses are the merged run's; they need not be this machine's.
    let mut sources: Vec<String> =
        parts.iter().flat_map(|p| p.summary.scenario.clients.source_addresses.clone()).collect();
    sources.dedup();
    let mut checked = scenario.clone();
    checked.clients.source_addresses = vec!["127.0.0.1".into()];
    let mut plan = Plan::new(checked).context("the parts' scenario")?;
    plan.scenario.clients.source_addresses = sources;
    let outcome = rebuild(parts)?;
    let verdicts = parts
        .iter()
        .map(|p| PartVerdict {
            dir: p.dir.display().to_string(),
            part: p.summary.split.as_ref().map(|s| s.part),
            saturated: p.summary.generator.saturated,
            saturation_reasons: p.summary.generator.saturation_reasons.clone(),
            late_start_s: p.summary.split.as_ref().and_then(|s| s.late_start_s),
            cores: p.summary.generator.cores.clone(),
        })
        .collect();
    let parts_peak_rss_kib = parts.iter().map(|p| p.summary.generator.process_peak_rss_kib).max().unwrap_or(0);
    Ok(Merged { plan, outcome, parts: verdicts, warnings, parts_peak_rss_kib, partial })
}

/// The outcome of the whole run: histograms added, counters summed, seconds on one
/// wall-clock axis (from the earliest part's start).
fn rebuild(parts: &[PartResult]) -> Result<Outcome> {
    let origin = parts.iter().map(|p| p.base_unix_s).fold(f64::INFINITY, f64::min);
    let wall = |p: &PartResult, t: f64| (p.base_unix_s - origin + t).round().max(0.0) as u64;
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    let blank = |t: u64, phase: Phase| Second {
        t,
        phase,
        hist: Histograms::new(),
        delta: Counters::new(),
        connected: 0,
        busy: 0.0,
        stage: None,
        at_s: t as f64,
    };
    let mut total = Histograms::new();
    for p in parts {
        for r in &p.rows {
            let t = wall(p, r.t as f64);
            let s = seconds.entry(t).or_insert_with(|| blank(t, r.phase));
            s.connected += r.connected;
            let d = &mut s.delta;
            d.handshakes_ok += r.handshakes;
            d.sent += r.sent;
            d.delivered += r.delivered;
            d.messages += r.messages;
            d.refused[0] += r.refused; // by code only in the totals
            d.other_errors += r.errors;
        }
        for i in &p.intervals {
            let m = Metric::ALL
                .into_iter()
                .find(|m| m.name() == i.metric)
                .ok_or_else(|| anyhow!("{}: unknown metric `{}` in latency.hlog", p.dir.display(), i.metric))?;
            // An interval of second t starts at t - 1.
            let t = wall(p, i.start_s + 1.0);
            let s = seconds.entry(t).or_insert_with(|| blank(t, Phase::Steady));
            s.hist.add_series(m, i.class.as_ref(), &i.hist);
            total.add_series(m, i.class.as_ref(), &i.hist);
        }
    }
    let first = &parts[0].summary;
    Ok(Outcome {
        tally: tally(parts, total, seconds.into_values().collect()),
        start_at_unix_s: first.split.as_ref().and_then(|s| s.start_at_unix_s),
        wall_s: parts.iter().map(|p| p.summary.wall_s).fold(0.0, f64::max),
        shards: parts.iter().map(|p| p.summary.generator.shards).sum(),
        relay_workers: None,
        relay_url: first.relay.clone(),
        started_unix_s: origin,
        relay_stats: None,
        relay_steady_cpu_s: None,
        // The busiest part's machine: other work there slowed the whole run's schedule.
        others_cores: parts.iter().filter_map(|p| p.summary.generator.others_cores).reduce(f64::max),
        steal_cores: parts.iter().filter_map(|p| p.summary.generator.steal_cores).reduce(f64::max),
        // Each part's own pinning is in its own summary; the merge does not combine them.
        cpus: Default::default(),
    })
}

/// What the parts measured together, as the coordinator of one run would have tallied it
/// (`total`, `seconds`: their histograms and seconds, already merged).
fn tally(parts: &[PartResult], total: Histograms, seconds: Vec<Second>) -> Tally {
    let sum = |f: fn(&Summary) -> f64| parts.iter().map(|p| f(&p.summary)).sum::<f64>();
    let max = |f: fn(&Summary) -> f64| parts.iter().map(|p| f(&p.summary)).fold(0.0, f64::max);
    // Each part's CPU seconds were its nanoseconds / 1e9: rounding gives them back.
    let ns = |f: fn(&Summary) -> f64| parts.iter().map(|p| (f(&p.summary) * 1e9).round() as u64).sum::<u64>();
    let steady_sent = parts
        .iter()
        .map(|p| {
            let g = &p.summary.generator;
            if g.driver_cpu_us_per_msg > 0.0 {
                (g.steady_cpu_s * 1e6 / g.driver_cpu_us_per_msg).round() as u64
            } else {
                0
            }
        })
        .sum();
    Tally {
        total,
        counters: counters(parts),
        seconds,
        measured_s: max(|s| s.throughput.seconds),
        steady_start_s: None,
        late_start_s: None,
        setup_s: 0.0,
        // Handshakes ran in every part at once: the merged rate is their sum.
        handshake_s: {
            let rate = sum(|s| s.throughput.handshakes_per_s);
            let n: u64 = parts.iter().map(|p| p.summary.clients.handshakes_ok).sum();
            if rate > 0.0 { n as f64 / rate } else { 0.0 }
        },
        cpu_ns: ns(|s| s.generator.driver_cpu_s),
        steady_cpu_ns: ns(|s| s.generator.steady_cpu_s),
        steady_sent,
        // Each part's wake-ups: its per-message figure times its messages.
        steady_wakes: parts
            .iter()
            .map(|p| {
                let g = &p.summary.generator;
                let sent =
                    if g.driver_cpu_us_per_msg > 0.0 { g.steady_cpu_s * 1e6 / g.driver_cpu_us_per_msg } else { 0.0 };
                g.driver_wakes_per_msg.map(|w| (w * sent).round() as u64)
            })
            .sum(),
        interrupted: parts.iter().any(|p| p.summary.interrupted),
        aborted: parts.iter().find_map(|p| p.summary.aborted.clone()),
    }
}

/// Every part's counters summed, from the accounting in their summaries.
fn counters(parts: &[PartResult]) -> Counters {
    let mut c = Counters::new();
    for p in parts {
        c.add(&super::accounting::counters_of(&p.summary.clients, &p.summary.messages));
    }
    c
}

/// The merged result's summary: the whole run's, with each part's generator verdict, and
/// saturated when any part was.
pub fn summary(merged: &Merged, provenance: crate::provenance::Provenance) -> Summary {
    let mut s = Summary::build(&merged.plan, &merged.outcome, provenance);
    s.header.kind = "merge".into();
    s.parts = merged.parts.clone();
    s.partial = merged.partial.clone();
    let which = |p: &PartVerdict| p.part.map_or_else(|| p.dir.clone(), |x| format!("part {x}"));
    s.generator.saturated = merged.parts.iter().any(|p| p.saturated);
    // Each part's own reasons (or notes: other work on its machine, lag without a cause).
    let reasons = merged
        .parts
        .iter()
        .filter(|p| !p.saturation_reasons.is_empty())
        .map(|p| format!("{}: {}", which(p), p.saturation_reasons.join("; ")));
    s.generator.saturation_reasons = if s.generator.saturated {
        reasons.collect()
    } else {
        std::iter::once(format!("no part saturated ({} parts judged on their own)", merged.parts.len()))
            .chain(reasons)
            .collect()
    };
    // The parts ran on their own cores (perhaps machines): the merging process's pinning
    // (none) says nothing about them.
    let cores: Vec<&str> = merged.parts.iter().filter_map(|p| p.cores.as_deref()).collect();
    s.generator.cores = match cores.first() {
        None => None,
        Some(first) if cores.len() == merged.parts.len() && cores.iter().all(|c| c == first) => {
            Some(format!("{first} (in each of the {} parts)", merged.parts.len()))
        }
        Some(_) => Some(
            merged
                .parts
                .iter()
                .map(|p| format!("{}: {}", which(p), p.cores.as_deref().unwrap_or("not recorded")))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    // The merging process's memory says nothing; the largest part's does.
    s.generator.process_peak_rss_kib = merged.parts_peak_rss_kib;
    s
}
