//! A relay on a non-loopback address: the test makes a network namespace joined to this
//! one by a veth pair (10.199.N.1 here, 10.199.N.2 there), runs `sealbench relay` inside
//! it, and a driver here connects to `ws://10.199.N.2:PORT/` from 10.199.N.1. Traffic stays
//! inside the namespaces the test makes. Skipped, with a message, where namespaces cannot
//! be made (not root, no `ip`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The namespace and the veth pair; removed when dropped (also on a failed assertion).
struct Net {
    ns: String,
    host_if: String,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Kills the relay when the test ends.
struct Relay(Child);
impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A namespace with 10.199.n.2 inside, 10.199.n.1 here.
fn make_net(n: u32) -> Result<Net, String> {
    let (ns, host_if, ns_if) = (format!("sbtest{n}"), format!("sbh{n}"), format!("sbn{n}"));
    ip(&["netns", "add", &ns])?;
    let net = Net { ns: ns.clone(), host_if: host_if.clone() };
    ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if])?;
    ip(&["link", "set", &ns_if, "netns", &ns])?;
    ip(&["addr", "add", &format!("10.199.{n}.1/30"), "dev", &host_if])?;
    ip(&["link", "set", &host_if, "up"])?;
    ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("10.199.{n}.2/30"), "dev", &ns_if])?;
    ip(&["netns", "exec", &ns, "ip", "link", "set", &ns_if, "up"])?;
    ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
    Ok(net)
}

#[test]
fn a_run_reaches_a_relay_on_a_non_loopback_address_in_another_namespace() -> TestResult {
    let n = std::process::id() % 200 + 20;
    let net = match make_net(n) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("SKIPPED: cannot make a network namespace here ({e})");
            return Ok(());
        }
    };
    let relay_addr = format!("10.199.{n}.2:9400");
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns, env!("CARGO_BIN_EXE_sealbench"), "relay", "--listen", &relay_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _relay = Relay(child);
    let up = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&relay_addr.parse()?, Duration::from_millis(200)).is_err() {
        if Instant::now() > up {
            return Err(format!("the relay in {} did not come up on {relay_addr}", net.ns).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        "name = \"netns\"\nduration = \"2s\"\ncooldown = \"1s\"\nthresholds = [\"messages.lost == 0\"]\n\
         [clients]\ncount = 20\n[traffic]\nrate = 20\nsize = 64\n",
    )?;
    let out = Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .arg("run")
        .arg(&scenario)
        .args(["--relay", &format!("ws://{relay_addr}/")])
        .args(["--set", &format!("clients.source_addresses=[\"10.199.{n}.1\"]")])
        .args(["--no-plots", "--out"])
        .arg(dir.path().join("r"))
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/summary.json"))?)?;
    assert_eq!(summary["clients"]["connected"], 20);
    assert!(summary["messages"]["delivered"].as_u64().unwrap_or(0) > 50, "{}", summary["messages"]);
    assert_eq!(summary["relay"], format!("ws://{relay_addr}/"));
    Ok(())
}
