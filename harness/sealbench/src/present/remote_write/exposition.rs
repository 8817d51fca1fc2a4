//! The sample lines of a text exposition (OpenMetrics or the classic Prometheus format) as
//! remote-write series: `name{label="value",…} value` becomes labels `__name__` + the
//! pairs + the pusher's own (`job`, `instance`: what a scrape would have added), sorted as
//! remote write requires, and one sample at the push's time.
//!
//! Why parse our own exposition rather than walk the registry: the pushed samples are then
//! exactly what `/metrics` serves, whatever metric types the registry grows (a histogram's
//! `_bucket`/`_sum`/`_count` lines are sample lines like any other). Why by hand and not
//! `prometheus-parse`: only sample lines are needed (comments, `# TYPE` and `# EOF` are
//! skipped), that crate reads the classic format only and brings regex and chrono, and
//! the producer is our own encoder.

use super::proto::{Label, Sample, TimeSeries};

/// A line that is not a sample line in the format: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exposition line {line}: {why}: `{text}`")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: &'static str,
    /// The line (cut to 120 characters).
    pub text: String,
}

/// Every sample line of `text` as a series with one sample at `timestamp_ms`, with the
/// labels of `extra` added (a label of the line's own wins).
///
/// # Errors
/// The first line that is neither a comment nor a well-formed sample line.
pub fn series(text: &str, timestamp_ms: i64, extra: &[Label]) -> Result<Vec<TimeSeries>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why| ParseError { line: i + 1, why, text: line.chars().take(120).collect() };
        let (mut labels, rest) = labels(line).map_err(err)?;
        // The value, then an optional timestamp and (OpenMetrics) an exemplar: only the value.
        let value = rest.split_whitespace().next().ok_or_else(|| err("no value"))?;
        let value = parse_value(value).ok_or_else(|| err("the value is not a number"))?;
        for e in extra {
            if !labels.iter().any(|l| l.name == e.name) {
                labels.push(e.clone());
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(TimeSeries { labels, samples: vec![Sample { value, timestamp: timestamp_ms }] });
    }
    Ok(out)
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// The name and labels at the start of `line`, and the rest of the line.
fn labels(line: &str) -> Result<(Vec<Label>, &str), &'static str> {
    let end = line.find(['{', ' ']).ok_or("no value after the name")?;
    let name = &line[..end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut labels = vec![Label { name: "__name__".to_owned(), value: name.to_owned() }];
    let mut rest = &line[end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"").ok_or("a label without =\"value\"")?;
            let (value, after) = quoted(after).ok_or("a label value without its closing quote")?;
            labels.push(Label { name: key.trim().to_owned(), value });
            rest = after;
        }
    }
    Ok((labels, rest))
}

/// A label value up to its closing quote (escapes `\\`, `\"`, `\n` undone); the rest after it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(ts: &TimeSeries) -> Vec<(&str, &str)> {
        ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect()
    }

    #[test]
    fn sample_lines_become_sorted_series_and_comments_are_skipped() -> Result<(), ParseError> {
        let text = "# HELP x_sent Sent.\n# TYPE x_sent counter\nx_sent_total 98\n\
                    x_lat_bucket{size=\"50\",le=\"+Inf\",class=\"a \\\"b\\\"\"} 3\n\
                    x_up 1 1700000000000\nx_nan NaN\n# EOF\n";
        let job = Label { name: "job".to_owned(), value: "sb".to_owned() };
        let s = series(text, 42, std::slice::from_ref(&job))?;
        assert_eq!(s.len(), 4);
        assert_eq!(pairs(&s[0]), [("__name__", "x_sent_total"), ("job", "sb")]);
        assert_eq!(s[0].samples, [Sample { value: 98.0, timestamp: 42 }]);
        assert_eq!(
            pairs(&s[1]),
            [("__name__", "x_lat_bucket"), ("class", "a \"b\""), ("job", "sb"), ("le", "+Inf"), ("size", "50")],
            "sorted by name, escapes undone"
        );
        assert_eq!(s[2].samples[0].value, 1.0, "a line's own timestamp is not the value");
        assert!(s[3].samples[0].value.is_nan());
        Ok(())
    }

    #[test]
    fn a_malformed_line_is_named() {
        let e = series("ok 1\nbad{a=\"1 2\n", 0, &[]).unwrap_err();
        assert_eq!((e.line, e.why), (2, "a label value without its closing quote"));
        assert_eq!(series("x{a=\"1\" 2\n", 0, &[]).unwrap_err().why, "a label without =\"value\"");
        let e = series("novalue\n", 0, &[]).unwrap_err();
        assert_eq!(e.why, "no value after the name");
        assert_eq!(series("x{} abc\n", 0, &[]).unwrap_err().why, "the value is not a number");
    }
}
