//! MQTT 3.1.1 over WebSocket against a real Mosquitto (Debian's `mosquitto` package),
//! started by the test on free 127.0.0.1 ports with a generated configuration and killed at
//! the end (also when a test fails: [`Broker`]'s `Drop`). A missing `mosquitto` binary
//! fails the tests: CI installs it (`.ci/run`); locally, `apt-get install mosquitto`.

use sealbench::driver::recorder::Metric;
use sealbench::driver::recorder::tags::TagSet;
use sealbench::driver::{self, RunOptions};
use sealbench::scenario::{Plan, Scenario};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long Mosquitto may take to open its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(10);

mod support;

/// A Mosquitto process of this test's own (its configuration and log in a temporary
/// directory; killed when dropped). Its address is the WebSocket listener; the plain MQTT
/// listener beside it is only there because 2.0.11 will not start with a WebSocket
/// listener alone.
struct Broker(support::Server);

impl Broker {
    /// Writes the configuration and starts Mosquitto; returns once its WebSocket listener
    /// accepts connections.
    fn start() -> Result<Broker, support::Error> {
        let bin = support::binary("mosquitto", "/usr/sbin", "a real broker")?;
        let dir = tempfile::tempdir()?;
        let (plain, ws) = (support::free_port()?, support::free_port()?);
        let config = dir.path().join("mosquitto.conf");
        // See docs/TARGETS.md: a plain listener beside the WebSocket one (2.0.11 refuses to
        // start without), `socket_domain ipv4` so that the WebSocket listener stays on
        // 127.0.0.1, and room for every message in flight.
        std::fs::write(
            &config,
            format!(
                "listener {plain} 127.0.0.1\n\
                 listener {ws} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n\
                 allow_anonymous true\npersistence false\nmax_queued_messages 1000000\n\
                 max_inflight_messages 0\nset_tcp_nodelay true\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )?;
        let args = ["-c".as_ref(), config.as_os_str()];
        Ok(Broker(support::Server::start(&bin, &args, dir, ws, START_TIMEOUT, &["mosquitto.log"])?))
    }

    fn log(&self) -> String {
        self.0.log()
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.0.addr)
    }
}

/// A scenario against `url` with the MQTT wire: pairs, `extra` appended.
fn scenario(url: &str, clients: usize, extra: &str) -> String {
    format!(
        "name = \"mqtt\"\nseed = 11\nduration = \"5s\"\nwarmup = \"1s\"\ncooldown = \"3s\"\n\
         [clients]\ncount = {clients}\nconnect_rate = 0\n\
         [relay]\nurl = \"{url}\"\nwire = \"mqtt\"\nack = true\n\
         [crypto]\npattern = \"XX\"\naead = \"chacha20-poly1305\"\n\
         [traffic]\nrate = 5\nsize = 256\n{extra}"
    )
}

#[test]
fn mosquitto_carries_xx_handshakes_and_delivers_every_message_once() -> TestResult {
    let broker = Broker::start()?;
    let plan = Plan::new(Scenario::parse(&scenario(&broker.url(), 200, ""), "mqtt.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = broker.log();
    assert_eq!((c.connects_ok, c.registers_failed, c.connects_failed), (200, 0, 0), "{c:?}\n{log}");
    // The log-in on MQTT is `login`, not sealbench's `register`.
    assert_eq!(outcome.total.get(Metric::Login).len(), 200, "{log}");
    assert!(outcome.total.get(Metric::Register).is_empty(), "{log}");
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (100, 0), "XX through the broker: {c:?}\n{log}");
    assert!(c.sent > 2_000, "about 100 conversations × 5 msgs/s × 6 s: {c:?}");
    assert_eq!(c.delivered, c.sent, "every message delivered: {c:?}\n{log}");
    assert_eq!(
        (c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.reordered),
        (0, 0, 0, 0, 0, 0),
        "once each, opened, in order: {c:?}"
    );
    assert!(!outcome.total.get(Metric::E2e).is_empty(), "e2e measured");
    assert!(!outcome.total.get(Metric::Handshake).is_empty(), "handshakes measured");
    assert!(!outcome.total.get(Metric::RelayAck).is_empty(), "PUBACKs timed as relay_ack");
    assert!(!outcome.total.get(Metric::Login).is_empty(), "the log-in (CONNECT … SUBACK) timed as login");
    Ok(())
}

/// Groups with relay fan-out: one PUBLISH per group message to the group's topic, which the
/// broker fans out to every member (and back to the sender, who drops it).
#[test]
fn mosquitto_fans_group_messages_out_on_group_topics() -> TestResult {
    let broker = Broker::start()?;
    let extra = "[conversations]\nkind = \"mix\"\ngroup_share = 0.5\nfanout = \"relay\"\ngroup_senders = 2\n\
                 group_sizes = [{ size = 5, weight = 1 }]\n";
    let plan = Plan::new(Scenario::parse(&scenario(&broker.url(), 40, extra), "mqtt.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = broker.log();
    assert_eq!((c.connects_ok, c.registers_failed, c.handshakes_failed), (40, 0, 0), "{c:?}\n{log}");
    assert!(c.sender_keys > 0, "sender keys handed out over the pairwise sessions: {c:?}");
    assert!(c.sent > 300, "{c:?}");
    assert_eq!(c.delivered, c.sent, "every copy delivered: {c:?}\n{log}");
    assert_eq!((c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready), (0, 0, 0, 0, 0), "{c:?}");
    assert!(!outcome.total.get(Metric::FanoutLast).is_empty(), "the broker fanned the groups out");
    Ok(())
}

/// Churn: devices leave (a WebSocket close) and come back (CONNECT to the session the broker
/// kept). What was sent to them meanwhile, queued by the broker at QoS 1, arrives first after
/// the reconnection and is counted `offline_e2e` from the driver's own count of what each
/// device is owed (the broker marks none of it); nothing is lost or delivered twice, and
/// what devices offline at the end are owed is `undelivered_offline`.
#[test]
fn mosquitto_queues_for_offline_devices_and_they_arrive_as_offline_e2e() -> TestResult {
    let broker = Broker::start()?;
    let extra = "[churn]\nshare = 0.5\nonline = \"1500ms\"\noffline = \"700ms\"\n";
    // 100 msgs/s per conversation: deliveries are in flight whenever a device leaves (at 5
    // msgs/s a delivery taken on the closing connection, then sent again, was rarely seen).
    let sets = ["traffic.rate=100".to_owned()];
    let plan = Plan::new(Scenario::parse(&scenario(&broker.url(), 100, extra), "mqtt.toml", &sets)?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = broker.log();
    assert_eq!((c.connects_ok, c.registers_failed, c.handshakes_failed), (100, 0, 0), "{c:?}\n{log}");
    assert!(c.reconnects > 20 && c.reconnect_failures == 0, "devices left and came back: {c:?}\n{log}");
    assert_eq!(
        c.delivered + c.refused_total() + c.undelivered_offline,
        c.sent,
        "sent = delivered + refused + undelivered_offline, nothing lost: {c:?}\n{log}"
    );
    assert_eq!((c.duplicated, c.auth_failed, c.malformed, c.not_ready), (0, 0, 0, 0), "{c:?}");
    let (online, offline) = (outcome.total.get(Metric::E2e), outcome.total.get(Metric::OfflineE2e));
    assert!(offline.len() > 50, "messages to offline devices arrived as offline_e2e: {}", offline.len());
    assert!(!outcome.total.get(Metric::MailboxDrain).is_empty(), "the queued messages' drain measured");
    // What waited for a device to come back took longer than what found it online: the
    // split is by what the device was owed, not a guess.
    assert!(
        offline.value_at_quantile(0.5) > online.value_at_quantile(0.5),
        "offline_e2e p50 {} ns, e2e p50 {} ns",
        offline.value_at_quantile(0.5),
        online.value_at_quantile(0.5)
    );
    Ok(())
}

/// The key directory on MQTT: each responder publishes its static key retained on `k/<id>`
/// at log-in; an IK or NK initiator fetches it by subscribing to that topic (the broker
/// hands over the retained message) before its first handshake message. Every handshake
/// completes with the key from the broker, and every message is delivered.
#[test]
fn mosquitto_keeps_static_keys_for_ik_and_nk_handshakes() -> TestResult {
    let broker = Broker::start()?;
    for pattern in ["IK", "NK"] {
        let sets = vec![format!("crypto.pattern={pattern}")];
        let plan = Plan::new(Scenario::parse(&scenario(&broker.url(), 60, ""), "mqtt.toml", &sets)?)?;
        let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
        let c = &outcome.counters;
        let log = broker.log();
        assert_eq!((c.connects_ok, c.registers_failed), (60, 0), "{pattern}: {c:?}\n{log}");
        assert_eq!((c.handshakes_ok, c.handshakes_failed), (30, 0), "{pattern} with fetched keys: {c:?}\n{log}");
        assert!(c.sent > 500, "{pattern}: {c:?}");
        assert_eq!(c.delivered, c.sent, "{pattern}: every message delivered: {c:?}\n{log}");
        assert_eq!((c.lost(), c.auth_failed, c.malformed, c.other_errors), (0, 0, 0, 0), "{pattern}: {c:?}");
    }
    Ok(())
}

/// A short form of `scenarios/messenger-mix-mqtt.toml`: 1:1 chats and groups fanned out as
/// topics, users with several devices, churn. Every copy is delivered (online or from the
/// broker's queue at reconnection) or held for a device offline at the end, and the figures
/// come per class.
#[test]
fn messenger_mix_runs_against_mosquitto_with_per_class_figures() -> TestResult {
    let broker = Broker::start()?;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/messenger-mix-mqtt.toml");
    let sets: Vec<String> = [
        format!("relay.url={}", broker.url()),
        "clients.count=150".to_owned(),
        "clients.connect_rate=0".to_owned(),
        "conversations.group_sizes=[{ size = 5, weight = 2 }, { size = 12, weight = 1 }]".to_owned(),
        "churn.share=0.3".to_owned(),
        "churn.online=1500ms".to_owned(),
        "churn.offline=700ms".to_owned(),
        "stages.0.duration=1s".to_owned(),
        "stages.1.duration=2s".to_owned(),
        "stages.1.rate=300".to_owned(),
        "stages.2.duration=2s".to_owned(),
        "stages.2.rate=300".to_owned(),
        "stages.3.duration=1s".to_owned(),
        "stages.4.duration=1s".to_owned(),
    ]
    .into();
    let plan = Plan::new(Scenario::parse(&std::fs::read_to_string(&file)?, "messenger-mix-mqtt.toml", &sets)?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = broker.log();
    assert_eq!((c.connects_ok, c.registers_failed, c.handshakes_failed), (150, 0, 0), "{c:?}\n{log}");
    assert!(c.reconnects > 10 && c.reconnect_failures == 0, "{c:?}\n{log}");
    assert!(c.sent > 1_000, "{c:?}");
    assert_eq!(c.delivered + c.undelivered_offline, c.sent, "nothing lost: {c:?}\n{log}");
    assert_eq!((c.duplicated, c.auth_failed, c.malformed, c.not_ready), (0, 0, 0, 0), "{c:?}");
    for tag in ["class=dm", "class=group"] {
        let tags = TagSet::parse(tag)?;
        let online = outcome.total.get_tagged(Metric::E2e, &tags).ok_or(tag)?;
        assert!(!online.is_empty(), "e2e{{{tag}}} measured");
    }
    assert!(!outcome.total.get(Metric::OfflineE2e).is_empty(), "offline deliveries measured");
    assert!(!outcome.total.get(Metric::FanoutLast).is_empty(), "the broker's topic fan-out measured");
    Ok(())
}

/// What a scenario needs that the MQTT wire lacks is refused by the plan (before anything
/// connects), naming the capability and the alternative; `sealbench run` exits 2.
#[test]
fn a_scenario_needing_what_mqtt_lacks_is_refused_before_connecting() -> TestResult {
    // Nothing listens here: a refusal that connected first would fail differently.
    let url = format!("ws://127.0.0.1:{}/", support::free_port()?);
    let refused = |set: &str, extra: &str| {
        let sets = vec![set.to_owned()];
        // Reading a scenario already checks it as a plan.
        Scenario::parse(&scenario(&url, 8, extra), "mqtt.toml", &sets).and_then(Plan::new).err()
    };
    let msg = format!("{:#}", refused("crypto.protocol=olm", "").ok_or("olm accepted on MQTT")?);
    assert!(
        msg.contains("relay.wire = \"mqtt\"")
            && msg.contains("consume-once one-time keys")
            && msg.contains("crypto.protocol = \"noise\""),
        "{msg}"
    );
    // What the broker now offers is not refused: a key directory (IK, NK), and churn (it
    // queues for offline devices; the driver counts what it queued).
    for (set, extra) in [("crypto.pattern=IK", ""), ("crypto.pattern=NK", ""), ("seed=2", "[churn]\nshare = 0.5\n")] {
        assert!(refused(set, extra).is_none(), "{set} {extra}: {:?}", refused(set, extra));
    }
    // The command itself: exit 2, with the reason on stderr.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("olm-on-mqtt.toml");
    std::fs::File::create(&file)?
        .write_all(scenario(&url, 4, "").replace("[crypto]\n", "[crypto]\nprotocol = \"olm\"\n").as_bytes())?;
    let out = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("r"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("consume-once one-time keys") && stderr.contains("mqtt"), "{stderr}");
    Ok(())
}
