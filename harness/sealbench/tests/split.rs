//! A run split over processes: one scenario as 3 parts in 3 `sealbench run --shard I/3`
//! processes (each from its own source address) against one standalone relay process,
//! then `sealbench merge`. The merged counts are the sum of the parts', the merged
//! histograms the sum of the parts' value for value, and thresholds on the merged result
//! give the exit code they should. Loopback only; bounded (a few seconds per process).

use hdrhistogram::Histogram;
use sealbench::results::hlog;
use sealbench::results::summary::Summary;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Kills the relay when the test ends, whatever happens.
struct Relay(Child);
impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealbench"))
}

fn relay() -> Result<(Relay, SocketAddr), Box<dyn std::error::Error + Send + Sync>> {
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let child = bin().args(["relay", "--listen", &addr.to_string()]).stderr(std::process::Stdio::null()).spawn()?;
    let relay = Relay(child);
    let up = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > up {
            return Err("relay did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((relay, addr))
}

const SCENARIO: &str = "name = \"split\"\nseed = 5\nduration = \"3s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
    thresholds = [\"messages.lost == 0\", \"e2e.p99 < 10s\"]\n\
    [clients]\ncount = 90\ndevices = [{ devices = 1, weight = 2 }, { devices = 2, weight = 1 }]\n\
    [conversations]\nkind = \"mix\"\ngroup_sizes = [{ size = 4, weight = 1 }]\n\
    [traffic]\nrate = 20\narrival = \"poisson\"\nsize = 100\n";

/// Every (series, value) count of a result's interval log, added over its intervals.
fn histograms(dir: &Path) -> Result<BTreeMap<String, Histogram<u64>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for i in hlog::read(&std::fs::read(dir.join("latency.hlog"))?)? {
        match out.get_mut(&i.tag) {
            Some(h) => h.add(&i.hist)?,
            None => {
                out.insert(i.tag.clone(), i.hist);
            }
        }
    }
    Ok(out)
}

fn summary(dir: &Path) -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?)
}

/// Every (series, value) count of several results' interval logs, added.
fn summed_histograms(
    dirs: &[std::path::PathBuf],
) -> Result<BTreeMap<String, Histogram<u64>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut want: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for d in dirs {
        for (tag, h) in histograms(d)? {
            match want.get_mut(&tag) {
                Some(w) => w.add(&h)?,
                None => {
                    want.insert(tag, h);
                }
            }
        }
    }
    Ok(want)
}

/// Copies of the results in `dirs` under `into` (`part0`, `part1`, …) whose scenario has
/// `thresholds` instead of its own; returns their directories.
fn copies_with_thresholds(
    dirs: &[std::path::PathBuf],
    into: &Path,
    thresholds: &[&str],
) -> Result<Vec<std::path::PathBuf>, Box<dyn std::error::Error + Send + Sync>> {
    for (i, d) in dirs.iter().enumerate() {
        let copy = into.join(format!("part{i}"));
        std::fs::create_dir_all(&copy)?;
        for f in ["latency.hlog", "timeseries.csv"] {
            std::fs::copy(d.join(f), copy.join(f))?;
        }
        let mut s = summary(d)?;
        s.scenario.thresholds = thresholds.iter().map(|t| (*t).to_owned()).collect();
        std::fs::write(copy.join("summary.json"), serde_json::to_string(&s)?)?;
    }
    Ok((0..dirs.len()).map(|i| into.join(format!("part{i}"))).collect())
}

#[test]
fn three_parts_in_three_processes_merge_exactly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("split.toml");
    std::fs::write(&scenario, SCENARIO)?;
    let (_relay, addr) = relay()?;
    let url = format!("ws://{addr}/");
    // A common start a few seconds ahead: every part connects and handshakes, then waits.
    let start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() + 4.0;
    let parts: Vec<_> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("part{i}"));
            let child = bin()
                .arg("run")
                .arg(&scenario)
                .args(["--shard", &format!("{i}/3"), "--relay", &url, "--start-at", &format!("{start:.3}")])
                .args(["--set", &format!("clients.source_addresses=[\"127.0.0.{}\"]", i + 2)])
                .arg("--no-plots")
                .arg("--out")
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn();
            (out, child)
        })
        .collect();
    let mut dirs = Vec::new();
    for (out, child) in parts {
        let done = child?.wait_with_output()?;
        assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
        dirs.push(out);
    }
    let merged = dir.path().join("merged");
    let out = bin().arg("merge").args(&dirs).arg("--out").arg(&merged).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Counts: the merged figures are the sums of the parts'.
    let parts: Vec<Summary> = dirs.iter().map(|d| summary(d)).collect::<Result<_, _>>()?;
    let m = summary(&merged)?;
    let sum = |f: fn(&Summary) -> u64| parts.iter().map(f).sum::<u64>();
    assert_eq!(m.messages.sent, sum(|s| s.messages.sent));
    assert_eq!(m.messages.delivered, sum(|s| s.messages.delivered));
    assert_eq!(m.messages.messages, sum(|s| s.messages.messages));
    assert_eq!(m.clients.connected, 90, "every device of the scenario, once");
    assert_eq!(m.clients.handshakes_ok, sum(|s| s.clients.handshakes_ok));
    assert_eq!(m.messages.lost, 0);
    assert!(m.messages.sent > 500, "traffic flowed: {}", m.messages.sent);
    for s in &parts {
        let split = s.split.as_ref().ok_or("each part records its split")?;
        assert!(split.late_start_s.is_some_and(|l| l < 1.0), "the parts started together: {split:?}");
        assert!(s.clients.connected < 90, "a part runs only its share");
    }
    assert_eq!(m.parts.len(), 3);
    // How the cores were shared is each part's (external relay, parts' own threads), not
    // the merging process's.
    let cores = m.generator.cores.as_deref().ok_or("the merged result says how cores were shared")?;
    assert!(cores.contains("relay was external") && cores.contains("parts"), "{cores}");

    // Histograms: the merged log is the parts' logs added, value for value.
    let want = summed_histograms(&dirs)?;
    let got = histograms(&merged)?;
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (tag, w) in &want {
        let g = &got[tag];
        let values = |h: &Histogram<u64>| {
            h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>()
        };
        assert_eq!(values(g), values(w), "{tag}: merged ≠ sum of the parts");
    }
    let e2e = m.latency.get("e2e").ok_or("merged e2e")?;
    assert_eq!(e2e.count, want["e2e"].len(), "the summary's figures come from the merged histograms");

    // Thresholds are judged on the merged figures: a failing one gives 99.
    // (The same parts, with a threshold no run meets written into their scenario.)
    let failing = dir.path().join("failing");
    let copies = copies_with_thresholds(&dirs, &failing, &["messages.lost == 0", "e2e.p99 < 1ns"])?;
    let out = bin().arg("merge").args(&copies).arg("--out").arg(failing.join("m")).arg("--no-plots").output()?;
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));

    // Parts of different runs do not merge.
    let out = bin().arg("merge").arg(&dirs[0]).arg(&copies[1]).arg("--out").arg(dir.path().join("x")).output()?;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    refusals_and_a_partial_merge(&dirs, dir.path())
}

/// What `merge` must refuse (exit 2, named) — a missing part, an impossible part, a log that
/// disagrees with its summary — and a partial merge asked for, which says so.
fn refusals_and_a_partial_merge(dirs: &[std::path::PathBuf], tmp: &Path) -> TestResult {
    let merge = |parts: &[&Path], extra: &[&str], out: &str| {
        bin().arg("merge").args(parts).arg("--out").arg(tmp.join(out)).args(["--no-plots"]).args(extra).output()
    };
    let refused = |o: &std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
    };
    // Two of three parts: refused, unless asked for; then the result says PARTIAL.
    let two = [dirs[0].as_path(), dirs[1].as_path()];
    refused(&merge(&two, &[], "two")?, "missing");
    let o = merge(&two, &["--partial"], "partial")?;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PARTIAL"), "the console says it");
    let p = summary(&tmp.join("partial"))?;
    assert!(p.partial.as_deref().is_some_and(|w| w.contains("[2]")), "summary.json says it: {:?}", p.partial);
    // Part 7 of 3.
    let seven = tmp.join("seven");
    copy_part(&dirs[2], &seven)?;
    let mut s = summary(&seven)?;
    let mut split = s.split.clone().ok_or("a part")?;
    split.part.index = 7;
    s.split = Some(split);
    std::fs::write(seven.join("summary.json"), serde_json::to_string(&s)?)?;
    refused(&merge(&[dirs[0].as_path(), dirs[1].as_path(), &seven], &[], "seven")?, "cannot be");
    // A truncated interval log.
    let cut = tmp.join("cut");
    copy_part(&dirs[2], &cut)?;
    let log = std::fs::read_to_string(cut.join("latency.hlog"))?;
    let keep: Vec<&str> = log.lines().take(log.lines().count() / 2).collect();
    std::fs::write(cut.join("latency.hlog"), keep.join("\n") + "\n")?;
    refused(&merge(&[dirs[0].as_path(), dirs[1].as_path(), &cut], &[], "cut")?, "disagrees");
    Ok(())
}

fn copy_part(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for f in ["summary.json", "latency.hlog", "timeseries.csv"] {
        std::fs::copy(from.join(f), to.join(f))?;
    }
    Ok(())
}
