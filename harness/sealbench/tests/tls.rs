//! `wss://` end to end: a standalone relay serving TLS with a certificate made here with
//! rcgen (trusted with `--ca`, refused with a clear error without it, accepted unchecked
//! and labelled with `--insecure`), the embedded relay's own TLS, and the connect split
//! (`tcp` + `tls` + `upgrade` = `connect`). Loopback only.

use sealbench::driver::recorder::Metric;
use sealbench::driver::{self, RunOptions};
use sealbench::relay::{self, Relay, RelayConfig};
use sealbench::results::summary::{Latency, Summary};
use sealbench::scenario::{Plan, Scenario};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const TINY: &str = "name = \"tls\"\nseed = 3\nduration = \"1s\"\nwarmup = \"300ms\"\ncooldown = \"500ms\"\n\
                    [clients]\ncount = 20\nconnect_rate = 0\n[traffic]\nrate = 20\nsize = 128\n";

/// A standalone relay serving `wss://` on 127.0.0.1 from PEM files, on its own runtime.
struct TlsRelay {
    addr: SocketAddr,
    metrics: Arc<relay::metrics::RelayMetrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsRelay {
    fn start(cert: &Path, key: &Path) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let tls = relay::tls::from_pem_files(cert, key)?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = {
            let _g = rt.enter();
            relay::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?
        };
        let addr = listener.local_addr()?;
        let relay = Relay::new(RelayConfig { tls: Some(tls), ..RelayConfig::default() });
        let metrics = relay.metrics();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(relay.serve(listener, async move {
                let _ = rx.await;
            }))
        });
        Ok(TlsRelay { addr, metrics, stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sealbench(args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_sealbench")).args(args).output()
}

fn summary(dir: &Path) -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?)
}

#[test]
fn a_self_signed_relay_is_trusted_with_ca_refused_without_and_accepted_unchecked_with_insecure() -> TestResult {
    let dir = tempfile::tempdir()?;
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let (cert, key, scenario) = (dir.path().join("relay.pem"), dir.path().join("relay.key"), dir.path().join("t.toml"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    std::fs::write(&scenario, TINY)?;
    let relay = TlsRelay::start(&cert, &key)?;
    let url = format!("wss://{}/", relay.addr);
    let run_at = |url: &str, name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["run", scenario.to_str().unwrap_or_default(), "--relay", url, "--no-plots"];
        args.extend(["--out", out.to_str().unwrap_or_default()]);
        args.extend_from_slice(extra);
        sealbench(&args).map(|o| (o, out))
    };
    let run = |name: &str, extra: &[&str]| run_at(&url, name, extra);

    // The relay's certificate as the CA: trusted, every message delivered.
    let (o, out) = run("with-ca", &["--ca", cert.to_str().ok_or("path")?])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out)?;
    assert!(s.transport.tls && !s.transport.insecure, "{:?}", s.transport);
    assert_eq!(s.transport.trust, "ca");
    assert!(s.transport.library.as_deref().is_some_and(|l| l.starts_with("rustls 0.")), "{:?}", s.transport);
    assert_eq!((s.clients.connected, s.messages.lost), (20, 0));
    assert_eq!(s.latency["tls"].count, 20, "one TLS handshake per client");

    // Without it the built-in roots do not know this issuer: exit 1, and the message says
    // what was refused and what to do.
    let (o, _) = run("without-ca", &[])?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate was refused") && err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains("--ca FILE") && err.contains("--insecure"), "{err}");
    assert!(relay.metrics.tls_failed_count() > 0, "the relay counts refused handshakes");

    // --insecure: accepted unchecked, loudly.
    let (o, out) = run("insecure", &["--insecure"])?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("WARNING: insecure"), "{err}");
    let s = summary(&out)?;
    assert!(s.transport.tls && s.transport.insecure && s.transport.trust == "anything", "{:?}", s.transport);
    assert_eq!(s.messages.lost, 0);

    // A ws:// client at a wss:// relay is refused at the upgrade, and the relay survives it.
    let (o, _) = run_at(&format!("ws://{}/", relay.addr), "plain", &[])?;
    assert_eq!(o.status.code(), Some(1));
    let (o, _) = run("after", &["--ca", cert.to_str().ok_or("path")?])?;
    assert!(o.status.success(), "the relay still serves: {}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

fn mean_sum(s: &[Option<&Latency>]) -> f64 {
    s.iter().flatten().map(|l| l.mean_us).sum()
}

#[test]
fn the_embedded_relay_serves_wss_and_connect_splits_into_tcp_tls_and_upgrade() -> TestResult {
    for tls in [true, false] {
        let mut scenario = Scenario::parse(TINY, "tls.toml", &[])?;
        scenario.relay.tls = tls;
        let plan = Plan::new(scenario)?;
        let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
        assert_eq!(outcome.relay_url.contains("wss://"), tls, "{}", outcome.relay_url);
        assert_eq!((outcome.counters.connects_ok, outcome.counters.lost()), (20, 0));
        let s = Summary::build(&plan, &outcome, sealbench::provenance::Provenance::collect());
        assert_eq!(s.transport.trust, if tls { "generated" } else { "none" });
        assert!(!s.transport.insecure);
        let l = |m: Metric| s.latency.get(m.name());
        let connect = l(Metric::Connect).ok_or("connect recorded")?;
        for part in [Metric::Tcp, Metric::Upgrade] {
            assert_eq!(l(part).map(|x| x.count), Some(connect.count), "{}", part.name());
        }
        assert_eq!(l(Metric::Tls).map(|x| x.count), tls.then_some(connect.count), "tls only for wss");
        // Each client's parts add up to its connect time; the histograms' means agree to
        // their resolution (3 significant digits).
        let parts = mean_sum(&[l(Metric::Tcp), l(Metric::Tls), l(Metric::Upgrade)]);
        assert!((parts - connect.mean_us).abs() <= 0.01 * connect.mean_us + 1.0, "{parts} vs {}", connect.mean_us);
    }
    Ok(())
}

#[test]
fn matrix_measures_ws_and_wss_side_by_side_and_compare_matches_cells_by_transport() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (scenario, out) = (dir.path().join("t.toml"), dir.path().join("m"));
    std::fs::write(&scenario, TINY)?;
    let o = sealbench(&[
        "matrix",
        scenario.to_str().ok_or("p")?,
        "--transport",
        "ws,wss",
        "--no-baseline",
        "--repeat",
        "1",
        "--out",
        out.to_str().ok_or("p")?,
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: sealbench::results::matrix::Matrix =
        serde_json::from_str(&std::fs::read_to_string(out.join("matrix.json"))?)?;
    let cells: Vec<(&str, &str)> = m.cells.iter().map(|c| (c.aead.as_str(), c.transport.as_str())).collect();
    assert_eq!(
        cells,
        [("chacha20-poly1305", "ws"), ("chacha20-poly1305", "wss")],
        "the scenario's AEAD, each transport"
    );
    assert!(m.cells[0].tls_p99_us.is_none() && m.cells[1].tls_p99_us.is_some());
    assert!(m.cells.iter().all(|c| c.connect_p99_us.is_some() && c.lost == 0));
    assert!(std::fs::read_to_string(out.join("matrix.md"))?.contains("/ wss"));
    let same = sealbench(&["compare", out.to_str().ok_or("p")?, out.to_str().ok_or("p")?])?;
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("matrix.e2e_p99_us[chacha20-poly1305/XX/noise/wss]"), "{text}");
    assert!(text.contains("matrix.e2e_p99_us[chacha20-poly1305/XX/noise]"), "{text}");
    Ok(())
}

#[test]
fn a_self_signed_certificate_marked_as_a_ca_is_trusted_exactly_with_ca() -> TestResult {
    // What `openssl req -x509` makes: self-signed, with basicConstraints CA:TRUE. As the
    // relay's own certificate webpki refuses it (CaUsedAsEndEntity); given as --ca it is
    // trusted as exactly that certificate.
    let dir = tempfile::tempdir()?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let made = params.self_signed(&key)?;
    let (cert, keyf, scenario) =
        (dir.path().join("relay.pem"), dir.path().join("relay.key"), dir.path().join("t.toml"));
    std::fs::write(&cert, made.pem())?;
    std::fs::write(&keyf, key.serialize_pem())?;
    std::fs::write(&scenario, TINY)?;
    let relay = TlsRelay::start(&cert, &keyf)?;
    let out = dir.path().join("out");
    let url = format!("wss://{}/", relay.addr);
    let o = sealbench(&[
        "run",
        scenario.to_str().ok_or("path")?,
        "--relay",
        &url,
        "--ca",
        cert.to_str().ok_or("path")?,
        "--no-plots",
        "--out",
        out.to_str().ok_or("path")?,
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&out)?.messages.lost, 0);
    Ok(())
}
