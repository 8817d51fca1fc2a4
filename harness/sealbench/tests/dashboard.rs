//! `run --dashboard`: the live page in a real browser. A short run (embedded relay, 200
//! clients, about 7 s) serves the page; headless Chromium (Debian's `chromium`) loads it
//! while the run goes on and dumps its DOM once the stream has ended, and the test reads
//! what the page's script wrote into it: the updates it received, the lines it drew, the
//! final report. Fails (does not skip) without Chromium: `.ci/run` installs it.

// The binary lookup only; the server helpers are for tests that start a server.
#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), support::Error>;

/// 200 clients in groups of 10 (classes `class=group` and `class=group,size=10`).
const SCENARIO: &str = "name = \"dash\"\nseed = 5\nduration = \"5s\"\nwarmup = \"1s\"\ncooldown = \"1s\"\n\
     [clients]\ncount = 200\n\
     [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 3\n\
     group_sizes = [{ size = 10, weight = 1 }]\n\
     [traffic]\nrate = 5\narrival = \"poisson\"\nsize = 100\n";

/// Longest the browser may take before the test gives up on it.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// The value of `name="…"` in the first tag of `dom` that has it.
fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let at = dom.find(&format!(" {name}=\""))? + name.len() + 3;
    dom[at..].split('"').next()
}

/// Runs Chromium headless on `url` and returns the DOM it dumps; killed past [`BROWSER_LIMIT`].
fn dump_dom(url: &str, profile: &Path) -> Result<String, support::Error> {
    let bin = support::binary("chromium", "/usr/bin", "a headless browser to load the live page")?;
    let mut child = Command::new(bin)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", profile.display()))
        // Virtual time does not pass while the event stream is open: the DOM is dumped once
        // the page has closed the stream at the run's `end` event, plus this much.
        .arg("--virtual-time-budget=2000")
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = child.stdout.take().ok_or("stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).map(|_| text)
    });
    let deadline = Instant::now() + BROWSER_LIMIT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("chromium did not finish within {BROWSER_LIMIT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(reader.join().map_err(|_| "reader panicked")??)
}

#[test]
fn the_live_page_receives_seconds_draws_them_and_shows_the_final_report() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (scenario, out) = (dir.path().join("dash.toml"), dir.path().join("out"));
    std::fs::write(&scenario, SCENARIO)?;
    let mut run = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run", path(&scenario)?, "--out", path(&out)?, "--no-plots", "--dashboard", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(run.stderr.take().ok_or("stderr")?);
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line)? > 0 {
        addr = line.trim().strip_prefix("dashboard: http://").and_then(|a| a.strip_suffix('/')?.parse().ok());
        line.clear();
    }
    let addr: SocketAddr = addr.ok_or("no `dashboard: http://ADDR/` line on stderr")?;
    let drain = std::thread::spawn(move || std::io::read_to_string(&mut stderr));
    let dom = dump_dom(&format!("http://{addr}/"), &dir.path().join("chromium"));
    let status = run.wait()?;
    let log = drain.join().map_err(|_| "drain panicked")??;
    let dom = dom?;
    assert!(status.success(), "the run succeeds: {log}");
    let updates: usize = attr(&dom, "data-updates").ok_or("no data-updates on the page")?.parse()?;
    assert!(updates >= 3, "the page received at least three seconds: {updates}\n{dom}");
    assert_eq!(attr(&dom, "data-state"), Some("ended"), "the page saw the end of the run");
    assert_eq!(attr(&dom, "data-report"), Some("1"), "the final report is shown");
    let drawn = dom.matches("<path class=\"line\" d=\"M").count();
    assert!(drawn >= 6, "lines drawn in the plots (rate, latency per class, clients, errors): {drawn}\n{dom}");
    assert!(dom.contains("class=group,size=10 p99"), "a latency line per traffic class");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json"))?)?;
    let delivered = summary["messages"]["delivered"].as_u64().ok_or("summary: messages.delivered")?;
    assert!(delivered > 0, "traffic flowed");
    let shown = format!("<th>delivered</th><td class=\"n\">{}</td>", grouped(delivered));
    assert!(dom.contains(&shown), "the report shows summary.json's delivered count ({shown})\n{dom}");
    Ok(())
}

#[test]
fn a_taken_dashboard_port_stops_the_run_before_it_starts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("dash.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run", path(&scenario)?, "--out", path(&dir.path().join("o"))?, "--dashboard", &addr])
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("--dashboard {addr}: cannot listen there")), "{err}");
    Ok(())
}

/// `n` with thousands separated by commas, as the page writes it (`5,157`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn path(p: &Path) -> Result<&str, &'static str> {
    p.to_str().ok_or("a UTF-8 path")
}
