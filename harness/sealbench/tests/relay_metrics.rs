//! `/metrics` is OpenMetrics 1.0 text that a strict parser reads with the right types:
//! checked here against the format's rules by a small parser (no Python needed).

use sealbench::relay::Relay;
use sealbench::relay::RelayConfig;
use sealcore::frame::ErrorCode;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// One sample line: name, labels, value.
fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let (name_labels, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value in {line}"))?,
    };
    let (name, labels) = match name_labels.split_once('{') {
        None => (name_labels.to_owned(), Vec::new()),
        Some((n, rest)) => {
            let rest = rest.strip_suffix('}').ok_or(format!("unclosed labels: {line}"))?;
            let mut labels = Vec::new();
            let mut s = rest;
            while !s.is_empty() {
                let (k, after) = s.split_once("=\"").ok_or(format!("bad label: {line}"))?;
                // Values are escaped: \\, \", \n.
                let mut v = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('\\' | '"'))) => v.push(c),
                            Some((_, 'n')) => v.push('\n'),
                            _ => return Err(format!("bad escape: {line}")),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => v.push(c),
                        None => return Err(format!("unterminated label value: {line}")),
                    }
                };
                labels.push((k.to_owned(), v));
                s = &after[end + 1..];
                s = s.strip_prefix(',').unwrap_or(s);
            }
            (n.to_owned(), labels)
        }
    };
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !ok {
        return Err(format!("bad metric name: {name}"));
    }
    Ok((name, labels, value))
}

/// Parses an OpenMetrics text exposition by the format's rules; returns family → type.
fn parse_openmetrics(text: &str) -> Result<HashMap<String, String>, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("must end with `# EOF` and a newline")?;
    if body.contains("# EOF") {
        return Err("`# EOF` before the end".into());
    }
    let mut types = HashMap::new();
    let mut seen_families = std::collections::HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut buckets_inf: HashMap<String, f64> = HashMap::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match kind {
                "TYPE" => {
                    let t = parts.next().ok_or(format!("TYPE without a type: {line}"))?;
                    if !["counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"]
                        .contains(&t)
                    {
                        return Err(format!("unknown type {t}"));
                    }
                    if t == "counter" && name.ends_with("_total") {
                        return Err(format!("a counter family must not end in _total: {name}"));
                    }
                    if !seen_families.insert(name.to_owned()) {
                        return Err(format!("family {name} declared twice (or interleaved)"));
                    }
                    types.insert(name.to_owned(), t.to_owned());
                    current = Some((name.to_owned(), t.to_owned()));
                }
                "HELP" | "UNIT" => {
                    if current.as_ref().is_some_and(|(n, _)| n != name) && seen_families.contains(name) {
                        return Err(format!("metadata for {name} after its samples"));
                    }
                }
                _ => return Err(format!("unknown comment line: {line}")),
            }
            continue;
        }
        if line.is_empty() {
            return Err("blank lines are not allowed".into());
        }
        let (name, labels, value) = parse_sample(line)?;
        let (family, ty) = current.as_ref().ok_or(format!("sample before any TYPE: {line}"))?;
        let suffix = name.strip_prefix(family.as_str()).ok_or(format!("{name} outside its family {family}"))?;
        let allowed: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => &[""],
        };
        if !allowed.contains(&suffix) {
            return Err(format!("sample {name} does not fit a {ty} named {family}"));
        }
        if ty == "counter" && suffix == "_total" && (value.is_nan() || value < 0.0) {
            return Err(format!("negative counter {name}"));
        }
        if suffix == "_bucket" {
            let le = labels.iter().find(|(k, _)| k == "le").ok_or(format!("bucket without le: {line}"))?;
            if le.1 == "+Inf" {
                buckets_inf.insert(family.clone(), value);
            }
        }
        if ty == "histogram" && suffix == "_count" {
            counts.insert(family.clone(), value);
        }
    }
    for (family, count) in counts {
        if buckets_inf.get(&family) != Some(&count) {
            return Err(format!("{family}: the +Inf bucket must equal _count"));
        }
    }
    Ok(types)
}

#[test]
fn the_parser_refuses_what_openmetrics_refuses() {
    assert!(parse_openmetrics("# TYPE x counter\nx_total 1\n# EOF\n").is_ok());
    assert!(parse_openmetrics("# TYPE x counter\nx 1\n# EOF\n").is_err(), "counter sample without _total");
    assert!(parse_openmetrics("# TYPE x counter\nx_total 1\n").is_err(), "no EOF");
    assert!(parse_openmetrics("# TYPE x_total counter\nx_total 1\n# EOF\n").is_err());
    assert!(parse_openmetrics("x 1\n# EOF\n").is_err(), "untyped");
}

#[tokio::test]
async fn metrics_are_openmetrics_with_every_counter_typed() -> TestResult {
    let relay = Relay::new(RelayConfig::default());
    let m = relay.metrics();
    m.refuse(ErrorCode::MailboxFull);
    m.mailbox_refusal("bytes");
    m.close("idle");
    m.refuse_upgrade("timeout");
    m.routing_seconds.observe(1e-6);
    m.dropped_on_close.inc();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sealbench::relay::http::serve(listener, m.clone(), async move {
        let _ = rx.await;
    }));
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await?;
    let _ = stop.send(());
    let _ = server.await;
    let (head, body) = resp.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text; version=1.0.0"), "{head}");
    let types = parse_openmetrics(body).map_err(|e| format!("{e}\n{body}"))?;
    for counter in [
        "sealbench_relay_frames_dropped_on_close",
        "sealbench_relay_frames_requeued_on_close",
        "sealbench_relay_queue_overflows",
        "sealbench_relay_mailbox_refusals",
        "sealbench_relay_messages_refused",
        "sealbench_relay_messages_routed",
        "sealbench_relay_closes",
    ] {
        assert_eq!(types.get(counter).map(String::as_str), Some("counter"), "{counter}");
    }
    assert_eq!(types.get("sealbench_relay_mailbox_bytes").map(String::as_str), Some("gauge"));
    assert_eq!(types.get("sealbench_relay_routing_seconds").map(String::as_str), Some("histogram"));
    assert!(body.contains("sealbench_relay_frames_dropped_on_close_total 1\n"));
    assert!(body.contains("sealbench_relay_mailbox_refusals_total{limit=\"bytes\"} 1\n"));
    Ok(())
}
