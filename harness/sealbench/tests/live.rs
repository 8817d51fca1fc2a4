//! Live figures through the real binary: `/metrics` scraped while a run goes on,
//! `--json-stream` lines checked against the run's own summary, and the failures that
//! must stop a run before it starts. Loopback only; a few seconds per run.

use sealbench::results::live::{LiveCounters, LiveSecond};
use sealbench::results::summary::Summary;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Groups of 10 (classes `class=group` and `class=group,size=10`), 3 s measured.
const GROUPS: &str = "name = \"live\"\nseed = 3\nduration = \"3s\"\nwarmup = \"500ms\"\ncooldown = \"1s\"\n\
     [clients]\ncount = 40\n\
     [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 3\n\
     group_sizes = [{ size = 10, weight = 1 }]\n\
     [traffic]\nrate = 20\narrival = \"poisson\"\nsize = 100\n";

fn sealbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealbench"))
}

/// A plain HTTP/1.1 GET; the body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned()))
}

/// The value of the sample line that starts with `series ` (exactly that series).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_grow_while_the_run_goes_on_and_the_json_lines_add_up_to_the_summary() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (scenario, out, lines) = (dir.path().join("g.toml"), dir.path().join("out"), dir.path().join("live.jsonl"));
    std::fs::write(&scenario, GROUPS)?;
    let mut child = sealbench()
        .args(["run", path(&scenario)?, "--out", path(&out)?, "--no-plots", "--metrics", "127.0.0.1:0"])
        .args(["--json-stream", path(&lines)?])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // The address is printed before the run starts (port 0: the system chose it).
    let mut stderr = BufReader::new(child.stderr.take().ok_or("stderr")?);
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line)? > 0 {
        addr = line.trim().strip_prefix("metrics: http://").and_then(|a| a.strip_suffix("/metrics")?.parse().ok());
        line.clear();
    }
    let addr: SocketAddr = addr.ok_or("no `metrics: http://ADDR/metrics` line on stderr")?;
    let drain = std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    // Scrape while it runs.
    let (mut sent, mut class_p99, mut cpu) = (Vec::new(), false, Vec::new());
    while child.try_wait()?.is_none() {
        if let Ok(text) = get(addr, "/metrics") {
            sent.extend(value(&text, "sealbench_driver_sent_total"));
            cpu.extend(value(&text, "process_cpu_seconds_total"));
            class_p99 |=
                value(&text, "sealbench_driver_e2e_last_second_seconds{class=\"group\",size=\"10\",percentile=\"99\"}")
                    .is_some()
                    && value(&text, "sealbench_driver_e2e_by_class_seconds_count{class=\"group\",size=\"10\"}")
                        .is_some();
            assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(child.wait()?.success(), "the run succeeds");
    let _ = drain.join();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "a counter never goes down: {sent:?}");
    assert!(sent.windows(2).filter(|w| w[0] < w[1]).count() >= 2, "sent_total grew during the run: {sent:?}");
    assert!(class_p99, "per-class latency lines (histogram and last second) were served");
    assert!(cpu.len() >= 2 && cpu.windows(2).all(|w| w[0] <= w[1]), "the process's CPU seconds were served: {cpu:?}");

    // One line per second of the run, each a LiveSecond; the deltas add up to the summary.
    let text = std::fs::read_to_string(&lines)?;
    let seconds: Vec<LiveSecond> = text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let csv_rows = std::fs::read_to_string(out.join("timeseries.csv"))?.lines().count() - 1;
    assert_eq!(seconds.len(), csv_rows, "one line per second, as timeseries.csv has one row per second");
    let summary: Summary = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json"))?)?;
    let mut summed = LiveCounters::default();
    for s in &seconds {
        for (k, v) in &s.delta.counts {
            *summed.counts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &s.delta.refused_by_code {
            *summed.refused_by_code.entry(k.clone()).or_default() += v;
        }
    }
    let last = seconds.last().ok_or("no lines")?;
    assert_eq!(summed.counts, last.total.counts, "the last line's totals are the sum of every delta");
    let m = &summary.messages;
    let from_summary = [
        ("sent", m.sent),
        ("delivered", m.delivered),
        ("refused", m.refused),
        ("messages", m.messages),
        ("duplicated", m.duplicated),
        ("reordered", m.reordered),
        ("auth_failed", m.auth_failed),
        ("sent_measured", m.sent_measured),
        ("bytes_sent", m.bytes_sent),
        ("bytes_received", m.bytes_received),
        ("connects_ok", summary.clients.connected),
        ("handshakes_ok", summary.clients.handshakes_ok),
        ("reconnects", summary.clients.reconnects),
    ];
    for (name, want) in from_summary {
        assert_eq!(summed.get(name), want, "{name}: summed deltas vs summary.json");
    }
    assert!(summed.get("sent") > 100, "traffic flowed: {}", summed.get("sent"));
    assert_eq!(summed.refused_by_code, m.refused_by_code);
    assert_eq!(last.lost_or_pending, m.lost, "what is still missing at the end is what the summary calls lost");
    let steady = seconds.iter().filter(|s| s.phase == "steady").count();
    assert!(steady >= 2, "steady seconds streamed: {steady}");
    assert!(
        seconds.iter().any(|s| s.latency_by_class_us.get("e2e").is_some_and(|c| c.contains_key("class=group,size=10"))),
        "per-class latencies in the lines"
    );
    Ok(())
}

#[test]
fn a_taken_metrics_port_stops_the_run_before_it_starts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("g.toml");
    std::fs::write(&scenario, GROUPS)?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let o = sealbench()
        .args(["run", path(&scenario)?, "--out", path(&dir.path().join("o"))?, "--metrics", &addr])
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("--metrics {addr}: cannot listen there")), "{err}");
    assert!(!err.contains("connecting"), "nothing ran: {err}");
    let o = sealbench().args(["run", path(&scenario)?, "--json-stream", "/nonexistent-dir/live.jsonl"]).output()?;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--json-stream /nonexistent-dir/live.jsonl"));
    Ok(())
}

#[test]
fn json_stream_to_stdout_leaves_stdout_to_the_json_lines() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(
        &scenario,
        "name = \"tiny\"\nduration = \"2s\"\nwarmup = \"0s\"\ncooldown = \"500ms\"\n\
         [clients]\ncount = 10\n[traffic]\nrate = 10\nsize = 64\n",
    )?;
    let o = sealbench()
        .args(["run", path(&scenario)?, "--out", path(&dir.path().join("o"))?, "--no-plots", "--json-stream", "-"])
        .output()?;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    let n = out.lines().map(serde_json::from_str::<LiveSecond>).collect::<Result<Vec<_>, _>>()?.len();
    assert!(n >= 2, "a line per second: {out}");
    assert!(err.contains("results:") && err.contains("latency"), "the final table went to stderr: {err}");
    Ok(())
}

fn path(p: &Path) -> Result<&str, &'static str> {
    p.to_str().ok_or("a UTF-8 path")
}
