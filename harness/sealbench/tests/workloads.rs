//! Messenger workloads end to end, in process, against the embedded relay on loopback:
//! groups with relay and client fan-out, several devices per user, churn with offline
//! delivery. Small and bounded: a few dozen clients for a few seconds each.

use sealbench::driver::recorder::Metric;
use sealbench::driver::recorder::tags::TagSet;
use sealbench::driver::{self, RunOptions};
use sealbench::scenario::{Plan, Scenario};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn run(text: &str) -> Result<(Plan, driver::Outcome), Box<dyn std::error::Error + Send + Sync>> {
    let plan = Plan::new(Scenario::parse(text, "test.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    Ok((plan, outcome))
}

fn groups(fanout: &str) -> String {
    format!(
        "name = \"g\"\nseed = 5\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
         [clients]\ncount = 40\n\
         [conversations]\nkind = \"groups\"\nfanout = \"{fanout}\"\ngroup_senders = 3\n\
         group_sizes = [{{ size = 10, weight = 1 }}]\n\
         [traffic]\nrate = 50\narrival = \"poisson\"\nsize = 100\n"
    )
}

/// Every member device receives every group message exactly once, and the first- and
/// last-recipient figures bracket the per-recipient latencies.
fn every_member_gets_every_message_once(fanout: &str) -> TestResult {
    let (plan, o) = run(&groups(fanout))?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 4, "40 users in groups of 10");
    assert_eq!(c.handshakes_failed, 0);
    assert!(c.messages > 300, "4 groups × 50 msgs/s × 2.5 s: {}", c.messages);
    assert_eq!(c.sent, c.messages * 9, "a message to a group of 10 is 9 deliveries");
    assert_eq!(c.delivered, c.sent, "every copy delivered: {c:?}");
    assert_eq!((c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready), (0, 0, 0, 0, 0));
    assert_eq!(c.fanout_incomplete, 0);
    let (e2e, first, last) =
        (o.total.get(Metric::E2e), o.total.get(Metric::FanoutFirst), o.total.get(Metric::FanoutLast));
    assert_eq!(e2e.len(), first.len() * 9, "one e2e per recipient, one first per message");
    assert_eq!(first.len(), last.len(), "every fan-out completed");
    assert!(first.len() >= c.sent_measured / 9 - 1, "measured messages all tracked");
    // first ≤ each recipient's e2e ≤ last, message by message: so over the run too.
    assert!(e2e.equivalent(first.min(), e2e.min()), "{} vs {}", first.min(), e2e.min());
    assert!(e2e.equivalent(last.max(), e2e.max()), "{} vs {}", last.max(), e2e.max());
    for q in [0.5, 0.9, 0.99] {
        let (f, e, l) = (first.value_at_quantile(q), e2e.value_at_quantile(q), last.value_at_quantile(q));
        assert!(f <= e && e <= l, "q{q}: first {f} ≤ e2e {e} ≤ last {l}");
    }
    assert!(!o.total.get(Metric::FanoutSeal).is_empty(), "the sender's fan-out cost is measured");
    // Recorded under its classes too: the group, and its size.
    for tag in ["class=group", "class=group,size=10"] {
        let tagged = o.total.get_tagged(Metric::E2e, &TagSet::parse(tag)?).ok_or(tag)?;
        assert_eq!(tagged.len(), e2e.len(), "{tag}");
    }
    assert!(o.total.get_tagged(Metric::E2e, &TagSet::parse("class=dm")?).is_none(), "no 1:1 traffic here");
    Ok(())
}

#[test]
fn a_relay_fanout_group_delivers_every_message_to_every_member_once() -> TestResult {
    let (_, o) = run(&groups("relay"))?;
    // 3 senders × 9 other members per group, 4 groups: each key handed out over a session.
    assert_eq!(o.counters.sender_keys, 4 * 3 * 9);
    every_member_gets_every_message_once("relay")
}

#[test]
fn a_client_fanout_group_delivers_every_message_to_every_member_once() -> TestResult {
    every_member_gets_every_message_once("client")
}

#[test]
fn a_message_to_a_user_reaches_each_of_its_devices_and_the_senders_other_devices() -> TestResult {
    let text = "name = \"d\"\nseed = 2\nduration = \"2s\"\ncooldown = \"1s\"\n\
                [clients]\ncount = 16\ndevices = [{ devices = 2, weight = 1 }]\n\
                [traffic]\nrate = 40\nsize = 64\n";
    let (plan, o) = run(text)?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 4, "8 users of 2 devices, paired");
    // Each 1:1 conversation of 2 × 2 devices has a session per pair of devices: 6.
    assert_eq!(c.handshakes_ok, 4 * 6);
    assert_eq!(c.sent, c.messages * 3, "the peer's two devices and the sender's other one");
    assert_eq!((c.delivered, c.lost()), (c.sent, 0));
    assert_eq!(o.total.get(Metric::FanoutLast).len(), o.total.get(Metric::FanoutFirst).len());
    Ok(())
}

#[test]
fn messages_to_an_offline_device_arrive_after_it_reconnects_as_offline_e2e() -> TestResult {
    let text = "name = \"c\"\nseed = 9\nduration = \"5s\"\ncooldown = \"2s\"\n\
                [clients]\ncount = 20\n\
                [traffic]\nrate = 40\nsize = 64\n\
                [churn]\nshare = 0.5\nonline = \"800ms\"\noffline = \"600ms\"\n";
    let (_, o) = run(text)?;
    let c = &o.counters;
    assert!(c.reconnects >= 5, "churning devices came back: {c:?}");
    assert_eq!(c.reconnect_failures, 0);
    let offline = o.total.get(Metric::OfflineE2e);
    assert!(offline.len() > 20, "stored messages delivered at reconnect: {}", offline.len());
    // A stored message waited for the reconnection: at least a good part of an offline period.
    assert!(offline.value_at_quantile(0.5) > 50_000_000, "offline p50 {} ns", offline.value_at_quantile(0.5));
    assert!(!o.total.get(Metric::MailboxDrain).is_empty(), "mailbox drains are timed");
    assert_eq!(c.disconnects, 0, "leaving on purpose is not a disconnect");
    assert_eq!(c.lost(), 0, "what offline devices were owed is held, not lost: {c:?}");
    assert_eq!(c.sent, c.delivered + c.refused_total() + c.undelivered_offline);
    assert_eq!((c.duplicated, c.auth_failed, c.not_ready, c.bad_timestamp), (0, 0, 0, 0));
    Ok(())
}

#[test]
fn connected_clients_follow_the_stage_targets_and_nothing_is_lost() -> TestResult {
    // 40 clients: down to 10 over the first stage, held, then back up to all 40.
    let text = "name = \"p\"\nseed = 4\ncooldown = \"2s\"\n\
                [clients]\ncount = 40\n\
                [traffic]\nsize = 64\n\
                [[stages]]\nduration = \"2s\"\nrate = 200\nclients = 10\n\
                [[stages]]\nduration = \"2s\"\n\
                [[stages]]\nduration = \"2s\"\nclients = 40\n";
    let plan = Plan::new(Scenario::parse(text, "test.toml", &[])?)?;
    let o = driver::run(&plan, &RunOptions { shards: Some(1), ..RunOptions::default() }, |_, _| {})?;
    let t0 = o.steady_start_s.ok_or("the steady phase started")?;
    // The held stage (2–4 s after the start): 10 of 40 connected, within the 100 ms the
    // target is followed at.
    let held: Vec<usize> =
        o.seconds.iter().filter(|s| (2.5..=4.0).contains(&(s.at_s - t0))).map(|s| s.connected).collect();
    assert!(!held.is_empty() && held.iter().all(|&n| (9..=12).contains(&n)), "connected while held: {held:?}");
    let c = &o.counters;
    assert!(c.reconnects >= 25, "the held devices came back for the last stage: {c:?}");
    assert!(!o.total.get(Metric::OfflineE2e).is_empty(), "messages to held devices arrive when they return");
    assert_eq!(c.lost(), 0, "{c:?}");
    assert_eq!(c.sent, c.delivered + c.undelivered_offline);
    Ok(())
}

#[test]
fn thresholds_on_group_classes_pass_fail_and_refuse_as_they_should() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("g.toml");
    let base = groups("client").replace("duration = \"2s\"", "duration = \"1s\"");
    let run = |thresholds: &str| -> Result<std::process::Output, std::io::Error> {
        std::fs::write(&path, format!("thresholds = [{thresholds}]\n{base}"))?;
        std::process::Command::new(env!("CARGO_BIN_EXE_sealbench"))
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("r"))
            .arg("--no-plots")
            .output()
    };
    let ok = run("\"fanout_last{size=10}.p99 < 10s\", \"e2e{class=group}.p50 < 10s\"")?;
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let fail = run("\"fanout_last{size=10}.p99 < 10s\", \"e2e{class=group}.p50 < 1ns\"")?;
    assert_eq!(fail.status.code(), Some(99), "{}", String::from_utf8_lossy(&fail.stderr));
    let typo = run("\"fanout_last{size=11}.p99 < 10s\"")?;
    assert_eq!(typo.status.code(), Some(2), "a class the run does not record is a usage error, not a pass");
    assert!(String::from_utf8_lossy(&typo.stderr).contains("size=10"), "the error lists the run's classes");
    Ok(())
}
