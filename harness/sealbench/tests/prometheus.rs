//! The metrics endpoints as a real Prometheus sees them (Debian's `prometheus` package,
//! with `promtool`): both expositions pass `promtool check metrics`; a Prometheus started
//! by the test on 127.0.0.1 scrapes a relay and the two parts of one split run, and what
//! it adds up — the delivered counters and `histogram_quantile(0.99, …)` over both parts —
//! is what `sealbench merge` makes of the parts' results; every query of the Grafana
//! dashboard (`deploy/grafana/sealbench.json`) finds data. A missing `prometheus` or
//! `promtool` fails the tests: CI installs them (`.ci/run`). Loopback only; every wait
//! bounded.

use sealbench::results::summary::Summary;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod support;

type TestResult = Result<(), support::Error>;

/// What Prometheus asks for when it scrapes, and what a classic text parser (promtool's)
/// asks for.
const CLASSIC: &str = "text/plain;version=0.0.4";

/// A mixed run (DMs and groups of 4): every live latency series has samples, per class.
const SCENARIO: &str = "name = \"prom\"\nseed = 11\nduration = \"4s\"\nwarmup = \"0s\"\ncooldown = \"1s\"\n\
    [clients]\ncount = 60\n\
    [conversations]\nkind = \"mix\"\ngroup_sizes = [{ size = 4, weight = 1 }]\n\
    [traffic]\nrate = 20\narrival = \"poisson\"\nsize = 100\n";

fn sealbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealbench"))
}

/// A `sealbench relay` with `/metrics`, killed when dropped.
fn relay(dir: &Path) -> Result<(support::Server, SocketAddr), support::Error> {
    let (port, metrics) = (support::free_port()?, support::free_port()?);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sealbench"));
    let (listen, maddr) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{metrics}"));
    let args = ["relay".as_ref(), "--listen".as_ref(), listen.as_ref(), "--metrics".as_ref(), maddr.as_ref()];
    let tmp = tempfile::tempdir_in(dir)?;
    let server = support::Server::start(&bin, &args, tmp, port, Duration::from_secs(10), &["relay.log"])?;
    let maddr: SocketAddr = maddr.parse()?;
    wait_for(|| TcpStream::connect(maddr).is_ok(), Duration::from_secs(10), "the relay's /metrics")?;
    Ok((server, maddr))
}

/// Polls `ok` every 50 ms until it holds or `within` has passed.
fn wait_for(mut ok: impl FnMut() -> bool, within: Duration, what: &str) -> TestResult {
    let deadline = Instant::now() + within;
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {within:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// An HTTP/1.0 GET (no chunked answer to decode); the status line and the body.
fn get(addr: SocketAddr, path: &str, accept: &str) -> Result<(String, String), support::Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    Ok((head.lines().next().unwrap_or_default().to_owned(), body.to_owned()))
}

/// `promtool check metrics` on `text`: its complaints, if any, as the error.
fn promtool_check(what: &str, text: &str) -> TestResult {
    let bin = support::binary("promtool", "/usr/bin", "Prometheus's promtool")?;
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() || !said.trim().is_empty() {
        let lines = text.lines().count();
        return Err(format!("promtool check metrics on {what} ({lines} lines; read it with curl): {said}").into());
    }
    Ok(())
}

/// Reads the child's stderr until its `metrics: http://ADDR/metrics` line; the rest of
/// stderr is drained into the returned thread's string.
fn metrics_addr(child: &mut Child) -> Result<(SocketAddr, std::thread::JoinHandle<String>), support::Error> {
    let mut stderr = BufReader::new(child.stderr.take().ok_or("stderr")?);
    let mut line = String::new();
    let mut seen = String::new();
    while stderr.read_line(&mut line)? > 0 {
        if let Some(a) = line.trim().strip_prefix("metrics: http://").and_then(|a| a.strip_suffix("/metrics")) {
            let addr = a.parse()?;
            let rest = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                s
            });
            return Ok((addr, rest));
        }
        seen.push_str(&line);
        line.clear();
    }
    Err(format!("no `metrics: http://ADDR/metrics` line on stderr: {seen}").into())
}

/// Waits for `child` to end, at most `within`; kills it past that.
fn wait_exit(child: &mut Child, within: Duration, what: &str) -> Result<std::process::ExitStatus, support::Error> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not end within {within:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn both_metrics_endpoints_pass_promtool_check_metrics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("prom.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let (relay, relay_metrics) = relay(dir.path())?;
    let mut child = sealbench()
        .arg("run")
        .arg(&scenario)
        .args(["--relay", &format!("ws://{}/", relay.addr), "--no-plots", "--out"])
        .arg(dir.path().join("out"))
        .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "20s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (addr, rest) = metrics_addr(&mut child)?;
    // Scrape until the run's latency histograms are there (every family the driver has).
    let mut driver = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !driver.contains("sealbench_driver_e2e_by_class_seconds_bucket") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        driver = get(addr, "/metrics", CLASSIC).map(|(_, b)| b).unwrap_or_default();
    }
    let (status, relay_text) = get(relay_metrics, "/metrics", CLASSIC)?;
    assert!(status.contains("200"), "{status}");
    for (what, text, family) in [
        ("the driver's /metrics", &driver, "# TYPE sealbench_driver_e2e_seconds histogram"),
        ("the relay's /metrics", &relay_text, "# TYPE sealbench_relay_routing_seconds histogram"),
    ] {
        assert!(text.contains(family), "{what} has `{family}`:\n{text}");
        assert!(!text.contains("# EOF"), "{what}: the classic text format was asked for");
        promtool_check(what, text)?;
    }
    // The linger ends at the first scrape after the final second: scrape as Prometheus
    // would until the run ends (well before the 20 s linger).
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        let _ = get(addr, "/metrics", CLASSIC);
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = wait_exit(&mut child, Duration::from_secs(5), "the run")?;
    let err = rest.join().unwrap_or_default();
    assert!(status.success(), "{err}");
    assert!(err.contains("metrics: final figures scraped"), "{err}");
    Ok(())
}

/// A Prometheus of this test's own scraping `targets` (job name → addresses) every second.
fn prometheus(dir: &Path, targets: &[(&str, Vec<SocketAddr>)]) -> Result<support::Server, support::Error> {
    let bin = support::binary("prometheus", "/usr/bin", "a real Prometheus")?;
    let tmp = tempfile::tempdir_in(dir)?;
    let port = support::free_port()?;
    let mut config = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n");
    for (job, addrs) in targets {
        let list: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
        config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n", list.join(", ")));
    }
    let file = tmp.path().join("prometheus.yml");
    std::fs::write(&file, config)?;
    let args: Vec<std::ffi::OsString> = vec![
        format!("--config.file={}", file.display()).into(),
        format!("--storage.tsdb.path={}", tmp.path().join("data").display()).into(),
        format!("--web.listen-address=127.0.0.1:{port}").into(),
        "--log.level=warn".into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let server = support::Server::start(&bin, &args, tmp, port, Duration::from_secs(20), &["prometheus.log"])?;
    let addr = server.addr;
    wait_for(
        || get(addr, "/-/ready", "*/*").is_ok_and(|(s, _)| s.contains("200")),
        Duration::from_secs(20),
        "Prometheus ready",
    )?;
    Ok(server)
}

/// One series of a query's answer: its labels and its value.
type Series = (BTreeMap<String, String>, f64);

/// `promql` as an instant query at `at` (Unix seconds): each series' labels and value.
fn query(prom: SocketAddr, promql: &str, at: f64) -> Result<Vec<Series>, support::Error> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = get(prom, &format!("/api/v1/query?query={q}&time={at:.3}"), "application/json")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{promql}: {status}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{promql}: {body}").into());
    }
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for r in result {
        let labels = r["metric"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        let value = r["value"][1].as_str().ok_or_else(|| format!("{promql}: {r}"))?;
        out.push((labels, value.parse::<f64>()?));
    }
    Ok(out)
}

/// The one value of `promql` at `at` (a query that sums to one series).
fn scalar(prom: SocketAddr, promql: &str, at: f64) -> Result<f64, support::Error> {
    match query(prom, promql, at)?.as_slice() {
        [(_, v)] => Ok(*v),
        other => Err(format!("{promql}: one series expected, got {other:?}").into()),
    }
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The two parts of the split run, each with `/metrics` on `metrics[i]`, lingering until
/// scraped; returns their result directories and the last moment both were seen running
/// (Unix seconds: Prometheus has fresh samples of every series then).
fn run_parts(dir: &Path, relay: SocketAddr, metrics: &[SocketAddr; 2]) -> Result<(Vec<PathBuf>, f64), support::Error> {
    let scenario = dir.join("prom.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let start = now_s() + 4.0;
    let mut parts = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let out = dir.join(format!("part{i}"));
        let child = sealbench()
            .arg("run")
            .arg(&scenario)
            .args(["--shard", &format!("{i}/2"), "--relay", &format!("ws://{relay}/")])
            .args(["--start-at", &format!("{start:.3}")])
            .args(["--set", &format!("clients.source_addresses=[\"127.0.0.{}\"]", i + 2)])
            .args(["--metrics", &m.to_string(), "--metrics-linger", "30s", "--no-plots", "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        parts.push((out, child));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen_running = now_s();
    let mut ended = [false, false];
    while ended.contains(&false) {
        let before = now_s();
        for (i, (_, child)) in parts.iter_mut().enumerate() {
            if ended[i] {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                child.stderr.take().ok_or("stderr")?.read_to_string(&mut err)?;
                assert!(status.success(), "part {i}: {err}");
                assert!(err.contains("metrics: final figures scraped"), "part {i}'s final second was scraped: {err}");
                ended[i] = true;
            }
        }
        if !ended.contains(&true) {
            seen_running = before;
        }
        if Instant::now() > deadline {
            for (_, child) in &mut parts {
                let _ = child.kill();
            }
            return Err("the parts did not end within 90 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dirs = parts.into_iter().map(|(out, _)| out).collect();
    Ok((dirs, seen_running))
}

#[test]
fn prometheus_adds_the_parts_of_a_split_run_as_merge_does() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (relay, relay_metrics) = relay(dir.path())?;
    let metrics = [support::free_port()?, support::free_port()?].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let prom =
        prometheus(dir.path(), &[("sealbench-relay", vec![relay_metrics]), ("sealbench-driver", metrics.to_vec())])?;
    let (dirs, running_at) = run_parts(dir.path(), relay.addr, &metrics)?;
    let merged = dir.path().join("merged");
    let out = sealbench().arg("merge").args(&dirs).arg("--out").arg(&merged).arg("--no-plots").output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Summary = serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json"))?)?;
    assert!(m.messages.delivered > 200, "traffic flowed: {}", m.messages.delivered);

    // Counters: the parts' final values added, exactly merge's.
    let end = now_s();
    let last = |name: &str| format!("sum(last_over_time(sealbench_driver_{name}[10m]))");
    let e2e = m.latency.get("e2e").ok_or("merged e2e")?;
    for (name, want) in [
        ("delivered_total", m.messages.delivered),
        ("sent_total", m.messages.sent),
        ("messages_total", m.messages.messages),
        ("e2e_seconds_count", e2e.count),
    ] {
        let got = scalar(prom.addr, &last(name), end)?;
        assert_eq!(got, want as f64, "{name}: Prometheus's sum over both parts vs merge");
    }
    // p99 over both parts from the added buckets: in the bucket that holds merge's p99.
    let p99 = scalar(
        prom.addr,
        "histogram_quantile(0.99, sum by (le) (last_over_time(sealbench_driver_e2e_seconds_bucket[10m])))",
        end,
    )?;
    let want = e2e.p99_us / 1e6;
    let bounds = sealbench::results::buckets::BOUNDS_S;
    let hi = bounds.iter().copied().find(|&b| want <= b).unwrap_or(f64::INFINITY);
    let lo = bounds.iter().copied().rev().find(|&b| b < want).unwrap_or(0.0);
    assert!(
        lo <= p99 && p99 <= hi.min(*bounds.last().unwrap_or(&hi)),
        "histogram_quantile(0.99) = {p99} s is not in merge's p99 bucket ({lo}, {hi}] (p99 {want} s)"
    );
    dashboard_queries_find_data(prom.addr, running_at)
}

/// Every `expr` of the Grafana dashboard, its variables replaced as Grafana would, finds
/// at least one series at `at` (a moment when every target was up).
fn dashboard_queries_find_data(prom: SocketAddr, at: f64) -> TestResult {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/sealbench.json");
    let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut exprs = Vec::new();
    collect_exprs(&board, &mut exprs);
    assert!(exprs.len() >= 6, "the dashboard's queries: {exprs:?}");
    for e in &exprs {
        let promql = e.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m");
        assert!(!promql.contains('$'), "a variable the test does not know: {promql}");
        let found = query(prom, &promql, at)?;
        assert!(!found.is_empty(), "the dashboard's `{promql}` found nothing at {at}");
    }
    Ok(())
}

/// Every string under an `expr` key, anywhere in `v`.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}
