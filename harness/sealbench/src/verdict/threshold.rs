//! Threshold expressions (`e2e.p99 < 25ms`, `messages.lost == 0`, `errors.rate < 0.1%`,
//! `throughput.delivered_per_s > 9000`) and their evaluation against a summary.

use crate::results::figure::{Kind, Path, Unit, format_us, parse_quantity};
use crate::results::summary::Summary;
pub use crate::results::summary::Verdict;
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
    /// Metric path, e.g. `e2e.p99`.
    pub metric: String,
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
        let metric = expr[..pos].trim().to_owned();
        let rhs = expr[pos + sym.len()..].trim();
        let path = Path::parse(&metric)
            .ok_or_else(|| anyhow!("threshold `{expr}`: unknown metric `{metric}` ({})", Path::help()))?;
        let value = value_for(rhs, path.kind()).map_err(|e| anyhow!("threshold `{expr}`: {e}"))?;
        Ok(Threshold { expr: expr.trim().to_owned(), metric, op, value })
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
    let kind = Threshold::parse(expr).ok().and_then(|t| Path::parse(&t.metric)).map(Path::kind);
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

#[cfg(test)]
mod tests {
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
    fn missing_data_fails_the_threshold() {
        let t = vec![Threshold::parse("relay_ack.p99 < 1ms").unwrap()];
        assert!(!evaluate(&t, |_| None)[0].pass);
        assert!(evaluate(&t, |_| Some(10.0))[0].pass);
    }
}
