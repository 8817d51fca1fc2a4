//! `run --remote-write`: the driver pushes its metrics to a real Prometheus (Debian's
//! `prometheus`, started by the test on a free 127.0.0.1 port with
//! `--web.enable-remote-write-receiver` and its own data directory), and what Prometheus
//! then holds is the run's own result: the pushed delivered counter equals `summary.json`'s.
//! Fails (does not skip) without Prometheus: `.ci/run` installs it.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

type TestResult = Result<(), support::Error>;

/// 40 clients in pairs, about 4 s.
const SCENARIO: &str = "name = \"push\"\nseed = 9\nduration = \"3s\"\nwarmup = \"500ms\"\ncooldown = \"500ms\"\n\
     [clients]\ncount = 40\n[traffic]\nrate = 20\nsize = 64\n";

/// A Prometheus of this test's own, receiving remote writes.
fn prometheus() -> Result<support::Server, support::Error> {
    let bin = support::binary("prometheus", "/usr/bin", "a real Prometheus to receive remote writes")?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n")?;
    let port = support::free_port()?;
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-remote-write-receiver".to_owned(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let server = support::Server::start(&bin, &args, dir, port, Duration::from_secs(30), &["prometheus.log"])?;
    // The port opens before the storage is ready; a write before then is refused (503).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(server.addr, "/-/ready").is_ok_and(|(status, _)| status == 200) {
        if Instant::now() > deadline {
            return Err(format!("prometheus not ready in time: {}", server.log()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

/// An HTTP/1.0 GET (so the answer is not chunked): status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), support::Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no HTTP status")?;
    Ok((status, text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned())))
}

/// The value of the one series an instant query (PromQL `metric`) returns.
fn query(addr: SocketAddr, metric: &str) -> Result<f64, support::Error> {
    let encoded: String = metric
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (status, body) = get(addr, &format!("/api/v1/query?query={encoded}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let result = v["data"]["result"].as_array().ok_or_else(|| format!("{status}: {body}"))?;
    let [series] = result.as_slice() else { return Err(format!("one series of {metric} expected: {body}").into()) };
    Ok(series["value"][1].as_str().ok_or("no value")?.parse()?)
}

#[test]
fn a_run_pushes_its_metrics_and_prometheus_holds_the_summarys_totals() -> TestResult {
    let prom = prometheus()?;
    let dir = tempfile::tempdir()?;
    let (scenario, out) = (dir.path().join("push.toml"), dir.path().join("out"));
    std::fs::write(&scenario, SCENARIO)?;
    let url = format!("http://{}/api/v1/write", prom.addr);
    let o = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run", path(&scenario)?, "--out", path(&out)?, "--no-plots", "--quiet"])
        .args(["--remote-write", &url, "--remote-write-interval", "1s"])
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(" 0 failed, 0 intervals skipped"), "every push accepted: {err}\n{}", prom.log());
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json"))?)?;
    let m = &summary["messages"];
    for (metric, want) in
        [("sealbench_driver_delivered_total", &m["delivered"]), ("sealbench_driver_sent_total", &m["sent"])]
    {
        let want = want.as_u64().ok_or("summary: messages")?;
        assert!(want > 0, "traffic flowed");
        assert_eq!(query(prom.addr, metric)?, want as f64, "{metric}: Prometheus vs summary.json");
    }
    assert!(query(prom.addr, "process_resident_memory_bytes")? > 0.0, "the process metrics are pushed too");
    assert_eq!(query(prom.addr, "count(sealbench_driver_sent_total{job=\"sealbench\",instance!=\"\"})")?, 1.0);
    Ok(())
}

#[test]
fn a_receiver_that_is_not_there_is_counted_and_the_run_still_succeeds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("push.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let port = support::free_port()?;
    let o = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run", path(&scenario)?, "--out", path(&dir.path().join("out"))?, "--no-plots", "--quiet"])
        .args(["--remote-write", &format!("http://127.0.0.1:{port}/api/v1/write")])
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "a failed push never fails the run: {err}");
    assert!(err.contains("remote write: 0 pushes accepted") && err.contains("cannot connect"), "{err}");
    Ok(())
}

#[test]
fn a_url_it_cannot_push_to_is_a_usage_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("push.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let o = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run", path(&scenario)?, "--out", path(&dir.path().join("out"))?])
        .args(["--remote-write", "https://prometheus.example/api/v1/write"])
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--remote-write https://prometheus.example/api/v1/write: give an http:// URL"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing ran: {err}");
    Ok(())
}

fn path(p: &Path) -> Result<&str, &'static str> {
    p.to_str().ok_or("a UTF-8 path")
}
