//! `crypto.protocol = "plaintext"` end to end, in process, against the embedded relay on
//! loopback: no handshake, no keys, every message delivered once, and the run says it was
//! UNENCRYPTED wherever it shows its suite. Small and bounded: 40 clients for 2 seconds.

use sealbench::driver::recorder::Metric;
use sealbench::driver::{self, RunOptions};
use sealbench::provenance::Provenance;
use sealbench::results::summary::Summary;
use sealbench::scenario::{Plan, Scenario};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const MIX: &str = "name = \"plain\"\nseed = 5\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
    [clients]\ncount = 40\n\
    [conversations]\nkind = \"mix\"\ngroup_share = 0.5\nfanout = \"relay\"\ngroup_senders = 2\n\
    group_sizes = [{ size = 5, weight = 1 }]\n\
    [crypto]\nprotocol = \"plaintext\"\n\
    [traffic]\nrate = 40\nsize = 128\n";

#[test]
fn plaintext_pairs_and_relay_groups_deliver_every_message_without_a_handshake() -> TestResult {
    let plan = Plan::new(Scenario::parse(MIX, "plain.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    assert_eq!((c.handshakes_ok, c.handshakes_failed, c.sender_keys), (0, 0, 0), "nothing to set up: {c:?}");
    assert!(c.messages > 100, "{c:?}");
    assert_eq!(c.delivered, c.sent, "every copy delivered: {c:?}");
    assert_eq!((c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.too_old), (0, 0, 0, 0, 0, 0));
    assert!(outcome.total.get(Metric::Handshake).is_empty(), "no handshake recorded");
    assert!(!outcome.total.get(Metric::E2e).is_empty());
    assert!(!outcome.total.get(Metric::FanoutLast).is_empty(), "the relay fanned the groups out");
    let summary = Summary::build(&plan, &outcome, Provenance::collect());
    assert!(summary.suite.contains("UNENCRYPTED"), "{}", summary.suite);
    assert!(plan.unencrypted().is_some());
    Ok(())
}
