//! SIGTERM (as Ctrl-C) ends a run promptly in every phase — warm-up, steady sending, and a
//! cool-down still waiting for messages in flight — and every result file is written, marked
//! interrupted. Loopback only; each run is bounded by the signal (and a 60 s guard).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Starts `run` of `scenario`, sends SIGTERM after `after`, and returns how long the process
/// took to exit after the signal, and its exit code.
fn terminated(
    scenario: &Path,
    out: &Path,
    after: Duration,
) -> Result<(Duration, Option<i32>), Box<dyn std::error::Error + Send + Sync>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .arg("run")
        .arg(scenario)
        .args(["--no-plots", "--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(after);
    let sent = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    let guard = sent + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((sent.elapsed(), status.code()));
        }
        if Instant::now() > guard {
            let _ = child.kill();
            return Err("the run ignored SIGTERM for a minute".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(dir: &Path, name: &str, text: &str) -> Result<std::path::PathBuf, std::io::Error> {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text)?;
    Ok(p)
}

#[test]
fn sigterm_ends_a_run_within_two_seconds_in_every_phase_and_writes_every_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let base = "[clients]\ncount = 20\n[traffic]\nrate = 20\nsize = 128\n";
    let cases = [
        // In the warm-up (3 s of it; connecting takes well under a second here).
        ("warmup", format!("name = \"w\"\nwarmup = \"3s\"\nduration = \"10s\"\n{base}"), 1500),
        // While sending.
        ("steady", format!("name = \"s\"\nwarmup = \"500ms\"\nduration = \"20s\"\n{base}"), 3000),
        // In a cool-down of an hour that waits for messages an adversarial relay dropped
        // (they never arrive: without the signal it would wait the whole hour).
        (
            "cooldown",
            format!(
                "name = \"c\"\nwarmup = \"500ms\"\nduration = \"1s\"\ncooldown = \"1h\"\n{base}[relay]\nadversary = \"drop=0.5\"\n"
            ),
            4000,
        ),
    ];
    for (phase, text, after_ms) in cases {
        let s = scenario(dir.path(), phase, &text)?;
        let out = dir.path().join(phase);
        let (took, code) = terminated(&s, &out, Duration::from_millis(after_ms))?;
        assert!(took < Duration::from_secs(2), "{phase}: exited {took:?} after SIGTERM");
        assert_eq!(code, Some(130), "{phase}: an interrupted run exits 130");
        for f in ["summary.json", "latency.hlog", "timeseries.csv"] {
            assert!(out.join(f).is_file(), "{phase}: {f} written");
        }
        let summary = std::fs::read_to_string(out.join("summary.json"))?;
        assert!(
            summary.contains("\"interrupted\":true") || summary.contains("\"interrupted\": true"),
            "{phase}: marked"
        );
    }
    Ok(())
}
