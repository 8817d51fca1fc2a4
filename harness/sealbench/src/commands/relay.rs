//! `sealbench relay`: the reference relay as its own process.

use crate::cli::RelayArgs;
use crate::error::{Failure, Outcome};
use crate::relay::{self, Relay, RelayConfig};
use anyhow::{Context, anyhow};
use std::process::ExitCode;
use std::time::Duration;

/// Turns the command line into a relay configuration.
///
/// # Errors
/// A usage error naming the flag when a value is out of range.
pub fn config_from(args: &RelayArgs) -> Result<RelayConfig, Failure> {
    let positive = |d: Duration, flag: &str| {
        if d.is_zero() { Err(Failure::usage(anyhow!("{flag} must be more than zero, e.g. 10s"))) } else { Ok(d) }
    };
    if args.max_message < 64 {
        return Err(Failure::usage(anyhow!("--max-message must be at least 64 bytes")));
    }
    let delay = match (args.delay, args.delay_ms) {
        (Some(d), _) => d,
        (None, Some(ms)) if ms.is_finite() && ms >= 0.0 => {
            eprintln!("warning: --delay-ms {ms} is deprecated: write --delay {ms}ms");
            Duration::from_secs_f64(ms / 1e3)
        }
        (None, Some(ms)) => return Err(Failure::usage(anyhow!("--delay-ms {ms}: zero or more (better: --delay 2ms)"))),
        (None, None) => Duration::ZERO,
    };
    let limit = relay::config::fd_max_connections();
    let max_connections = match args.max_connections {
        Some(n) if n > limit => {
            return Err(Failure::usage(anyhow!(
                "--max-connections {n} is above what this process can open ({limit}: the open-file limit {} minus {} reserved)",
                relay::config::open_file_limit(),
                relay::config::FD_RESERVE
            )));
        }
        Some(n) => n,
        None => relay::config::default_max_connections(),
    };
    let list = match (&args.scan, args.scan_words) {
        (Some(file), _) => Some(relay::scan::WordList::read(file).map_err(|e| Failure::usage(anyhow!("--scan {e}")))?),
        (None, Some(n)) => {
            Some(relay::scan::WordList::generated(n, "--scan-words").map_err(|e| Failure::usage(anyhow!("{e}")))?)
        }
        (None, None) if args.scan_action == relay::scan::ScanAction::Block => {
            return Err(Failure::usage(anyhow!("--scan-action block needs a list: --scan FILE or --scan-words N")));
        }
        (None, None) => None,
    };
    let scan = match list {
        Some(l) => Some(std::sync::Arc::new(
            relay::scan::Scanner::new(&l, args.scan_action).map_err(|e| Failure::usage(anyhow!("{e}")))?,
        )),
        None => None,
    };
    let adversary = match &args.adversary {
        Some(s) => Some(relay::adversary::Adversary::parse(s).map_err(|e| Failure::usage(anyhow!("{e}")))?),
        None => None,
    };
    Ok(RelayConfig {
        max_message: args.max_message,
        mailbox_limit: args.mailbox_limit,
        mailbox_bytes: args.mailbox_bytes,
        mailbox_total_bytes: args.mailbox_total_bytes,
        max_mailboxes: args.max_mailboxes,
        max_known_clients: args.max_known_clients,
        queue_messages: args.queue_messages.max(1),
        queue_bytes: args.queue_bytes.max(args.max_message),
        max_connections,
        handshake_timeout: positive(args.handshake_timeout, "--handshake-timeout")?,
        idle_timeout: positive(args.idle_timeout, "--idle-timeout")?,
        max_groups_per_client: args.max_groups,
        max_group_members: args.max_group_members,
        max_keys: RelayConfig::default().max_keys,
        key_pools: relay::keypool::PoolLimits {
            total_bytes: args.key_pool_bytes,
            client_bytes: args.key_client_bytes,
            ..RelayConfig::default().key_pools
        },
        key_claims: claim_limits(args)?,
        auth_secret: args.auth_secret.as_ref().map(|s| s.as_bytes().to_vec()),
        read_buffer: args.read_buffer.max(256),
        write_buffer: RelayConfig::default().write_buffer,
        delay,
        adversary,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(relay::tls::from_pem_files(cert, key).map_err(Failure::usage)?),
            (None, None) => None,
            _ => return Err(Failure::usage(anyhow!("--tls-cert and --tls-key go together (a PEM chain and its key)"))),
        },
        scan,
    })
}

/// The claim limits of the flags (a rate that is not a positive number is refused).
fn claim_limits(args: &RelayArgs) -> Result<relay::keypool::ClaimLimits, Failure> {
    if !(args.claim_rate.is_finite() && args.claim_rate > 0.0) {
        return Err(Failure::usage(anyhow!("--claim-rate {}: give claims a second, more than 0", args.claim_rate)));
    }
    if args.claim_burst == 0 || args.claims_per_peer == 0 || args.claim_window.is_zero() {
        return Err(Failure::usage(anyhow!(
            "--claim-burst, --claims-per-peer and --claim-window must be more than 0 (a relay that refuses every claim serves no Olm or MLS client)"
        )));
    }
    Ok(relay::keypool::ClaimLimits {
        rate: args.claim_rate,
        burst: args.claim_burst,
        per_peer: args.claims_per_peer,
        peer_window: args.claim_window,
    })
}

/// Runs `sealbench relay` until SIGINT or SIGTERM.
///
/// # Errors
/// When the address cannot be bound (exit 1, naming the address).
pub fn run(args: &RelayArgs) -> Outcome {
    let config = config_from(args)?;
    if args.thread_per_core {
        return run_per_core(args, config);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        let listener = relay::bind(args.listen).with_context(|| format!("--listen {}: cannot bind", args.listen))?;
        let relay = Relay::new(config.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = args.metrics {
            let ml =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--metrics {addr}: cannot bind"))?;
            serve_metrics(ml, relay.metrics(), stop_rx.clone());
        }
        banner(&config, listener.local_addr().unwrap_or(args.listen), "");
        let mut rx = stop_rx.clone();
        let serve = relay.serve(listener, async move {
            let _ = rx.changed().await;
        });
        tokio::spawn(async move {
            crate::signals::wait_for_stop().await;
            eprintln!("stopping: closing connections");
            let _ = stop_tx.send(true);
        });
        serve.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What the relay says when it starts listening.
fn banner(config: &RelayConfig, addr: std::net::SocketAddr, threading: &str) {
    eprintln!(
        "sealbench relay listening on {}://{addr} (max {} connections, max message {} B{}{threading})",
        if config.tls.is_some() { "wss" } else { "ws" },
        config.max_connections,
        config.max_message,
        if config.auth_secret.is_some() { ", auth required" } else { "" }
    );
    if let Some(a) = &config.adversary {
        eprintln!("WARNING: --adversary {a:?}: this relay tampers with messages on purpose (testing only)");
    }
    if let Some(s) = &config.scan {
        eprintln!(
            "READING: this relay scans every unencrypted message for {} keywords ({}) and will {} a match",
            s.words(),
            s.source(),
            s.action().name()
        );
    }
    if !config.delay.is_zero() {
        eprintln!("WARNING: --delay {:?} holds every message: this relay is slow on purpose", config.delay);
    }
    eprintln!("worst-case memory: {}", relay::config::worst_case_text(config));
    if let Some(mem) = relay::config::machine_memory()
        && relay::config::worst_case_bytes(config) > mem
    {
        eprintln!(
            "WARNING: at these limits the relay could need more memory than this machine has: lower --max-connections or --queue-bytes (docs/PROTOCOL.md §4.6)"
        );
    }
}

/// `--thread-per-core`: the relay's threads each run their own runtime (see
/// [`Relay::serve_per_core`]); a small runtime on its own thread waits for the stop signal
/// and serves `--metrics`.
fn run_per_core(args: &RelayArgs, config: RelayConfig) -> Outcome {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let relay = Relay::new(config.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let control = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    let metrics = match args.metrics {
        Some(addr) => Some(
            control
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("--metrics {addr}: cannot bind"))?,
        ),
        None => None,
    };
    let (relay_metrics, metrics_stop, mut done, stop) =
        (relay.metrics(), stop_rx.clone(), stop_rx.clone(), stop_tx.clone());
    let side = std::thread::Builder::new().name("sealbench-relay-control".into()).spawn(move || {
        control.block_on(async move {
            if let Some(ml) = metrics {
                serve_metrics(ml, relay_metrics, metrics_stop);
            }
            tokio::select! {
                _ = crate::signals::wait_for_stop() => eprintln!("stopping: closing connections"),
                _ = done.wait_for(|stop| *stop) => {}
            }
            let _ = stop.send(true);
        });
    });
    let side = side.context("starting the relay's control thread")?;
    let served = relay.serve_per_core(args.listen, threads, stop_rx, |addr| {
        banner(&config, addr, &format!(", {threads} thread(s), thread per core"));
    });
    let _ = stop_tx.send(true); // the control thread ends too (a bind failed, or it was stopped)
    let _ = side.join();
    served.with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `--metrics` on `ml` (on the current runtime) until `stop` changes.
fn serve_metrics(
    ml: tokio::net::TcpListener,
    metrics: std::sync::Arc<relay::metrics::RelayMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    eprintln!("metrics on http://{}/metrics", ml.local_addr().map_or(String::new(), |a| a.to_string()));
    tokio::spawn(relay::http::serve(ml, metrics, async move {
        let _ = stop.changed().await;
    }));
}
