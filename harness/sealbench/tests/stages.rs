//! A staged scenario end to end, in process, against the embedded relay: the per-second
//! sent rate follows the stages, and the summary carries per-stage figures.

use sealbench::driver::{self, RunOptions, Second};
use sealbench::provenance::Provenance;
use sealbench::results::summary::Summary;
use sealbench::scenario::{Plan, Scenario};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The stages below as (end, rate) steps, written out here rather than taken from the
/// plan, so that the check does not trust the code it checks.
const STEPS: [(f64, f64); 3] = [(2.0, 400.0), (4.0, 1200.0), (6.0, 400.0)];

/// Messages the stages ask for from the steady start to `t` seconds after it.
fn due_by(t: f64) -> f64 {
    let (mut from, mut n) = (0.0, 0.0);
    for (end, rate) in STEPS {
        n += rate * (t.min(end) - from).max(0.0);
        from = end;
    }
    n
}

/// 2 s at 400 msgs/s, a step to 1,200 for 2 s, a step back to 400 for 2 s.
const STAGED: &str = "name = \"staged\"\nseed = 3\ncooldown = \"1s\"\n\
    [clients]\ncount = 40\n[traffic]\narrival = \"constant\"\nsize = 128\n\
    [[stages]]\nname = \"low\"\nduration = \"2s\"\nrate = 400\n\
    [[stages]]\nname = \"peak\"\nduration = \"2s\"\nfrom = 1200\nrate = 1200\n\
    [[stages]]\nname = \"after\"\nduration = \"2s\"\nfrom = 400\nrate = 400\n";

#[test]
fn the_per_second_sent_rate_follows_the_stages() -> TestResult {
    let plan = Plan::new(Scenario::parse(STAGED, "staged.toml", &[])?)?;
    // One shard: one reporting clock, so each merged second is one exact interval.
    let options = RunOptions { shards: Some(1), ..RunOptions::default() };
    let outcome = driver::run(&plan, &options, |_, _| {})?;
    let t0 = outcome.steady_start_s.ok_or("the steady phase started")?;
    let total = STEPS[2].0;

    // The check: a merged second covers (previous end, its end]; the messages the stages
    // ask for in it are exactly Λ(end) − Λ(previous end), the integral of the rate (that holds
    // across stage boundaries and ramps alike, so no second needs skipping for being
    // mixed). Sends are counted when they happen, so this is what the generator actually
    // did, within the 5 % the issue asks. Left out: the first second (no previous end to
    // measure from) and seconds expecting fewer than 200 messages — the slivers at the
    // start and end of sending, where a count of a few dozen cannot meet 5 % however
    // exact the generator (a constant schedule's random phases alone move it by a few).
    let mut checked = 0;
    let mut prev: Option<&Second> = None;
    for s in &outcome.seconds {
        let Some(p) = prev.replace(s) else { continue };
        let (a, b) = (p.at_s - t0, s.at_s - t0);
        let want = due_by(b) - due_by(a);
        if want < 200.0 || b <= 0.0 || a >= total {
            continue;
        }
        let sent = s.delta.sent as f64;
        assert!(
            (sent - want).abs() <= 0.05 * want,
            "second ending {b:.2} s after the start (stage {:?}): sent {sent}, the stages ask for {want:.0}",
            s.stage
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} seconds were checked");

    let c = &outcome.counters;
    assert_eq!(c.lost(), 0, "everything sent was delivered");
    let expected_total = due_by(total);
    assert!((c.sent as f64 - expected_total).abs() <= 0.01 * expected_total, "sent {} of {expected_total}", c.sent);

    let summary = Summary::build(&plan, &outcome, Provenance::collect());
    let names: Vec<&str> = summary.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["low", "peak", "after"]);
    let peak = &summary.stages[1];
    assert_eq!((peak.start_s, peak.end_s, peak.target_end_per_s), (2.0, 4.0, 1200.0));
    // Each stage's e2e histogram is its seconds' histograms added: together, the run's.
    let e2e: u64 = summary.stages.iter().filter_map(|s| s.e2e.as_ref()).map(|l| l.count).sum();
    let staged_seconds: u64 = outcome
        .seconds
        .iter()
        .filter(|s| s.stage.is_some())
        .map(|s| s.hist.get(driver::recorder::Metric::E2e).len())
        .sum();
    assert_eq!(e2e, staged_seconds);
    let json = serde_json::to_string(&summary)?;
    assert!(json.contains("\"stages\":[{\"name\":\"low\""), "{}", &json[..200.min(json.len())]);
    Ok(())
}

/// A ramp of known targets with steps between the stages, Poisson arrivals: 3 s at 600
/// msgs/s, a ramp from 1,500 to 3,000 over 2 s, 3 s at 900.
const RAMP: &str = "name = \"ramp\"\nseed = 11\ncooldown = \"1s\"\n\
    [clients]\ncount = 100\n[traffic]\narrival = \"poisson\"\nsize = 128\n\
    [[stages]]\nname = \"low\"\nduration = \"3s\"\nrate = 600\n\
    [[stages]]\nname = \"ramp\"\nduration = \"2s\"\nfrom = 1500\nrate = 3000\n\
    [[stages]]\nname = \"after\"\nduration = \"3s\"\nfrom = 900\nrate = 900\n";

/// Each stage's achieved rate — sent and delivered, as `summary.json` reports them — is
/// within Poisson noise of its target's mean: four standard deviations of a Poisson
/// count over the stage (√(rate·T)/T) plus 1 % for the timer's lateness. Stage windows
/// that were off (the shards' seconds not anchored at the steady start) took up to half a
/// second of the neighbouring stage's rate across each step.
#[test]
fn a_ramps_stage_rates_are_within_poisson_noise_of_their_targets() -> TestResult {
    let plan = Plan::new(Scenario::parse(RAMP, "ramp.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    assert_eq!(outcome.counters.lost(), 0, "everything sent was delivered");
    let summary = Summary::build(&plan, &outcome, Provenance::collect());
    // (name, seconds, mean target), written out here rather than taken from the plan.
    let want = [("low", 3.0, 600.0), ("ramp", 2.0, 2250.0), ("after", 3.0, 900.0)];
    assert_eq!(summary.stages.len(), want.len());
    for (stage, (name, secs, rate)) in summary.stages.iter().zip(want) {
        assert_eq!(stage.name, name);
        assert!((stage.seconds - secs).abs() < 0.1, "stage {name} covered {:.3} s, not {secs} s", stage.seconds);
        let noise = 4.0 * (rate * secs).sqrt() / secs + 0.01 * rate;
        for (what, got) in [("sent", stage.messages_per_s), ("delivered", stage.delivered_per_s)] {
            assert!(
                (got - rate).abs() <= noise,
                "stage {name}: {what} {got:.0} msgs/s, target {rate} ± {noise:.0} (Poisson, 4σ + 1 %)"
            );
        }
    }
    Ok(())
}
