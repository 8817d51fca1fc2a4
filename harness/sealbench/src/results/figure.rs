//! The one vocabulary of figures and units, shared by the summary, thresholds
//! (`scenario.thresholds`, `capacity --slo`), `compare --fail-on`, the console and the
//! reports.
//!
//! - **Names**: latency metrics are the recorder's [`Metric`]s; their statistics are
//!   [`Stat`]s; every other figure of a run is a [`Counter`] or the error rate; a figure
//!   path (`e2e.p99`, `messages.lost`, `errors.rate`) is a [`Path`].
//! - **Errors**: [`ErrorCounts`] is the one definition of what counts as an error.
//! - **Units**: [`parse_quantity`] is the one unit parser (`25ms`, `500ns`, `2us`/`2µs`,
//!   `3s`, `0.1%`, `9k`); [`format_us`] is the one auto-scaled duration formatter. Every
//!   duration figure of the summary is in microseconds.
//! - **Traffic classes**: a [`Selector`] is a path with an optional tag,
//!   `e2e{class=group}.p99`, for the metrics recorded per tag ([`Metric::TAGGED`]).

use crate::driver::recorder::Counters;
pub use crate::driver::recorder::Metric;
pub use crate::tags::{TagSet, series_name, split_series};
use anyhow::{Result, anyhow, bail};
use std::fmt;

/// The metric named `name` in result files and thresholds (`e2e`, `schedule_lag`, ...).
pub fn metric(name: &str) -> Option<Metric> {
    Metric::ALL.into_iter().find(|m| m.name() == name)
}

/// The order latency metrics are listed in tables: end to end first, set-up after, the
/// generator's own lag last (each metric's place is a column of the metrics' one list).
pub const TABLE_ORDER: [Metric; Metric::ALL.len()] = Metric::TABLE;

/// A statistic of a latency metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Smallest sample.
    Min,
    /// Arithmetic mean.
    Mean,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest sample.
    Max,
}

impl Stat {
    /// Every statistic a threshold may name.
    pub const ALL: [Stat; 8] =
        [Stat::Min, Stat::Mean, Stat::P50, Stat::P90, Stat::P95, Stat::P99, Stat::P999, Stat::Max];

    /// The statistics a latency table shows and `compare` compares, in column order.
    pub const TABLE: [Stat; 6] = [Stat::P50, Stat::P90, Stat::P99, Stat::P999, Stat::Max, Stat::Mean];

    /// Name in figure paths and thresholds (`p999`).
    pub fn name(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
        }
    }

    /// Column heading for people (`p99.9`).
    pub fn label(self) -> &'static str {
        match self {
            Stat::P999 => "p99.9",
            s => s.name(),
        }
    }

    /// The statistic named `name`.
    pub fn parse(name: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The quantile the statistic sits at (the mean counts as the median, for how many
    /// samples support it).
    pub fn quantile(self) -> f64 {
        match self {
            Stat::Min => 0.0,
            Stat::Mean | Stat::P50 => 0.5,
            Stat::P90 => 0.9,
            Stat::P95 => 0.95,
            Stat::P99 => 0.99,
            Stat::P999 => 0.999,
            Stat::Max => 1.0,
        }
    }
}

/// A run's figures that are not latencies (counts and rates), by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `messages.sent`.
    MessagesSent,
    /// `messages.delivered`.
    MessagesDelivered,
    /// `messages.lost`.
    MessagesLost,
    /// `messages.refused`.
    MessagesRefused,
    /// `messages.duplicated`.
    MessagesDuplicated,
    /// `messages.reordered`.
    MessagesReordered,
    /// `messages.auth_failed`.
    MessagesAuthFailed,
    /// `throughput.sent_per_s`.
    SentPerS,
    /// `throughput.delivered_per_s`.
    DeliveredPerS,
    /// `connects.failed`.
    ConnectsFailed,
    /// `connects.ok`.
    ConnectsOk,
    /// `handshakes.failed`.
    HandshakesFailed,
    /// `handshakes.ok`.
    HandshakesOk,
}

impl Counter {
    /// Every counter figure.
    pub const ALL: [Counter; 13] = [
        Counter::MessagesSent,
        Counter::MessagesDelivered,
        Counter::MessagesLost,
        Counter::MessagesRefused,
        Counter::MessagesDuplicated,
        Counter::MessagesReordered,
        Counter::MessagesAuthFailed,
        Counter::SentPerS,
        Counter::DeliveredPerS,
        Counter::ConnectsFailed,
        Counter::ConnectsOk,
        Counter::HandshakesFailed,
        Counter::HandshakesOk,
    ];

    /// Its figure path.
    pub fn path(self) -> &'static str {
        match self {
            Counter::MessagesSent => "messages.sent",
            Counter::MessagesDelivered => "messages.delivered",
            Counter::MessagesLost => "messages.lost",
            Counter::MessagesRefused => "messages.refused",
            Counter::MessagesDuplicated => "messages.duplicated",
            Counter::MessagesReordered => "messages.reordered",
            Counter::MessagesAuthFailed => "messages.auth_failed",
            Counter::SentPerS => "throughput.sent_per_s",
            Counter::DeliveredPerS => "throughput.delivered_per_s",
            Counter::ConnectsFailed => "connects.failed",
            Counter::ConnectsOk => "connects.ok",
            Counter::HandshakesFailed => "handshakes.failed",
            Counter::HandshakesOk => "handshakes.ok",
        }
    }
}

/// The path of the error rate figure.
pub const ERRORS_RATE: &str = "errors.rate";

/// A figure path of a run summary: what thresholds and SLOs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A latency statistic (`e2e.p99`), µs.
    Latency(Metric, Stat),
    /// A count or a per-second rate (`messages.lost`).
    Counter(Counter),
    /// Errors ([`ErrorCounts`]) plus lost messages, per message sent (a fraction).
    ErrorsRate,
}

/// What a figure is measured in: decides the units a value for it may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A duration, µs (`ns`, `us`/`µs`, `ms`, `s`, or a plain number of µs).
    Latency,
    /// A fraction (`%`, or a plain fraction).
    Rate,
    /// A plain number (or `k` for thousands).
    Count,
}

impl Path {
    /// Parses `metric.stat`, `group.counter` or `errors.rate`.
    pub fn parse(path: &str) -> Option<Path> {
        if path == ERRORS_RATE {
            return Some(Path::ErrorsRate);
        }
        if let Some(c) = Counter::ALL.into_iter().find(|c| c.path() == path) {
            return Some(Path::Counter(c));
        }
        let (m, s) = path.split_once('.')?;
        Some(Path::Latency(metric(m)?, Stat::parse(s)?))
    }

    /// What the figure is measured in.
    pub fn kind(self) -> Kind {
        match self {
            Path::Latency(..) => Kind::Latency,
            Path::Counter(_) => Kind::Count,
            Path::ErrorsRate => Kind::Rate,
        }
    }

    /// Every path a threshold may name, for error messages.
    pub fn help() -> String {
        let metrics: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        let stats: Vec<&str> = Stat::ALL.iter().map(|s| s.name()).collect();
        let counters: Vec<&str> = Counter::ALL.iter().map(|c| c.path()).collect();
        format!("latency: {}.{{{}}}; {}; {ERRORS_RATE}", metrics.join("|"), stats.join(","), counters.join("; "))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Latency(m, s) => write!(f, "{}.{}", m.name(), s.name()),
            Path::Counter(c) => f.write_str(c.path()),
            Path::ErrorsRate => f.write_str(ERRORS_RATE),
        }
    }
}

/// A figure path, of one traffic class when it names a tag: `e2e.p99`,
/// `e2e{class=group}.p99`, `fanout_last{size=500}.p99`. The tag is kept as the selector
/// means it: `size` or `fanout` imply `class=group` ([`TagSet::implied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The figure, all classes together.
    pub path: Path,
    /// The traffic class, if one is named.
    pub tag: Option<TagSet>,
}

impl Selector {
    /// Parses `metric{labels}.stat` or any [`Path`].
    ///
    /// # Errors
    /// An unknown figure, a tag that does not parse, or a tag on a figure that is not
    /// recorded per tag (counters, set-up and crypto metrics).
    pub fn parse(text: &str) -> Result<Selector> {
        let text = text.trim();
        let (path_text, tag) = match (text.find('{'), text.find('}')) {
            (None, None) => (text.to_owned(), None),
            (Some(open), Some(close)) if open < close => {
                let (name, tag) = split_series(&text[..=close]).map_err(|e| anyhow!("`{text}`: {e}"))?;
                (format!("{name}{}", &text[close + 1..]), tag)
            }
            _ => bail!("`{text}`: unbalanced braces (expected `metric{{label=value,...}}.stat`)"),
        };
        let path = Path::parse(&path_text).ok_or_else(|| anyhow!("unknown metric `{text}` ({})", Path::help()))?;
        if tag.is_some() && !matches!(path, Path::Latency(m, _) if m.tagged_index().is_some()) {
            let tagged: Vec<&str> = Metric::TAGGED.iter().map(|m| m.name()).collect();
            bail!("`{text}`: only {} are recorded per traffic class", tagged.join(", "));
        }
        Ok(Selector { path, tag: tag.map(TagSet::implied) })
    }
}

/// The canonical form: `e2e{class=group,size=50}.p99`.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.tag, self.path) {
            (Some(t), Path::Latency(m, s)) => write!(f, "{}.{}", series_name(m.name(), Some(t)), s.name()),
            _ => self.path.fmt(f),
        }
    }
}

/// What counts as an error, the one definition: the console's progress line, the
/// `errors` column of `timeseries.csv` and `errors.rate` (which adds lost messages) all
/// sum these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Transport messages the relay refused.
    pub refused: u64,
    /// Messages whose authentication failed.
    pub auth_failed: u64,
    /// Deliveries that could not be parsed.
    pub malformed: u64,
    /// Connections that failed.
    pub connects_failed: u64,
    /// Handshakes that failed.
    pub handshakes_failed: u64,
    /// Connections lost unexpectedly.
    pub disconnects: u64,
}

impl ErrorCounts {
    /// The errors among `c`.
    pub fn of(c: &Counters) -> Self {
        ErrorCounts {
            refused: c.refused_total(),
            auth_failed: c.auth_failed,
            malformed: c.malformed,
            connects_failed: c.connects_failed,
            handshakes_failed: c.handshakes_failed,
            disconnects: c.disconnects,
        }
    }

    /// Their sum.
    pub fn total(&self) -> u64 {
        self.refused
            + self.auth_failed
            + self.malformed
            + self.connects_failed
            + self.handshakes_failed
            + self.disconnects
    }
}

/// The unit a [`Quantity`] was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// No unit.
    None,
    /// A duration: `ns`, `us`, `µs`, `ms` or `s`.
    Duration,
    /// `%`.
    Percent,
    /// `k` (thousands).
    Thousand,
}

/// A number as written, normalised: durations in µs, percentages as fractions,
/// thousands multiplied out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The normalised value.
    pub value: f64,
    /// The unit it was written in.
    pub unit: Unit,
}

/// Parses a number with an optional unit: `25ms`, `500ns`, `2us`, `2µs`, `3s`, `0.1%`,
/// `9k`, `-5`, `+10%`. Durations come back in µs.
///
/// # Errors
/// When the number does not parse or the unit is unknown.
pub fn parse_quantity(s: &str) -> Result<Quantity> {
    let s = s.trim();
    let split =
        s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == '+')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow!("`{s}` is not a number"))?;
    let (value, unit) = match unit.trim() {
        "" => (n, Unit::None),
        "ns" => (n / 1e3, Unit::Duration),
        "us" | "µs" => (n, Unit::Duration),
        "ms" => (n * 1e3, Unit::Duration),
        "s" => (n * 1e6, Unit::Duration),
        "%" => (n / 100.0, Unit::Percent),
        "k" => (n * 1e3, Unit::Thousand),
        u => bail!("unknown unit `{u}` in `{s}` (durations: ns, us, µs, ms, s; rates: %; counts: k)"),
    };
    Ok(Quantity { value, unit })
}

/// Parses a duration as every flag takes it: a number with its unit, `2ms`, `500us`,
/// `10s`, `1.5s`, or humantime's longer forms (`5m`, `1h30m`, `2min`). A bare number is
/// refused with the fix (a duration's unit is never guessed).
///
/// # Errors
/// A message naming the value and the fix.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    match parse_quantity(t) {
        Ok(Quantity { value, unit: Unit::Duration }) if value.is_finite() && value >= 0.0 => {
            Ok(std::time::Duration::from_secs_f64(value / 1e6))
        }
        Ok(Quantity { unit: Unit::None, .. }) => {
            Err(format!("`{t}` has no unit: write {t}s (or {t}ms, {t}us; units ns, us, ms, s, m, h)"))
        }
        Ok(Quantity { unit: Unit::Duration, .. }) => Err(format!("`{t}`: a duration is zero or more")),
        _ => humantime_serde::re::humantime::parse_duration(t)
            .map_err(|e| format!("`{t}` is not a duration ({e}); write it with its unit, e.g. 2ms, 10s, 5m")),
    }
}

/// As [`parse_duration`], but a bare number is read as seconds with a warning on stderr:
/// for the flags that took bare seconds before units (`relay --handshake-timeout`,
/// `--idle-timeout`), for one release.
///
/// # Errors
/// As [`parse_duration`] for anything but a bare number.
pub fn parse_duration_or_legacy_seconds(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => {
            eprintln!(
                "warning: `{t}` without a unit is read as {t}s; write {t}s (bare seconds go in the next release)"
            );
            Ok(std::time::Duration::from_secs_f64(v))
        }
        _ => parse_duration(t),
    }
}

/// Microseconds per one of `unit` when `unit` is a duration unit of a figure (`ns`,
/// `µs`/`us`, `ms`, `s`); `None` otherwise.
pub fn us_per(unit: &str) -> Option<f64> {
    match unit {
        "ns" => Some(1e-3),
        "µs" | "us" => Some(1.0),
        "ms" => Some(1e3),
        "s" => Some(1e6),
        _ => None,
    }
}

/// Formats a duration in microseconds with a unit that fits (`850.0µs`, `12.34ms`, `1.50s`).
pub fn format_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.1}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_their_unit() {
        use std::time::Duration;
        assert_eq!(parse_duration("2ms"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        let bare = parse_duration("5").unwrap_err();
        assert!(bare.contains("write 5s"), "{bare}");
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration_or_legacy_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration_or_legacy_seconds("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn quantities_normalise_durations_to_microseconds() -> Result<()> {
        let q = |s: &str| parse_quantity(s).map(|q| (q.value, q.unit));
        assert_eq!(q("25ms")?, (25_000.0, Unit::Duration));
        assert_eq!(q("500ns")?, (0.5, Unit::Duration));
        assert_eq!(q("2us")?, (2.0, Unit::Duration));
        assert_eq!(q("2µs")?, (2.0, Unit::Duration));
        assert_eq!(q("3s")?, (3_000_000.0, Unit::Duration));
        assert_eq!(q("0.1%")?, (0.001, Unit::Percent));
        assert_eq!(q("+10%")?, (0.1, Unit::Percent));
        assert_eq!(q("9k")?, (9_000.0, Unit::Thousand));
        assert_eq!(q("-5")?, (-5.0, Unit::None));
        assert!(parse_quantity("5 parsecs").is_err());
        assert!(parse_quantity("ms").is_err());
        Ok(())
    }

    #[test]
    fn durations_format_with_a_unit_that_fits() {
        assert_eq!(format_us(850.0), "850.0µs");
        assert_eq!(format_us(12_340.0), "12.34ms");
        assert_eq!(format_us(1_500_000.0), "1.50s");
    }

    #[test]
    fn figure_paths_round_trip() {
        for p in ["e2e.p99", "schedule_lag.p999", "messages.lost", "errors.rate", "handshakes.ok"] {
            assert_eq!(Path::parse(p).map(|p| p.to_string()).as_deref(), Some(p));
        }
        assert_eq!(Path::parse("e2e.p98"), None);
        assert_eq!(Path::parse("messages.bogus"), None);
        assert_eq!(Path::parse("e2e.p99").map(Path::kind), Some(Kind::Latency));
    }

    #[test]
    fn selectors_name_a_class_and_imply_groups() -> Result<()> {
        let s = Selector::parse("fanout_last{size=500}.p99")?;
        assert_eq!(s.to_string(), "fanout_last{class=group,size=500}.p99");
        assert_eq!(s.path, Path::Latency(Metric::FanoutLast, Stat::P99));
        assert_eq!(Selector::parse("e2e.p99")?, Selector { path: Path::parse("e2e.p99").unwrap(), tag: None });
        assert_eq!(Selector::parse("e2e{class=dm}.p50")?.to_string(), "e2e{class=dm}.p50");
        assert!(Selector::parse("seal{class=dm}.p99").unwrap_err().to_string().contains("per traffic class"));
        assert!(Selector::parse("messages.lost{class=dm}").is_err());
        assert!(Selector::parse("e2e{klass=dm}.p99").unwrap_err().to_string().contains("klass"));
        assert!(Selector::parse("e2e{class=dm.p99").is_err());
        Ok(())
    }
}
