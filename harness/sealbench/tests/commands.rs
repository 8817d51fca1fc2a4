//! compare, matrix and capacity through the real binary, with shortened scenarios.

use sealbench::results::capacity::Capacity;
use sealbench::results::matrix::Matrix;
use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const TINY: &str = "name = \"tiny\"\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"1s\"\n\
                    [clients]\ncount = 20\n[traffic]\nrate = 20\nsize = 256\n";

/// Tests that run load take turns: on a 2-core machine two runs side by side measure each
/// other (an A/A pair's p99 moved by 8× when three ran at once), and these tests are about
/// the commands, not about sharing the machine.
fn one_run_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sealbench(args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_sealbench")).args(args).output()
}

fn run_to(scenario: &Path, out: &Path, extra: &[&str]) -> TestResult {
    let mut args = vec!["run", scenario.to_str().ok_or("path")?, "--out", out.to_str().ok_or("path")?];
    args.extend_from_slice(extra);
    let o = sealbench(&args)?;
    assert!(o.status.success(), "run failed: {}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

#[test]
fn compare_passes_an_a_a_pair_and_names_the_figure_a_slow_relay_worsens() -> TestResult {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY)?;
    let (base, again, slow) = (dir.path().join("base"), dir.path().join("again"), dir.path().join("slow"));
    run_to(&scenario, &base, &[])?;
    run_to(&scenario, &again, &[])?;
    assert!(base.join("report.html").exists(), "report.html is written");
    let html = std::fs::read_to_string(base.join("report.html"))?;
    assert!(html.contains("<svg"), "plots inlined");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing fetched from the network");
    // Two runs of the same binary and scenario pass the default gate.
    let same = sealbench(&["compare", base.to_str().ok_or("p")?, again.to_str().ok_or("p")?])?;
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("no regression") && text.contains("verdicts: "), "{text}");
    // A misspelled rule is refused, not silently passed.
    let typo = sealbench(&[
        "compare",
        base.to_str().ok_or("p")?,
        again.to_str().ok_or("p")?,
        "--fail-on",
        "conect.p50 > +10%",
    ])?;
    assert_eq!(typo.status.code(), Some(2), "{}", String::from_utf8_lossy(&typo.stdout));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("conect.p50"));
    run_to(&scenario, &slow, &["--set", "relay.delay=\"2ms\""])?;
    let worse = sealbench(&["compare", base.to_str().ok_or("p")?, slow.to_str().ok_or("p")?])?;
    let text = String::from_utf8_lossy(&worse.stdout);
    assert_eq!(worse.status.code(), Some(99), "{text}");
    assert!(text.contains("REGRESSION in:") && text.contains("e2e.p99"), "{text}");
    // --json for machines.
    let json = sealbench(&["compare", "--json", base.to_str().ok_or("p")?, slow.to_str().ok_or("p")?])?;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(v["regression"], true);
    // A different load is refused without --force.
    let other = dir.path().join("other");
    run_to(&scenario, &other, &["--set", "traffic.size=512"])?;
    let refused = sealbench(&["compare", base.to_str().ok_or("p")?, other.to_str().ok_or("p")?])?;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("message size"));
    Ok(())
}

#[test]
fn matrix_runs_every_cell_with_the_baseline_and_writes_parseable_results() -> TestResult {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("m");
    let o = sealbench(&[
        "matrix",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quickstart.toml"),
        "--aead",
        "chacha20-poly1305,aes-256-gcm",
        "--repeat",
        "1",
        "--set",
        "clients.count=20",
        "--set",
        "duration=\"1s\"",
        "--set",
        "warmup=\"200ms\"",
        "--set",
        "clients.connect_rate=0",
        "--out",
        out.to_str().ok_or("p")?,
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Matrix = serde_json::from_str(&std::fs::read_to_string(out.join("matrix.json"))?)?;
    let aeads: Vec<&str> = m.cells.iter().map(|c| c.aead.as_str()).collect();
    assert_eq!(aeads, vec!["chacha20-poly1305", "aes-256-gcm", "none"]);
    assert!(m.cells.iter().all(|c| c.runs.len() == 1 && c.throughput_per_s.is_some()));
    let md = std::fs::read_to_string(out.join("matrix.md"))?;
    assert!(md.contains("none (UNENCRYPTED)"));
    // A verdict for the AEAD dimension, naming one of the two (never the baseline).
    let verdict = md.lines().find(|l| l.starts_with("- aead: ")).ok_or("no AEAD verdict in matrix.md")?;
    assert!(verdict.contains("chacha20-poly1305") && verdict.contains("aes-256-gcm"), "{verdict}");
    for f in ["matrix-latency.png", "matrix-crypto-share.png", "report.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The load chart: cost per message when every cell kept up with the offered rate.
    let (load, not) = if m.cells.iter().all(|c| c.offered_met) {
        ("matrix-cpu.svg", "matrix-throughput.svg")
    } else {
        ("matrix-throughput.svg", "matrix-cpu.svg")
    };
    assert!(out.join(load).exists() && !out.join(not).exists(), "{load} and not {not}");
    // A matrix compares against itself cell by cell without regression.
    let same = sealbench(&["compare", out.to_str().ok_or("p")?, out.to_str().ok_or("p")?])?;
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("matrix.e2e_p99_us[none/XX/noise]"), "{text}");
    Ok(())
}

/// `sealbench capacity` of the tiny scenario with `args`, into a temporary directory:
/// (the directory, kept while in scope; the output directory; the process's output).
fn tiny_capacity(
    args: &[&str],
) -> Result<(tempfile::TempDir, std::path::PathBuf, Output), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY)?;
    let out = dir.path().join("c");
    let mut all = vec!["capacity", scenario.to_str().ok_or("p")?];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().ok_or("p")?]);
    let o = sealbench(&all)?;
    Ok((dir, out, o))
}

#[test]
fn capacity_steps_the_rate_and_reports_what_it_found() -> TestResult {
    let _turn = one_run_at_a_time();
    let (_dir, out, o) = tiny_capacity(&[
        "--slo",
        "e2e.p99<200ms",
        "--slo",
        "messages.lost==0",
        "--start",
        "200",
        "--max",
        "800",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: Capacity = serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json"))?)?;
    let offered: Vec<f64> = c.steps.iter().map(|s| s.offered).collect();
    assert_eq!(offered[0], 200.0);
    // A few hundred msgs/s from 20 clients never saturate the generator, even on a busy
    // machine: a stall or two is a lag spike, not saturation, so a capacity is found.
    assert_eq!(c.generator_limit, None, "{}", c.conclusion);
    assert!(c.steps.iter().all(|s| !s.saturated));
    assert!(c.capacity.is_some(), "{}", c.conclusion);
    if c.steps.iter().all(|s| s.pass) {
        assert_eq!(offered, vec![200.0, 400.0, 800.0], "geometric growth up to --max");
        assert_eq!(c.capacity, Some(800.0), "{}", c.conclusion);
    }
    for f in ["capacity.md", "capacity-latency.png", "capacity-throughput.svg", "report.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    Ok(())
}

/// `sealbench run --dry-run` of the quickstart in a shell whose open-file limits are
/// `soft` and `hard` (set with the shell's `ulimit`, as a user's login would).
fn dry_run_with_limits(soft: u64, hard: u64) -> Result<Output, std::io::Error> {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quickstart.toml");
    let script = format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" run \"$1\" --dry-run");
    Command::new("sh").args(["-c", &script, env!("CARGO_BIN_EXE_sealbench"), scenario]).output()
}

#[test]
fn a_stock_soft_limit_is_raised_to_the_hard_one_and_only_the_hard_limit_refuses() -> TestResult {
    // A stock desktop: soft 1,024, hard far higher. The quickstart needs about 2,128.
    let ok = dry_run_with_limits(1024, 4096)?;
    assert!(ok.status.success(), "raised to the hard limit: {}", String::from_utf8_lossy(&ok.stderr));
    // A hard limit of 1,024: the dry run refuses, as the run would, naming the hard limit.
    let refused = dry_run_with_limits(1024, 1024)?;
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("its hard limit") && err.contains("at most 448"), "{err}");
    Ok(())
}

#[test]
fn a_dry_run_refuses_the_thresholds_the_run_would_refuse() -> TestResult {
    let _turn = one_run_at_a_time();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quickstart.toml");
    // Each refusal `run` makes before it connects, and what its message names.
    let table: [(&[&str], &str); 7] = [
        (&["--set", "thresholds=[\"e2e.p98 < 5ms\"]"], "thresholds"),
        (&["--set", "thresholds=[\"e2e{class=group}.p99 < 5ms\"]"], "thresholds"),
        (&["--clients", "9000000"], "clients"),
        (&["--relay", "wss://127.0.0.1:9/", "--ca", "/nonexistent/ca.pem"], "relay.ca"),
        (&["--relay", "ws://127.0.0.1:9/", "--relay-metrics", "https://127.0.0.1/metrics"], "relay.metrics"),
        (&["--relay", "ws://127.0.0.1:9/", "--relay-threads", "1"], "sealbench relay --threads N"),
        (&["--cpus", "relay=0", "--relay-threads", "1"], "give one or the other"),
    ];
    for (flags, names) in table {
        for dry in [true, false] {
            let mut args = vec!["run", scenario, "--duration", "1s", "--no-plots", "--quiet"];
            args.extend_from_slice(flags);
            if dry {
                args.push("--dry-run");
            }
            let o = sealbench(&args)?;
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{flags:?} (dry run: {dry}): {err}");
            assert!(err.contains(names), "{flags:?} (dry run: {dry}) names {names}: {err}");
        }
    }
    let ok = sealbench(&["run", scenario, "--dry-run"])?;
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("is valid"));
    // A host this machine cannot resolve (a cluster's service name) is a warning in a dry
    // run, not a refusal: the run may be meant for where the name exists.
    let elsewhere = sealbench(&["run", scenario, "--relay", "ws://no-such-host.invalid:9/", "--dry-run"])?;
    assert!(elsewhere.status.success(), "{}", String::from_utf8_lossy(&elsewhere.stderr));
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("cannot resolve"));
    Ok(())
}

#[test]
fn compare_refuses_a_negative_latency_and_a_layout_newer_than_it_reads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY)?;
    let base = dir.path().join("base");
    run_to(&scenario, &base, &["--no-plots"])?;
    let text = std::fs::read_to_string(base.join("summary.json"))?;
    let edited = |name: &str,
                  edit: &dyn Fn(&mut serde_json::Value)|
     -> Result<std::path::PathBuf, Box<dyn std::error::Error + Send + Sync>> {
        let mut v: serde_json::Value = serde_json::from_str(&text)?;
        edit(&mut v);
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("summary.json"), serde_json::to_string(&v)?)?;
        Ok(d)
    };
    let negative = edited("negative", &|v| v["latency"]["e2e"]["p99_us"] = serde_json::json!(-5.0))?;
    let future = edited("future", &|v| v["schema_version"] = serde_json::json!(999))?;
    for (bad, what) in [(&negative, "cannot be negative"), (&future, "newer than this sealbench reads")] {
        let o = sealbench(&["compare", base.to_str().ok_or("p")?, bad.to_str().ok_or("p")?])?;
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(what) && err.contains("summary.json"), "{err}");
    }
    Ok(())
}

#[test]
fn out_of_range_numbers_are_refused_naming_the_field_before_anything_is_allocated() -> TestResult {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quickstart.toml");
    let cases = [
        ("clients.count=4294967300", "clients.count"),
        ("clients.count=1000000000000", "clients.count"),
        ("duration=\"99999999999999h\"", "duration"),
        ("cooldown=\"99999999999h\"", "cooldown"),
        ("warmup=\"31days\"", "warmup"),
        ("traffic.rate=1e300", "traffic.rate"),
        ("clients.connect_rate=1e300", "clients.connect_rate"),
    ];
    for (set, field) in cases {
        // Under a 1 GB address-space limit: a refusal must come before any large allocation.
        let script = "ulimit -v 1000000 && exec \"$0\" run \"$1\" --dry-run --set \"$2\"";
        let o = Command::new("sh").args(["-c", script, env!("CARGO_BIN_EXE_sealbench"), scenario, set]).output()?;
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{set}: {err}");
        assert!(err.contains(&format!("{field}:")), "{set} names {field}: {err}");
    }
    Ok(())
}

#[test]
fn durations_take_a_unit_everywhere_and_a_bare_number_is_refused_with_the_fix() -> TestResult {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/quickstart.toml");
    let out = sealbench(&["run", scenario.to_str().ok_or("path")?, "--duration", "5", "--dry-run"])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("write 5s"), "{err}");
    // The relay's durations take units too (checked by parsing alone: --help after them).
    for ok in [["--delay", "2ms"], ["--handshake-timeout", "10s"], ["--idle-timeout", "5m"], ["--claim-window", "30s"]]
    {
        let out = sealbench(&["relay", ok[0], ok[1], "--help"])?;
        assert!(out.status.success(), "{ok:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = sealbench(&["relay", "--delay", "2", "--help"])?;
    assert_eq!(out.status.code(), Some(2), "a bare --delay is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("write 2s"));
    // The relay's help states the worst case of its defaults on this machine.
    let help = String::from_utf8_lossy(&sealbench(&["relay", "--help"])?.stdout).into_owned();
    assert!(help.contains("Worst-case memory") && help.contains("GiB shared"), "{help}");
    Ok(())
}

/// The values `--help` lists for FLAG (`[possible values: a, b]`), or None.
fn listed_values(help: &str, flag: &str) -> Option<Vec<String>> {
    let start = help.find(&format!("{flag} <"))?;
    let rest = &help[start..];
    let end = rest[2..].find("\n  -").map_or(rest.len(), |e| e + 2);
    let block: String = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    let list = block.split("[possible values: ").nth(1)?.split(']').next()?;
    Some(list.split(", ").map(str::to_owned).collect())
}

#[test]
fn every_enum_flag_lists_exactly_the_values_its_parser_takes() -> TestResult {
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| name(*v).to_owned()).collect()
    }
    let aead = names(&sealcore::AeadKind::ALL, sealcore::AeadKind::name);
    let pattern = names(&sealcore::Pattern::ALL, sealcore::Pattern::name);
    let backend = names(&sealcore::Backend::ALL, sealcore::Backend::name);
    let protocol = names(&sealproto::Protocol::ALL, sealproto::Protocol::name);
    let transport = vec!["ws".to_owned(), "wss".to_owned()];
    let mode = vec!["noise".to_owned(), "kdf-chain".to_owned()];
    type Flags<'a> = &'a [(&'a str, &'a Vec<String>)];
    let cases: [(&str, Flags); 3] = [
        ("run", &[("--aead", &aead), ("--pattern", &pattern), ("--transport", &transport)]),
        (
            "matrix",
            &[
                ("--aead", &aead),
                ("--pattern", &pattern),
                ("--mode", &mode),
                ("--backend", &backend),
                ("--transport", &transport),
                ("--protocol", &protocol),
            ],
        ),
        ("crypto", &[("--aead", &aead), ("--backend", &backend)]),
    ];
    for (cmd, flags) in cases {
        let help = String::from_utf8(sealbench(&[cmd, "--help"])?.stdout)?;
        for (flag, want) in flags {
            assert_eq!(listed_values(&help, flag).as_ref(), Some(*want), "{cmd} {flag}");
            for v in want.iter() {
                // Each listed value is taken (checked by parsing alone: --help after it).
                let out = sealbench(&[cmd, flag, v, "--help"])?;
                assert!(out.status.success(), "{cmd} {flag} {v}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    Ok(())
}

#[test]
fn run_matrix_and_capacity_take_the_same_scenario_flags() -> TestResult {
    let shared = [
        "--set",
        "--clients",
        "--duration",
        "--relay",
        "--ca",
        "--insecure",
        "--transport",
        "--out",
        "--no-plots",
        "--quiet",
        "--metrics",
        "--json-stream",
        "--dry-run",
        "--time-scale",
        "--relay-metrics",
    ];
    for cmd in ["run", "matrix", "capacity"] {
        let help = String::from_utf8(sealbench(&[cmd, "--help"])?.stdout)?;
        for flag in shared {
            let listed = help.contains(&format!("  {flag}")) || help.contains(&format!(", {flag}"));
            assert!(listed, "{cmd} --help lacks {flag}");
        }
    }
    // The same flags work the same way: a dry run of each with the shared flags.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/quickstart.toml");
    let scenario = scenario.to_str().ok_or("path")?;
    let common = ["--clients", "40", "--duration", "2s", "--relay", "embedded", "--no-plots", "--quiet", "--dry-run"];
    for cmd in [
        &["run", scenario][..],
        &["matrix", scenario, "--aead", "aes-256-gcm"],
        &["capacity", scenario, "--slo", "e2e.p99<50ms"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(common);
        let out = sealbench(&args)?;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"), "{args:?}");
    }
    // capacity's old switch still works for a release, with a warning.
    let out = sealbench(&["capacity", scenario, "--slo", "e2e.p99<50ms", "--clients", "--dry-run"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--search clients"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("search over clients"));
    Ok(())
}

/// Kills a child process when the test ends, whatever happens.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn capacity_against_a_standalone_relay_reports_its_cpu_per_message_and_per_core() -> TestResult {
    let _turn = one_run_at_a_time();
    let free =
        || -> Result<std::net::SocketAddr, std::io::Error> { std::net::TcpListener::bind("127.0.0.1:0")?.local_addr() };
    let (ws, http) = (free()?, free()?);
    let _relay = Child(
        Command::new(env!("CARGO_BIN_EXE_sealbench"))
            .args(["relay", "--listen", &ws.to_string(), "--metrics", &http.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(http).is_err() {
        assert!(std::time::Instant::now() < up, "the relay did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_dir, out, o) = tiny_capacity(&[
        "--relay",
        &format!("ws://{ws}/"),
        "--relay-metrics",
        &format!("http://{http}/metrics"),
        "--slo",
        "e2e.p99<500ms",
        "--start",
        "200",
        "--max",
        "400",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--no-plots",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: Capacity = serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json"))?)?;
    for s in &c.steps {
        let cpu = s.relay_cpu_us_per_msg.ok_or("every step has the relay's CPU per message")?;
        assert!(cpu > 0.0 && cpu < 100_000.0, "{cpu}");
        assert_eq!(s.relay_msgs_per_core_s.map(|p| (p * cpu / 1e6 * 1e6).round()), Some(1e6));
    }
    if c.capacity.is_some() {
        assert!(c.fleet.as_deref().is_some_and(|f| f.contains("msgs/s per relay core")), "{:?}", c.fleet);
    }
    Ok(())
}

#[test]
fn a_repeated_run_writes_its_runs_and_spread_and_compare_judges_on_it() -> TestResult {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY)?;
    let out = dir.path().join("r");
    let o = sealbench(&[
        "run",
        scenario.to_str().ok_or("p")?,
        "--repeat",
        "2",
        "--duration",
        "1s",
        "--no-plots",
        "--quiet",
        "--out",
        out.to_str().ok_or("p")?,
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: sealbench::results::repeats::Repeats =
        serde_json::from_str(&std::fs::read_to_string(out.join("repeats.json"))?)?;
    assert_eq!(r.runs, ["run-1", "run-2"]);
    assert_eq!(r.figures["e2e.p99"].values.len(), 2);
    for run in &r.runs {
        assert!(out.join(run).join("summary.json").is_file(), "{run}");
    }
    // Against itself: every figure equal, nothing fires.
    let same = sealbench(&["compare", out.to_str().ok_or("p")?, out.to_str().ok_or("p")?, "--json"])?;
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stderr));
    let json: serde_json::Value = serde_json::from_slice(&same.stdout)?;
    let p99 = json["rows"].as_array().ok_or("rows")?.iter().find(|r| r["name"] == "e2e.p99").ok_or("e2e.p99")?;
    assert_eq!(p99["verdict"], "within_noise", "{p99}");
    Ok(())
}

#[test]
fn no_empty_or_mixed_result_directories() -> TestResult {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY)?;
    let out = dir.path().join("r");
    run_to(&scenario, &out, &["--duration", "1s"])?;
    assert!(out.join("report.html").is_file());
    // Reused without plots: the last run's report and plots are gone, not left beside.
    run_to(&scenario, &out, &["--duration", "1s", "--no-plots"])?;
    assert!(out.join("summary.json").is_file());
    assert!(!out.join("report.html").exists() && !out.join("timeline.png").exists());
    // A run that cannot reach its relay fails (exit 1) and leaves no empty directory.
    let failed = dir.path().join("failed");
    let o = sealbench(&[
        "run",
        scenario.to_str().ok_or("p")?,
        "--relay",
        "ws://127.0.0.1:9/",
        "--out",
        failed.to_str().ok_or("p")?,
    ])?;
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!failed.exists(), "an empty result directory was left behind");
    Ok(())
}
