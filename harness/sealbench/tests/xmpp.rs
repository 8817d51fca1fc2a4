//! XMPP over WebSocket (RFC 7395) against a real Prosody (Debian's `prosody` package, 0.12),
//! started by the test on a free 127.0.0.1 port with a generated configuration (its data,
//! pid file and log in a temporary directory) and killed at the end (also when a test
//! fails: [`Server`]'s `Drop`). A missing `prosody` binary fails the tests: CI installs it
//! (`.ci/run`); locally, `apt-get install prosody`. Prosody runs as whoever runs the test
//! (root works: with `daemonize = false` and no `posix` module it changes no user).

use sealbench::driver::recorder::Metric;
use sealbench::driver::{self, RunOptions};
use sealbench::scenario::{Plan, Scenario};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long Prosody may take to open its HTTP listener.
const START_TIMEOUT: Duration = Duration::from_secs(15);

mod support;

/// A Prosody process of this test's own; killed when dropped. Its address is its HTTP
/// listener (the WebSocket endpoint is `/xmpp-websocket` on it).
struct Server(support::Server);

/// The configuration (docs/TARGETS.md, "Prosody for a local try"): WebSocket on an HTTP
/// port of 127.0.0.1 only, no c2s/s2s ports, in-band registration without its rate limit,
/// offline storage, plain SASL over the (unencrypted, loopback) WebSocket.
fn config(dir: &std::path::Path, http: u16) -> String {
    let d = dir.display();
    format!(
        "daemonize = false\npidfile = \"{d}/prosody.pid\"\ndata_path = \"{d}/data\"\n\
         plugin_paths = {{}}\n\
         modules_enabled = {{ \"websocket\", \"offline\", \"register\", \"roster\", \"saslauth\", \"disco\" }}\n\
         modules_disabled = {{ \"s2s\", \"tls\", \"posix\" }}\n\
         c2s_ports = {{}}\ns2s_ports = {{}}\nhttps_ports = {{}}\n\
         http_ports = {{ {http} }}\nhttp_interfaces = {{ \"127.0.0.1\" }}\n\
         consider_websocket_secure = true\nauthentication = \"internal_plain\"\n\
         allow_registration = true\nmin_seconds_between_registrations = 0\n\
         c2s_require_encryption = false\nallow_unencrypted_plain_auth = true\n\
         log = {{ {{ levels = {{ min = \"warn\" }}, to = \"file\", filename = \"{d}/prosody.log\" }} }}\n\
         VirtualHost \"localhost\"\n"
    )
}

impl Server {
    /// Writes the configuration and starts Prosody; returns once its HTTP port accepts.
    fn start() -> Result<Server, support::Error> {
        let bin = support::binary("prosody", "/usr/bin", "a real XMPP server")?;
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("data"))?;
        let port = support::free_port()?;
        let file = dir.path().join("prosody.cfg.lua");
        std::fs::write(&file, config(dir.path(), port))?;
        let args = ["--config".as_ref(), file.as_os_str()];
        let logs = &["stdout.log", "prosody.log"];
        Ok(Server(support::Server::start(&bin, &args, dir, port, START_TIMEOUT, logs)?))
    }

    fn log(&self) -> String {
        self.0.log()
    }

    fn url(&self) -> String {
        format!("ws://{}/xmpp-websocket", self.0.addr)
    }
}

/// A scenario against `url` with the XMPP wire: pairs, `extra` appended.
fn scenario(url: &str, clients: usize, extra: &str) -> String {
    format!(
        "name = \"xmpp\"\nseed = 12\nduration = \"5s\"\nwarmup = \"1s\"\ncooldown = \"3s\"\n\
         [clients]\ncount = {clients}\nconnect_rate = 0\n\
         [relay]\nurl = \"{url}\"\nwire = \"xmpp\"\n\
         [crypto]\npattern = \"XX\"\naead = \"chacha20-poly1305\"\n\
         [traffic]\nrate = 5\nsize = 256\n{extra}"
    )
}

#[test]
fn prosody_carries_xx_handshakes_and_delivers_every_message_once() -> TestResult {
    let server = Server::start()?;
    let plan = Plan::new(Scenario::parse(&scenario(&server.url(), 200, ""), "xmpp.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = server.log();
    assert_eq!((c.connects_ok, c.registers_failed, c.connects_failed), (200, 0, 0), "{c:?}\n{log}");
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (100, 0), "XX through the server: {c:?}\n{log}");
    assert!(c.sent > 2_000, "about 100 conversations × 5 msgs/s × 6 s: {c:?}");
    assert_eq!(c.delivered, c.sent, "every message delivered: {c:?}\n{log}");
    assert_eq!(
        (c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.reordered, c.other_errors),
        (0, 0, 0, 0, 0, 0, 0),
        "once each, opened, in order: {c:?}"
    );
    assert!(!outcome.total.get(Metric::E2e).is_empty(), "e2e measured");
    assert!(!outcome.total.get(Metric::Handshake).is_empty(), "handshakes measured");
    assert!(!outcome.total.get(Metric::Login).is_empty(), "the log-in (open … bind) timed as login");
    assert!(outcome.total.get(Metric::Register).is_empty(), "not as sealbench's register");
    Ok(())
}

/// Devices that go offline and come back: what was sent to them meanwhile is stored by
/// `mod_offline`, delivered after their next `<presence/>` with a `<delay/>`, and counted
/// as `offline_e2e`; nothing is lost.
#[test]
fn messages_to_offline_devices_arrive_at_reconnection_as_offline_e2e() -> TestResult {
    let server = Server::start()?;
    let extra = "[churn]\nshare = 0.5\nonline = \"1500ms\"\noffline = \"800ms\"\n";
    let plan = Plan::new(Scenario::parse(&scenario(&server.url(), 20, extra), "xmpp.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    let log = server.log();
    assert!(c.reconnects >= 5, "churning devices came back: {c:?}\n{log}");
    assert_eq!((c.reconnect_failures, c.registers_failed), (0, 0), "{c:?}\n{log}");
    let offline = outcome.total.get(Metric::OfflineE2e);
    assert!(offline.len() > 10, "stored messages delivered at reconnection: {} ({c:?})", offline.len());
    assert!(offline.value_at_quantile(0.5) > 50_000_000, "they waited: p50 {} ns", offline.value_at_quantile(0.5));
    assert_eq!(c.lost(), 0, "what offline devices were owed is held, not lost: {c:?}\n{log}");
    assert_eq!(c.sent, c.delivered + c.refused_total() + c.undelivered_offline, "{c:?}");
    assert_eq!((c.duplicated, c.auth_failed, c.malformed, c.not_ready), (0, 0, 0, 0), "{c:?}");
    Ok(())
}

/// What a scenario needs that the XMPP wire lacks is refused by the plan (before anything
/// connects), naming the capability and the alternative; `sealbench run` exits 2.
#[test]
fn a_scenario_needing_what_xmpp_lacks_is_refused_before_connecting() -> TestResult {
    // Nothing listens here: a refusal that connected first would fail differently.
    let url = format!("ws://127.0.0.1:{}/xmpp-websocket", support::free_port()?);
    let groups = "[conversations]\nkind = \"mix\"\ngroup_share = 0.5\nfanout = \"relay\"\n\
                  group_sizes = [{ size = 5, weight = 1 }]\n";
    for (set, extra, needs, instead) in [
        (Some("crypto.protocol=olm"), "", "consume-once one-time keys", "crypto.protocol = \"noise\""),
        (Some("crypto.pattern=IK"), "", "a key directory", "crypto.pattern = \"XX\""),
        (Some("relay.ack=true"), "", "a server ack per send", "relay.ack = false"),
        (None, groups, "server-side group fan-out", "fanout = \"client\""),
    ] {
        let sets: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
        let refused = Scenario::parse(&scenario(&url, 40, extra), "xmpp.toml", &sets).and_then(Plan::new).err();
        let msg = format!("{:#}", refused.ok_or(format!("accepted: {set:?} {extra}"))?);
        assert!(msg.contains("relay.wire = \"xmpp\"") && msg.contains(needs) && msg.contains(instead), "{msg}");
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ack-on-xmpp.toml");
    std::fs::File::create(&file)?
        .write_all(scenario(&url, 4, "").replace("wire = \"xmpp\"\n", "wire = \"xmpp\"\nack = true\n").as_bytes())?;
    let out = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["run"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("r"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a server ack per send") && stderr.contains("xmpp"), "{stderr}");
    Ok(())
}
