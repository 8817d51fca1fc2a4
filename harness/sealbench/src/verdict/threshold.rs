//! Threshold expressions (`e2e.p99 < 25ms`, `messages.lost == 0`, `errors.rate < 0.1%`,
//! `throughput.delivered_per_s > 9000`) and their evaluation against a summary.
//!
//! A latency of one traffic class is named with its tag: `e2e{class=group}.p99 < 50ms`,
//! `fanout_last{size=500}.p99 < 200ms`. The selector matches the run's tag whose labels
//! are exactly the selector's, `size` or `fanout` implying `class=group`; a selector that
//! matches none of the run's tags is refused before the run ([`check_tags`]), since a typo
//! must never pass a gate. Without a tag, `e2e.p99` means all classes together.

use crate::results::figure::{Kind, Selector, Unit, format_us, parse_quantity};
use crate::results::summary::Summary;
pub use crate::results::summary::Verdict;
use crate::tags::TagSet;
use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0),
            Op::Ne => (a - b).abs() > f64::EPSILON * a.abs().max(b.abs()).max(1.0),
        }
    }
}

/// A parsed threshold: `metric op value`, the value in the metric's base unit
/// (microseconds for latencies, a fraction for rates, a count otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written.
    pub expr: String,
    /// Figure path in canonical form, e.g. `e2e.p99`, `fanout_last{class=group,size=500}.p99`.
    pub metric: String,
    /// The figure (and traffic class) it names.
    pub selector: Selector,
    /// Operator.
    pub op: Op,
    /// Right-hand side in the metric's base unit.
    pub value: f64,
}

impl Threshold {
    /// Parses `metric op value[unit]` (units as [`parse_quantity`] reads them).
    ///
    /// # Errors
    /// Unknown metric, missing operator, or a value/unit that does not fit the metric.
    pub fn parse(expr: &str) -> Result<Threshold> {
        let ops = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
        let (pos, sym, op) = ops
            .iter()
            .filter_map(|(s, o)| expr.find(s).map(|p| (p, *s, *o)))
            .min_by_key(|(p, s, _)| (*p, std::cmp::Reverse(s.len())))
            .ok_or_else(|| anyhow!("threshold `{expr}`: no comparison operator (<, <=, >, >=, ==, !=)"))?;
        let rhs = expr[pos + sym.len()..].trim();
        let selector = Selector::parse(&expr[..pos]).map_err(|e| anyhow!("threshold `{expr}`: {e}"))?;
        let value = value_for(rhs, selector.path.kind()).map_err(|e| anyhow!("threshold `{expr}`: {e}"))?;
        Ok(Threshold { expr: expr.trim().to_owned(), metric: selector.to_string(), selector, op, value })
    }

    /// Does `measured` satisfy the threshold?
    pub fn passes(&self, measured: f64) -> bool {
        self.op.holds(measured, self.value)
    }
}

/// `s` in the base unit of a figure of `kind`. A latency needs a time unit and a rate a
/// percentage: a bare `25` would silently mean 25 µs (or 2,500 %), so it is refused with
/// the fix.
fn value_for(s: &str, kind: Kind) -> Result<f64> {
    let q = parse_quantity(s)?;
    let s = s.trim();
    match (kind, q.unit) {
        (Kind::Latency, Unit::Duration) | (Kind::Rate, Unit::Percent) => Ok(q.value),
        (Kind::Count, Unit::None | Unit::Thousand) => Ok(q.value),
        (Kind::Latency, Unit::None) => bail!("`{s}` has no unit: a latency needs one, e.g. `{s}ms` or `{s}us`"),
        (Kind::Rate, Unit::None) => bail!("`{s}` has no unit: write a rate as a percentage, e.g. `{s}%`"),
        _ => bail!("unit of `{s}` does not fit this metric (latencies: ns, us, ms, s; rates: %; counts: k)"),
    }
}

/// The measured value of a threshold's figure, with its unit (`1.40ms`, `0.012%`, `3`).
pub fn measured_text(expr: &str, measured: Option<f64>) -> String {
    let Some(v) = measured else { return "no data".into() };
    let kind = Threshold::parse(expr).ok().map(|t| t.selector.path.kind());
    match kind {
        Some(Kind::Latency) => format_us(v),
        Some(Kind::Rate) => format!("{:.3}%", 100.0 * v),
        Some(Kind::Count) if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

/// Evaluates every threshold with `lookup` (metric path → measured value).
pub fn evaluate(thresholds: &[Threshold], lookup: impl Fn(&str) -> Option<f64>) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let measured = lookup(&t.metric);
            Verdict { expr: t.expr.clone(), measured, pass: measured.is_some_and(|m| t.passes(m)) }
        })
        .collect()
}

/// Judges `thresholds` against `summary` and records the verdicts in it.
pub fn judge(summary: &mut Summary, thresholds: &[Threshold]) {
    summary.thresholds = evaluate(thresholds, |m| summary.lookup(m));
}

/// Parses every expression of `exprs` (a scenario's `thresholds`, `--slo` flags).
///
/// # Errors
/// The first one that does not parse.
pub fn parse_all(exprs: &[String]) -> Result<Vec<Threshold>> {
    exprs.iter().map(|t| Threshold::parse(t)).collect()
}

/// Parses every expression of `exprs` and checks their traffic classes against the run's
/// `tags` ([`check_tags`]).
///
/// # Errors
/// The first one that does not parse, or names a class the run does not record.
pub fn parse_for(exprs: &[String], tags: &[TagSet]) -> Result<Vec<Threshold>> {
    let t = parse_all(exprs)?;
    check_tags(&t, tags)?;
    Ok(t)
}

/// Every threshold that names a traffic class must name one of the run's `tags` exactly
/// (after `size`/`fanout` imply `class=group`): a misspelled class would otherwise judge
/// "no data", or match nothing, instead of stopping the gate.
///
/// # Errors
/// Names the threshold, its class, and the classes the run records.
pub fn check_tags(thresholds: &[Threshold], tags: &[TagSet]) -> Result<()> {
    for t in thresholds {
        let Some(tag) = &t.selector.tag else { continue };
        if !tags.contains(tag) {
            let mut known: Vec<&TagSet> = tags.iter().collect();
            known.sort();
            let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            bail!(
                "threshold `{}`: this run records no traffic class {{{tag}}} (its classes: {})",
                t.expr,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_grammar_page_names_every_figure_stat_and_default_rule() {
        use crate::results::figure::{Counter, Stat};
        let doc = include_str!("../../../../docs/THRESHOLDS.md");
        for m in crate::driver::recorder::Metric::ALL {
            assert!(doc.contains(&format!("`{}`", m.name())), "THRESHOLDS.md lacks metric {}", m.name());
        }
        for s in Stat::ALL {
            assert!(doc.contains(&format!("`{}`", s.name())), "THRESHOLDS.md lacks stat {}", s.name());
        }
        for c in Counter::ALL {
            assert!(doc.contains(&format!("`{}`", c.path())), "THRESHOLDS.md lacks {}", c.path());
        }
        for kind in ["run", "crypto", "matrix", "capacity"] {
            for r in crate::verdict::compare::default_rules(kind) {
                assert!(doc.contains(&format!("`{}`", r.expr)), "THRESHOLDS.md lacks the default rule {}", r.expr);
            }
        }
    }

    use super::*;

    #[test]
    fn thresholds_parse_units_into_base_units() {
        let t = Threshold::parse("e2e.p99 < 25ms").unwrap();
        assert_eq!((t.metric.as_str(), t.op, t.value), ("e2e.p99", Op::Lt, 25_000.0));
        assert_eq!(Threshold::parse("errors.rate < 0.1%").unwrap().value, 0.001);
        assert_eq!(Threshold::parse("messages.lost == 0").unwrap().op, Op::Eq);
        assert_eq!(Threshold::parse("handshake.p95<=5ms").unwrap().op, Op::Le);
        assert!(Threshold::parse("throughput.delivered_per_s > 9000").unwrap().passes(9001.0));
        assert!(Threshold::parse("e2e.p98 < 1ms").is_err());
        assert!(Threshold::parse("e2e.p99 < 5%").is_err());
        assert!(Threshold::parse("e2e.p99 25ms").is_err());
    }

    #[test]
    fn a_latency_or_rate_without_a_unit_is_refused_with_the_fix() {
        let e = Threshold::parse("e2e.p99 < 25").unwrap_err().to_string();
        assert!(e.contains("no unit") && e.contains("25ms"), "{e}");
        let e = Threshold::parse("errors.rate < 0.1").unwrap_err().to_string();
        assert!(e.contains("0.1%"), "{e}");
        assert_eq!(Threshold::parse("messages.lost < 5").unwrap().value, 5.0);
    }

    #[test]
    fn measured_values_print_with_their_unit() {
        assert_eq!(measured_text("e2e.p99 < 25ms", Some(1403.9)), "1.40ms");
        assert_eq!(measured_text("errors.rate < 0.1%", Some(0.0)), "0.000%");
        assert_eq!(measured_text("messages.lost == 0", Some(3.0)), "3");
        assert_eq!(measured_text("messages.lost == 0", None), "no data");
    }

    #[test]
    fn class_selectors_match_the_run_s_tags_exactly() -> Result<()> {
        let tags: Vec<TagSet> = ["class=dm", "class=group", "class=group,size=500", "class=group,fanout=client,size=5"]
            .iter()
            .map(|t| TagSet::parse(t))
            .collect::<Result<_, _>>()?;
        let ok = |e: &str| check_tags(&[Threshold::parse(e)?], &tags);
        ok("e2e{class=group}.p99 < 50ms")?;
        ok("fanout_last{size=500}.p99 < 200ms")?;
        ok("fanout_first{fanout=client,size=5}.p50 < 1ms")?;
        ok("e2e.p99 < 1s")?;
        let e = ok("e2e{class=grp}.p99 < 1s").unwrap_err().to_string();
        assert!(e.contains("class=grp") && e.contains("{class=dm}") && e.contains("{class=group,size=500}"), "{e}");
        assert!(ok("fanout_last{size=50}.p99 < 1s").is_err(), "a size the run never recorded");
        assert!(ok("fanout_first{size=5}.p99 < 1s").is_err(), "labels must be exactly the tag's");
        assert_eq!(
            Threshold::parse("fanout_last{size=500}.p99 < 200ms")?.metric,
            "fanout_last{class=group,size=500}.p99"
        );
        Ok(())
    }

    #[test]
    fn untagged_latency_still_means_all_classes_and_tagged_ones_their_own() -> Result<()> {
        let t = parse_all(&["e2e.p99 < 2ms".into(), "e2e{class=dm}.p99 < 2ms".into()])?;
        let v = evaluate(&t, |m| match m {
            "e2e.p99" => Some(3_000.0),
            "e2e{class=dm}.p99" => Some(1_000.0),
            _ => None,
        });
        assert_eq!((v[0].pass, v[1].pass), (false, true));
        assert_eq!(measured_text("e2e{class=dm}.p99 < 2ms", Some(1_000.0)), "1.00ms");
        Ok(())
    }

    #[test]
    fn missing_data_fails_the_threshold() {
        let t = vec![Threshold::parse("relay_ack.p99 < 1ms").unwrap()];
        assert!(!evaluate(&t, |_| None)[0].pass);
        assert!(evaluate(&t, |_| Some(10.0))[0].pass);
    }
}
