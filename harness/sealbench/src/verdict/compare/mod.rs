//! `sealbench compare BASE NEW`: every comparable figure of two results, its change, and a
//! verdict for CI (`--fail-on` rules; exit 99 on regression).
//!
//! # Layout
//! - [`figures`] — results read back as named figures with a direction and a noise band.
//! - this module — rules, the comparison, the compatibility check and the table.

pub mod figures;

use crate::results::figure::{Unit, format_us, parse_quantity, us_per};
use anyhow::{Result, anyhow, bail};
use figures::{Better, Figure, Loaded};
use serde::Serialize;
use std::fmt::Write as _;

/// A `--fail-on` rule: `<figure pattern> > +10%`, `< -5%`, or absolute `> +2` / `> +500us`
/// (units as [`parse_quantity`] reads them; a duration is converted into the unit of each
/// figure it is applied to).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As written.
    pub expr: String,
    /// Figure name, `*` matches any run of characters.
    pub pattern: String,
    /// `true` for `>` (an increase is a regression), `false` for `<` (a decrease is).
    pub increase: bool,
    /// Allowed change: relative (fraction), a duration in µs, or absolute in the figure's unit.
    pub limit: f64,
    /// Relative (`%`) or absolute.
    pub relative: bool,
    /// The limit was written as a duration (`+500ns`, `+2ms`): it is in µs and applies only
    /// to figures measured in a unit of time.
    pub duration: bool,
}

impl Rule {
    /// Parses a rule.
    ///
    /// # Errors
    /// When it is not `<figure> (>|<) [+|-]<number>[%]`.
    pub fn parse(expr: &str) -> Result<Rule> {
        let (pos, increase) = match (expr.find('>'), expr.find('<')) {
            (Some(p), None) => (p, true),
            (None, Some(p)) => (p, false),
            _ => bail!("--fail-on `{expr}`: expected `<figure> > +10%` or `<figure> < -5%`"),
        };
        let pattern = expr[..pos].trim().to_owned();
        if pattern.is_empty() {
            bail!("--fail-on `{expr}`: no figure name before the operator");
        }
        let rhs = expr[pos + 1..].trim();
        let q = parse_quantity(rhs).map_err(|e| anyhow!("--fail-on `{expr}`: {e}"))?;
        let relative = q.unit == Unit::Percent;
        let duration = q.unit == Unit::Duration;
        Ok(Rule { expr: expr.trim().to_owned(), pattern, increase, limit: q.value.abs(), relative, duration })
    }

    /// Whether the rule names figure `name` (`*` matches any text).
    pub fn matches(&self, name: &str) -> bool {
        wildcard(&self.pattern, name)
    }

    /// Is the change from `base` to `new` of a figure in `unit` a violation? None when the
    /// rule's limit is a duration and the figure is not measured in time.
    fn violated_in(&self, unit: &str, base: f64, new: f64) -> Option<bool> {
        let limit = if self.duration { self.limit / us_per(unit)? } else { self.limit };
        let delta = if self.increase { new - base } else { base - new };
        Some(if self.relative {
            if base.abs() < f64::EPSILON {
                return Some(delta > 0.0);
            }
            delta / base.abs() > limit
        } else {
            delta > limit
        })
    }

    /// [`Rule::violated_in`] for a figure in µs (or without a unit).
    #[cfg(test)]
    fn violated(&self, base: f64, new: f64) -> bool {
        self.violated_in("µs", base, new).unwrap_or(false)
    }
}

fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(at) = rest.find(p) {
            rest = &rest[at + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// The rules used when none is given.
pub fn default_rules(kind: &str) -> Vec<Rule> {
    let v: &[&str] = match kind {
        "crypto" => &["crypto.seal_ns[*] > +10%", "crypto.open_ns[*] > +10%", "crypto.handshakes_per_s[*] < -10%"],
        "matrix" => &["matrix.e2e_p99_us[*] > +10%", "matrix.delivered_per_s[*] < -5%"],
        "capacity" => &["capacity.value < -10%", "capacity.highest_passing < -10%"],
        _ => &[
            "e2e.p99 > +10%",
            "e2e.p50 > +10%",
            "throughput.delivered_per_s < -5%",
            "messages.lost > +0",
            "messages.auth_failed > +0",
        ],
    };
    v.iter().filter_map(|r| Rule::parse(r).ok()).collect()
}

/// How a figure changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better beyond the noise band.
    Better,
    /// Worse beyond the noise band.
    Worse,
    /// Within the noise band.
    WithinNoise,
    /// Shown, not judged (a set-up figure: see [`Figure::judged`]).
    NotJudged,
}

/// One compared figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Figure name.
    pub name: String,
    /// Unit.
    pub unit: &'static str,
    /// Base value.
    pub base: f64,
    /// New value.
    pub new: f64,
    /// new − base.
    pub delta: f64,
    /// (new − base) / base, when base ≠ 0.
    pub relative: Option<f64>,
    /// Better, worse or within noise.
    pub verdict: Verdict,
    /// `--fail-on` rules this change violates.
    pub violates: Vec<String>,
    /// The noise band, relative (a fraction): a change within ±band is noise, and no rule
    /// fires on it (the two results' own uncertainties added in quadrature).
    pub band: f64,
    /// The same band in the figure's unit, around the base value.
    pub band_abs: f64,
}

/// Whether a rule can fire at these results' noise.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReach {
    /// The rule as written.
    pub rule: String,
    /// Judged figures it applies to.
    pub figures: usize,
    /// Of those, figures whose noise band is wider than the rule's limit: a change the rule
    /// names but within the band cannot fire on them.
    pub blunted: Vec<String>,
    /// The widest band among its figures (relative, a fraction).
    pub widest_band: f64,
}

/// The whole comparison (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// `run` or `crypto`.
    pub kind: String,
    /// Figures in both results.
    pub rows: Vec<Row>,
    /// Rules applied.
    pub rules: Vec<String>,
    /// Per rule: whether it can fire at these results' noise.
    pub reach: Vec<RuleReach>,
    /// Warnings (provenance differs, …).
    pub warnings: Vec<String>,
    /// True when some rule was violated.
    pub regression: bool,
}

/// Checks that two results can be compared meaningfully; returns warnings.
///
/// # Errors
/// Different kinds; or, without `force`, runs whose scenario differs in what shapes the
/// load (clients, message sizes, rate, arrival, senders, duration).
pub fn compatible(base: &Loaded, new: &Loaded, force: bool) -> Result<Vec<String>> {
    if base.kind() != new.kind() {
        bail!("cannot compare a {} result with a {} result", base.kind(), new.kind());
    }
    let mut warnings = Vec::new();
    let (pa, pb) = (base.provenance(), new.provenance());
    if pa.cpu_model != pb.cpu_model || pa.cores != pb.cores {
        warnings.push(format!(
            "machines differ: {} ({} cores) vs {} ({} cores) — differences may be the machine's",
            pa.cpu_model, pa.cores, pb.cpu_model, pb.cores
        ));
    }
    if let (Some(ca), Some(cb)) = (&pa.calibration, &pb.calibration) {
        if let Some(w) = crate::provenance::calibration::differ(ca, cb) {
            warnings.push(w);
        }
    }
    if pa.build_profile != pb.build_profile {
        warnings.push(format!("build profiles differ: {} vs {}", pa.build_profile, pb.build_profile));
    }
    if let (Loaded::Matrix(a), Loaded::Matrix(b)) = (base, new)
        && a.scenario != b.scenario
        && !force
    {
        bail!("the matrices ran different scenarios; pass --force to compare anyway");
    }
    if let (Loaded::Capacity(a), Loaded::Capacity(b)) = (base, new)
        && (a.search != b.search || a.slos != b.slos)
        && !force
    {
        bail!("the capacity searches differ (search kind or SLOs); pass --force to compare anyway");
    }
    if let (Loaded::Run(a), Loaded::Run(b)) = (base, new) {
        let (a, b) = (&a.summary, &b.summary);
        let (sa, sb) = (&a.scenario, &b.scenario);
        let mut diffs = Vec::new();
        if sa.clients.count != sb.clients.count {
            diffs.push(format!("clients.count {} vs {}", sa.clients.count, sb.clients.count));
        }
        if sa.traffic.size != sb.traffic.size || sa.traffic.sizes != sb.traffic.sizes {
            diffs.push(format!("message size {} vs {}", sa.traffic.size, sb.traffic.size));
        }
        if (a.throughput.offered_per_s - b.throughput.offered_per_s).abs() > 1e-6 * a.throughput.offered_per_s.max(1.0)
        {
            diffs.push(format!(
                "offered rate {:.0}/s vs {:.0}/s",
                a.throughput.offered_per_s, b.throughput.offered_per_s
            ));
        }
        if sa.traffic.arrival != sb.traffic.arrival || sa.traffic.senders != sb.traffic.senders {
            diffs.push("traffic.arrival / traffic.senders".into());
        }
        if sa.duration != sb.duration {
            diffs.push(format!("duration {:?} vs {:?}", sa.duration, sb.duration));
        }
        if !diffs.is_empty() {
            let msg = format!("the runs do not measure the same load: {}", diffs.join("; "));
            if force {
                warnings.push(format!("{msg} (compared anyway: --force)"));
            } else {
                bail!("{msg}. Comparing them would be meaningless; pass --force to compare anyway.");
            }
        }
        if a.suite != b.suite {
            warnings.push(format!("suites differ: {} vs {}", a.suite, b.suite));
        }
        if a.generator.saturated || b.generator.saturated {
            warnings.push("a run's generator was saturated: its latencies describe the generator".into());
        }
        for (which, r) in [("base", a), ("new", b)] {
            if let Some(w) = crate::results::others::other_work(r) {
                warnings.push(format!("the {which} run did not have its machine to itself: {w}"));
            }
        }
    }
    Ok(warnings)
}

/// Compares two results.
pub fn compare(base: &Loaded, new: &Loaded, rules: &[Rule], warnings: Vec<String>) -> Comparison {
    let fa = figures::figures(base);
    let fb = figures::figures(new);
    let mut rows = Vec::new();
    let mut warnings = warnings;
    // A traffic class one run has and the other has not (a workload changed, or a class
    // had no samples) is reported, not judged.
    for (name, side) in one_sided_classes(&fa, &fb) {
        warnings.push(format!("{name}: only in the {side} result (not compared)"));
    }
    for a in &fa {
        let Some(b) = fb.iter().find(|b| b.name == a.name) else { continue };
        for r in rules.iter().filter(|r| r.matches(&a.name) && r.violated_in(a.unit, a.value, b.value).is_none()) {
            warnings.push(format!(
                "--fail-on `{}`: a duration does not apply to {} ({}); not checked",
                r.expr, a.name, a.unit
            ));
        }
        rows.push(row(a, b, rules));
    }
    let regression = rows.iter().any(|r| !r.violates.is_empty());
    let reach = reach(&rows, rules);
    Comparison {
        kind: base.kind().into(),
        reach,
        rows,
        rules: rules.iter().map(|r| r.expr.clone()).collect(),
        warnings,
        regression,
    }
}

/// Tagged series (`e2e{class=group}`) present in one list of figures only, with the side
/// (`base` or `new`) that has them.
fn one_sided_classes(fa: &[Figure], fb: &[Figure]) -> Vec<(String, &'static str)> {
    let series = |f: &[Figure]| -> std::collections::BTreeSet<String> {
        f.iter().filter_map(|x| x.name.find('}').map(|end| x.name[..=end].to_owned())).collect()
    };
    let (a, b) = (series(fa), series(fb));
    let mut out: Vec<(String, &'static str)> = a.difference(&b).map(|s| (s.clone(), "base")).collect();
    out.extend(b.difference(&a).map(|s| (s.clone(), "new")));
    out
}

/// With both results repeated (`run --repeat N`, two runs each at least) and the figure
/// not an exact counter: the relative band of the difference of their means from the
/// spread between runs (Welch: the two standard errors in quadrature, Student's t at the
/// same 3-sigma level as every band, with the Welch–Satterthwaite degrees of freedom).
fn between_runs(a: &Figure, b: &Figure) -> Option<f64> {
    let (n1, n2) = (a.samples.len(), b.samples.len());
    if n1 < 2 || n2 < 2 || a.value.abs() <= f64::EPSILON || (a.noise == 0.0 && b.noise == 0.0) {
        return None;
    }
    let var = |s: &[f64], m: f64| s.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (s.len() - 1) as f64;
    let (q1, q2) = (var(&a.samples, a.value) / n1 as f64, var(&b.samples, b.value) / n2 as f64);
    let se = (q1 + q2).sqrt();
    if se <= 0.0 {
        return Some(0.0);
    }
    let dof = (q1 + q2).powi(2) / (q1 * q1 / (n1 - 1) as f64 + q2 * q2 / (n2 - 1) as f64).max(f64::MIN_POSITIVE);
    let t = figures::t_multiplier(dof.floor() as usize + 1);
    Some(t * se / a.value.abs())
}

fn row(a: &Figure, b: &Figure, rules: &[Rule]) -> Row {
    let delta = b.value - a.value;
    let relative = (a.value.abs() > f64::EPSILON).then(|| delta / a.value.abs());
    let noise = match between_runs(a, b) {
        Some(band) => band.max(a.noise.hypot(b.noise)),
        None => a.noise.hypot(b.noise),
    };
    let beyond = match relative {
        Some(r) => r.abs() > noise,
        None => delta.abs() > f64::EPSILON,
    };
    let improved = match a.better {
        Better::Lower => delta < 0.0,
        Better::Higher => delta > 0.0,
    };
    let verdict = if !(a.judged && b.judged) {
        Verdict::NotJudged
    } else if !beyond || delta == 0.0 {
        Verdict::WithinNoise
    } else if improved {
        Verdict::Better
    } else {
        Verdict::Worse
    };
    // A rule fires only on a change beyond the noise band: a gate must not fail on noise.
    let violates = rules
        .iter()
        .filter(|r| verdict != Verdict::WithinNoise && r.matches(&a.name))
        .filter(|r| r.violated_in(a.unit, a.value, b.value) == Some(true))
        .map(|r| r.expr.clone())
        .collect();
    let band_abs = noise * a.value.abs();
    Row {
        name: a.name.clone(),
        unit: a.unit,
        base: a.value,
        new: b.value,
        delta,
        relative,
        verdict,
        violates,
        band: noise,
        band_abs,
    }
}

/// For each rule: the judged figures it applies to, and those whose band is wider than the
/// change it names (such a change is noise there, so the rule cannot fire on it).
fn reach(rows: &[Row], rules: &[Rule]) -> Vec<RuleReach> {
    rules
        .iter()
        .map(|r| {
            let mine: Vec<&Row> =
                rows.iter().filter(|x| x.verdict != Verdict::NotJudged && r.matches(&x.name)).collect();
            let blunted = mine
                .iter()
                .filter(|x| match (r.relative, r.duration) {
                    (true, _) => x.band > r.limit,
                    (false, true) => us_per(x.unit).is_some_and(|u| x.band_abs > r.limit / u),
                    (false, false) => x.band_abs > r.limit,
                })
                .map(|x| x.name.clone())
                .collect();
            let widest_band = mine.iter().map(|x| x.band).fold(0.0, f64::max);
            RuleReach { rule: r.expr.clone(), figures: mine.len(), blunted, widest_band }
        })
        .collect()
}

impl Comparison {
    /// The console table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "{:<52} {:>14} {:>14} {:>9} {:>8}  verdict", "figure", "base", "new", "change", "band ±");
        for r in &self.rows {
            let change = r.relative.map_or_else(|| format!("{:+.3}", r.delta), |x| format!("{:+.1}%", x * 100.0));
            let verdict = match r.verdict {
                Verdict::Better => "better",
                Verdict::Worse => "WORSE",
                Verdict::WithinNoise => "~ noise",
                Verdict::NotJudged => "· set-up, not judged",
            };
            let flag = if r.violates.is_empty() { String::new() } else { format!("  ✗ {}", r.violates.join(", ")) };
            let band =
                if r.verdict == Verdict::NotJudged { "—".to_owned() } else { format!("{:.1}%", r.band * 100.0) };
            let _ = writeln!(
                s,
                "{:<52} {:>14} {:>14} {:>9} {:>8}  {verdict}{flag}",
                label(&r.name, r.unit),
                value(r.base, r.unit),
                value(r.new, r.unit),
                change,
                band
            );
        }
        let count = |v: Verdict| self.rows.iter().filter(|r| r.verdict == v).count();
        let _ = writeln!(
            s,
            "\nverdicts: {} better, {} worse, {} within noise, {} not judged",
            count(Verdict::Better),
            count(Verdict::Worse),
            count(Verdict::WithinNoise),
            count(Verdict::NotJudged)
        );
        let _ = writeln!(s, "rules: {}", self.rules.join("; "));
        for r in self.reach.iter().filter(|r| !r.blunted.is_empty()) {
            let _ = writeln!(
                s,
                "  `{}` cannot fire on a change of its own size in {} of its {} figure(s) (band up to ±{:.1}%: {}): \
                 a longer run or more repeats narrow the band",
                r.rule,
                r.blunted.len(),
                r.figures,
                r.widest_band * 100.0,
                r.blunted.join(", ")
            );
        }
        if self.regression {
            let bad: Vec<&str> = self.rows.iter().filter(|r| !r.violates.is_empty()).map(|r| r.name.as_str()).collect();
            let _ = writeln!(s, "REGRESSION in: {}", bad.join(", "));
        } else {
            let _ = writeln!(s, "no regression");
        }
        s
    }
}

/// A figure's name, with its unit unless values carry one.
fn label(name: &str, unit: &str) -> String {
    if matches!(unit, "µs" | "ns") { name.to_owned() } else { format!("{name} ({unit})") }
}

/// A value, auto-scaled when it is a time.
fn value(v: f64, unit: &str) -> String {
    match unit {
        "µs" => format_us(v),
        "ns" => format_us(v / 1e3),
        _ => short(v),
    }
}

/// Every `--fail-on` rule must name at least one figure of the results: a misspelled rule
/// would otherwise switch the gate off without a word.
///
/// # Errors
/// Lists the rules that match nothing and the figure names there are.
pub fn check_rules_match(rules: &[Rule], base: &Loaded, new: &Loaded) -> Result<()> {
    let mut names: Vec<String> = figures::figures(base).into_iter().map(|f| f.name).collect();
    names.extend(figures::figures(new).into_iter().map(|f| f.name));
    names.sort();
    names.dedup();
    let unmatched: Vec<&str> =
        rules.iter().filter(|r| !names.iter().any(|n| r.matches(n))).map(|r| r.expr.as_str()).collect();
    if unmatched.is_empty() {
        return Ok(());
    }
    bail!(
        "--fail-on {}: names no figure of these results (a misspelled rule would silently pass). Figures: {}",
        unmatched.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "),
        names.join(", ")
    )
}

fn short(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.3e}", v)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_relative_and_absolute_limits() {
        let r = Rule::parse("e2e.p99 > +10%").unwrap();
        assert!(r.increase && r.relative && (r.limit - 0.1).abs() < 1e-12);
        assert!(r.violated(100.0, 111.0) && !r.violated(100.0, 109.0));
        let r = Rule::parse("throughput.delivered_per_s < -5%").unwrap();
        assert!(r.violated(1000.0, 940.0) && !r.violated(1000.0, 960.0));
        let r = Rule::parse("messages.lost > +0").unwrap();
        assert!(r.violated(0.0, 1.0) && !r.violated(3.0, 3.0));
        let r = Rule::parse("e2e.p50 > +2ms").unwrap();
        assert!(r.violated(1000.0, 3500.0) && !r.violated(1000.0, 2500.0));
        assert!(Rule::parse("e2e.p99 10%").is_err());
    }

    #[test]
    fn duration_limits_follow_the_unit_of_the_figure() -> Result<()> {
        let r = Rule::parse("crypto.seal_ns[*] > +500ns")?;
        assert_eq!(r.violated_in("ns", 1000.0, 1400.0), Some(false));
        assert_eq!(r.violated_in("ns", 1000.0, 1600.0), Some(true));
        assert_eq!(r.violated_in("µs", 10.0, 10.6), Some(true), "500 ns is 0.5 µs, not 500 µs");
        assert_eq!(r.violated_in("msg/s", 10.0, 1000.0), None, "a duration does not fit a rate");
        let r = Rule::parse("matrix.cpu_ms_per_1000_msgs[*] > +2us")?;
        assert_eq!(r.violated_in("ms", 1.0, 1.003), Some(true));
        Ok(())
    }

    #[test]
    fn two_repeated_results_are_judged_on_the_spread_between_their_runs() {
        let f = |samples: Vec<f64>| Figure {
            name: "e2e.p99".into(),
            value: samples.iter().sum::<f64>() / samples.len() as f64,
            unit: "µs",
            better: Better::Lower,
            noise: figures::REPEAT_NOISE,
            judged: true,
            samples,
        };
        let rule = [Rule::parse("e2e.p99 > +10%").expect("rule")];
        // p99 of three runs each side, ~8 % apart run to run: A/A within the band.
        let (a, a2) = (f(vec![3000.0, 3250.0, 2800.0]), f(vec![3100.0, 2900.0, 3200.0]));
        let same = row(&a, &a2, &rule);
        assert_eq!(same.verdict, Verdict::WithinNoise, "band {}", same.band);
        assert!(same.violates.is_empty());
        // A 2 ms relay delay on a 3 ms p99: beyond the between-run band, the rule fires.
        let slow = f(vec![6100.0, 6300.0, 5900.0]);
        let worse = row(&a, &slow, &rule);
        assert_eq!(worse.verdict, Verdict::Worse, "band {}", worse.band);
        assert_eq!(worse.violates, ["e2e.p99 > +10%"]);
        // A whole-run shift that one run's seconds cannot see: wider spread, wider band.
        let noisy = f(vec![2000.0, 4500.0, 3000.0]);
        assert!(row(&a, &noisy, &rule).band > same.band);
    }

    #[test]
    fn classes_on_one_side_only_are_named_with_their_side() {
        let f = |n: &str| Figure {
            name: n.into(),
            value: 1.0,
            unit: "µs",
            better: Better::Lower,
            noise: 0.05,
            judged: true,
            samples: Vec::new(),
        };
        let base = [f("e2e.p99"), f("e2e{class=dm}.p99"), f("e2e{class=group}.p99")];
        let new = [f("e2e.p99"), f("e2e{class=dm}.p99"), f("fanout_last{class=group,size=5}.p99")];
        assert_eq!(
            one_sided_classes(&base, &new),
            [("e2e{class=group}".to_owned(), "base"), ("fanout_last{class=group,size=5}".to_owned(), "new")]
        );
    }

    #[test]
    fn the_band_is_shown_and_a_rule_narrower_than_it_is_named() {
        let f = |n: &str, value: f64, noise: f64| Figure {
            name: n.into(),
            value,
            unit: "µs",
            better: Better::Lower,
            noise,
            judged: true,
            samples: Vec::new(),
        };
        // p99 wobbles ±27 % per run (±38 % for the pair); p50 ±2 %.
        let (a, b) = (
            [f("e2e.p99", 3000.0, 0.27), f("e2e.p50", 100.0, 0.02)],
            [f("e2e.p99", 3600.0, 0.27), f("e2e.p50", 101.0, 0.02)],
        );
        let rules = [Rule::parse("e2e.p99 > +10%").unwrap(), Rule::parse("e2e.p50 > +10%").unwrap()];
        let rows: Vec<Row> = a.iter().zip(&b).map(|(x, y)| row(x, y, &rules)).collect();
        assert!((rows[0].band - 0.27f64.hypot(0.27)).abs() < 1e-12);
        assert!((rows[0].band_abs - rows[0].band * 3000.0).abs() < 1e-9);
        assert_eq!(rows[0].verdict, Verdict::WithinNoise, "+20 % is inside a ±38 % band");
        let reach = reach(&rows, &rules);
        assert_eq!(reach[0].blunted, ["e2e.p99"], "the p99 rule cannot fire at this noise");
        assert!(reach[1].blunted.is_empty(), "the p50 rule can");
        let c = Comparison { kind: "run".into(), rows, rules: vec![], reach, warnings: vec![], regression: false };
        let table = c.table();
        assert!(table.contains("38.2%"), "{table}");
        assert!(table.contains("`e2e.p99 > +10%` cannot fire"), "{table}");
        assert!(!table.contains("`e2e.p50 > +10%` cannot fire"), "{table}");
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["rows"][0]["band"].as_f64().is_some() && json["reach"][0]["blunted"][0] == "e2e.p99");
    }

    #[test]
    fn wildcards_match_figure_families() {
        assert!(wildcard("crypto.seal_ns[*]", "crypto.seal_ns[aes-256-gcm,64]"));
        assert!(wildcard("crypto.seal_ns[chacha20-poly1305,*]", "crypto.seal_ns[chacha20-poly1305,1024]"));
        assert!(!wildcard("crypto.seal_ns[*]", "crypto.open_ns[aes-256-gcm,64]"));
        assert!(wildcard("e2e.p99", "e2e.p99"));
    }
}
