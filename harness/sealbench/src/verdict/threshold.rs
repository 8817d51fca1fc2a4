//! Threshold expressions (`e2e.p99 < 25ms`, `messages.lost == 0`, `errors.rate < 0.1%`,
//! `throughput.delivered_per_s > 9000`) and their evaluation against a summary.

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

/// Latency metrics (values in µs in the summary).
pub const LATENCY_METRICS: &[&str] =
    &["connect", "register", "handshake", "e2e", "e2e_raw", "relay_ack", "seal", "open", "schedule_lag"];
/// Statistics of a latency metric.
pub const LATENCY_STATS: &[&str] = &["min", "mean", "p50", "p90", "p95", "p99", "p999", "max"];

impl Threshold {
    /// Parses `metric op value[unit]`.
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
        let kind = metric_kind(&metric).ok_or_else(|| {
            anyhow!(
                "threshold `{expr}`: unknown metric `{metric}` (latency: {}.{{{}}}; messages.{{sent,delivered,lost,refused,duplicated,reordered,auth_failed}}; errors.rate; throughput.{{sent_per_s,delivered_per_s}}; connects.failed; handshakes.failed)",
                LATENCY_METRICS.join("|"),
                LATENCY_STATS.join(",")
            )
        })?;
        let value = parse_value(rhs, kind).map_err(|e| anyhow!("threshold `{expr}`: {e}"))?;
        Ok(Threshold { expr: expr.trim().to_owned(), metric, op, value })
    }

    /// Does `measured` satisfy the threshold?
    pub fn passes(&self, measured: f64) -> bool {
        self.op.holds(measured, self.value)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Latency,
    Rate,
    Count,
}

fn metric_kind(m: &str) -> Option<Kind> {
    let (a, b) = m.split_once('.')?;
    if LATENCY_METRICS.contains(&a) && LATENCY_STATS.contains(&b) {
        return Some(Kind::Latency);
    }
    match (a, b) {
        ("errors", "rate") => Some(Kind::Rate),
        ("messages", "sent" | "delivered" | "lost" | "refused" | "duplicated" | "reordered" | "auth_failed")
        | ("throughput", "sent_per_s" | "delivered_per_s")
        | ("connects", "failed" | "ok")
        | ("handshakes", "failed" | "ok") => Some(Kind::Count),
        _ => None,
    }
}

fn parse_value(s: &str, kind: Kind) -> Result<f64> {
    let s = s.trim();
    let split =
        s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == '+')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow!("`{s}` is not a number"))?;
    let unit = unit.trim();
    Ok(match (kind, unit) {
        (Kind::Latency, "ns") => n / 1e3,
        (Kind::Latency, "us" | "µs" | "") => n,
        (Kind::Latency, "ms") => n * 1e3,
        (Kind::Latency, "s") => n * 1e6,
        (Kind::Rate, "%") => n / 100.0,
        (Kind::Rate, "") => n,
        (Kind::Count, "") => n,
        (Kind::Count, "k") => n * 1e3,
        (_, u) => bail!("unit `{u}` does not fit this metric (latencies: ns, us, ms, s; rates: %)"),
    })
}

/// A threshold's verdict, as written to `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// The expression.
    pub expr: String,
    /// The measured value in the metric's base unit (µs, fraction, count), if available.
    pub measured: Option<f64>,
    /// Whether it held (false when the metric had no data).
    pub pass: bool,
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
    fn missing_data_fails_the_threshold() {
        let t = vec![Threshold::parse("relay_ack.p99 < 1ms").unwrap()];
        assert!(!evaluate(&t, |_| None)[0].pass);
        assert!(evaluate(&t, |_| Some(10.0))[0].pass);
    }
}
