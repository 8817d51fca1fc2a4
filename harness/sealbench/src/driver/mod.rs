//! The load driver: turns a scenario into shards of simulated clients, runs them against
//! the embedded or an external relay, and gathers what they measured.
//!
//! # Layout
//! - [`limits`] — checks the run fits the machine (open files, ephemeral ports) before it starts.
//! - [`shard`] — one thread of clients; [`client`] — a client's connection;
//!   [`conversation`] — handshake and transport of one pair; [`schedule`] — open-loop timing.
//! - [`recorder`] — histograms and counters.
//! - `layout` — which shard gets which conversations; `embedded` — the in-process relay.
//!
//! The coordinator (this module) only merges once-per-second interval reports; it is never
//! on the per-message path.

pub mod client;
pub mod conversation;
mod embedded;
mod layout;
pub mod limits;
pub mod recorder;
pub mod schedule;
pub mod shard;

use crate::clock::now_ns;
use crate::relay::RelayConfig;
use crate::scenario::{Plan, Scenario};
use anyhow::{Result, bail};
use conversation::Conversation;
pub use embedded::{EmbeddedRelay, RelayStats};
use layout::{build_shards, resolve};
use recorder::{Counters, Histograms};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Knobs of a run beyond the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Driver shards (threads); default: one per core.
    pub shards: Option<usize>,
    /// Set to stop early (Ctrl-C): results are still written, marked interrupted.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Test hook: shard 0 stops sending for `.1` starting `.0` after the steady start.
    pub stall: Option<(Duration, Duration)>,
}

/// What each shard gets.
#[derive(Debug)]
pub struct ShardSpec {
    index: usize,
    plan: Plan,
    target: client::Target,
    clients: Vec<ClientSpec>,
    convs: Vec<Conversation>,
    connect_rate: f64,
    seed: u64,
    warmup_ns: u64,
    duration_ns: u64,
    cooldown_ns: u64,
    ack: bool,
    stall: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct ClientSpec {
    id: u64,
    conv: usize,
    side: usize,
    source: Ipv4Addr,
    publish_key: Option<[u8; 32]>,
}

/// Shared control of the shards.
#[derive(Debug, Clone)]
pub struct Control {
    /// The common steady-phase start (ns on the process clock), once every shard is ready.
    start: tokio::sync::watch::Receiver<Option<u64>>,
    /// End the steady phase now (Ctrl-C, relay gone).
    stop: Arc<AtomicBool>,
    /// Skip the cooldown too.
    abort: Arc<AtomicBool>,
}

/// What shards tell the coordinator.
#[derive(Debug)]
pub enum ShardEvent {
    /// All its clients have tried to connect.
    Connected {
        /// Shard index.
        shard: usize,
    },
    /// All its handshakes have finished or failed.
    HandshakesDone {
        /// Shard index.
        shard: usize,
        /// When its first handshake started (0: none did).
        first_ns: u64,
        /// When its last handshake finished on the initiator.
        last_ns: u64,
    },
    /// One second of measurements.
    Interval {
        /// Shard index.
        shard: usize,
        /// When the interval ended.
        at_ns: u64,
        /// The interval's histograms.
        hist: Histograms,
        /// Cumulative counters.
        counters: Counters,
        /// Clients connected now.
        connected: usize,
    },
    /// The shard is done.
    Finished {
        /// Shard index.
        shard: usize,
        /// Histograms since the last interval.
        hist: Histograms,
        /// Final counters.
        counters: Counters,
        /// CPU time of the shard thread, ns.
        cpu_ns: u64,
        /// CPU time of the shard thread while sending (steady phase), ns.
        steady_cpu_ns: u64,
        /// Messages the shard sent in that time.
        steady_sent: u64,
        /// Its first connect or registration failure, if any.
        first_error: Option<String>,
    },
    /// The shard could not run.
    Failed(String),
}

/// The phase of a run, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Clients are connecting.
    Connecting,
    /// Handshakes are running.
    Handshaking,
    /// Warm-up traffic (not in the histograms).
    Warmup,
    /// Measured traffic.
    Steady,
    /// Waiting for in-flight messages.
    Draining,
}

impl Phase {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Handshaking => "handshaking",
            Phase::Warmup => "warmup",
            Phase::Steady => "steady",
            Phase::Draining => "draining",
        }
    }
}

/// One merged second.
#[derive(Debug, Clone)]
pub struct Second {
    /// Seconds since the run started (end of the interval).
    pub t: u64,
    /// Phase at the end of the interval.
    pub phase: Phase,
    /// The second's histograms (all shards).
    pub hist: Histograms,
    /// Counters since the previous second (all shards).
    pub delta: Counters,
    /// Connected clients.
    pub connected: usize,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Histograms of the whole measured phase.
    pub total: Histograms,
    /// Final counters.
    pub counters: Counters,
    /// Per-second history.
    pub seconds: Vec<Second>,
    /// Wall time of the steady phase actually run (warm-up + measured), s.
    pub measured_s: f64,
    /// Seconds from start to the end of handshakes.
    pub setup_s: f64,
    /// Seconds from the first handshake started to the last one finished.
    pub handshake_s: f64,
    /// CPU seconds of the driver's shard threads (whole run).
    pub driver_cpu_s: f64,
    /// CPU seconds of the shard threads while sending.
    pub steady_cpu_s: f64,
    /// Messages sent while sending (for CPU per message).
    pub steady_sent: u64,
    /// Wall seconds of the whole run.
    pub wall_s: f64,
    /// Ctrl-C ended it early.
    pub interrupted: bool,
    /// Why it was aborted, if it was (relay gone).
    pub aborted: Option<String>,
    /// Driver shards used.
    pub shards: usize,
    /// Relay URL used.
    pub relay_url: String,
    /// Unix time (s) the run started, for interval-log headers.
    pub started_unix_s: f64,
    /// The embedded relay's own counters (None for an external relay).
    pub relay_stats: Option<RelayStats>,
}

/// Runs `scenario`. `on_second` sees each merged second as it completes.
///
/// # Errors
/// When the run cannot fit the machine (before anything connects), the embedded relay
/// cannot start, or every client fails to connect.
pub fn run(
    scenario: &Scenario,
    options: &RunOptions,
    mut on_second: impl FnMut(&Second, &Counters),
) -> Result<Outcome> {
    let plan = scenario.plan()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let shards = options.shards.unwrap_or(cores).clamp(1, 64).min(scenario.clients.count / 2);
    limits::check(scenario, &plan)?;
    let started_unix_s = crate::timefmt::unix_seconds_now();
    let run_start = now_ns();

    // The relay: embedded (own runtime threads) or external.
    let (embedded, target) = match &plan.relay_url {
        Some(url) => (
            None,
            client::Target {
                addr: resolve(url)?,
                url: url.clone(),
                auth_secret: scenario.relay.auth_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            },
        ),
        None => {
            let cfg = RelayConfig {
                max_connections: scenario.clients.count + 64,
                delay: scenario.relay.delay,
                ..RelayConfig::default()
            };
            let e = EmbeddedRelay::start(cfg)?;
            let url = format!("ws://{}/", e.addr);
            let addr = e.addr;
            (Some(e), client::Target { addr, url, auth_secret: None })
        }
    };

    let (start_tx, start_rx) = tokio::sync::watch::channel(None);
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let control = Control { start: start_rx, stop: stop.clone(), abort: abort.clone() };
    let (ev_tx, ev_rx) = std::sync::mpsc::channel();
    let specs = build_shards(scenario, &plan, shards, &target, options)?;
    let mut handles = Vec::new();
    for spec in specs {
        let (control, ev) = (control.clone(), ev_tx.clone());
        let name = format!("sealbench-shard-{}", spec.index);
        handles.push(std::thread::Builder::new().name(name).spawn(move || shard::run(spec, control, ev))?);
    }
    drop(ev_tx);

    let mut connected_shards = 0;
    let mut hs_shards = 0;
    let mut finished = 0;
    let mut phase = Phase::Connecting;
    let mut total = Histograms::new();
    let mut counters = Counters::new();
    let mut last_counters = Counters::new();
    let mut per_shard: Vec<Option<(u64, Histograms, Counters, usize)>> = (0..shards).map(|_| None).collect();
    let mut shard_counters: Vec<Counters> = (0..shards).map(|_| Counters::new()).collect();
    let mut done = vec![false; shards];
    let mut seconds: Vec<Second> = Vec::new();
    let mut cpu_ns = 0u64;
    let mut steady_cpu = 0u64;
    let mut steady_msgs = 0u64;
    let mut setup_s = 0.0;
    let mut handshake_s = 0.0;
    let mut hs_from: Option<u64> = None;
    let mut hs_to = 0u64;
    let mut steady_start: Option<u64> = None;
    let mut interrupted = false;
    let mut aborted = None;
    let warmup = scenario.warmup.as_nanos() as u64;
    let duration = scenario.duration.as_nanos() as u64;
    let mut failure = None;
    let mut first_error: Option<String> = None;

    while finished < shards {
        let ev = match ev_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => Some(ev),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if !interrupted && options.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
            interrupted = true;
            stop.store(true, Ordering::Relaxed);
            let _ = start_tx.send(Some(now_ns()));
        }
        let Some(ev) = ev else { continue };
        match ev {
            ShardEvent::Connected { .. } => {
                connected_shards += 1;
                if connected_shards == shards {
                    phase = Phase::Handshaking;
                }
            }
            ShardEvent::HandshakesDone { first_ns, last_ns, .. } => {
                hs_shards += 1;
                if first_ns > 0 {
                    hs_from = Some(hs_from.map_or(first_ns, |f: u64| f.min(first_ns)));
                }
                hs_to = hs_to.max(last_ns);
                if hs_shards == shards {
                    setup_s = (now_ns() - run_start) as f64 / 1e9;
                    handshake_s = hs_to.saturating_sub(hs_from.unwrap_or(hs_to)) as f64 / 1e9;
                    let t0 = now_ns() + 20_000_000;
                    steady_start = Some(t0);
                    phase = if warmup > 0 { Phase::Warmup } else { Phase::Steady };
                    let _ = start_tx.send(Some(t0));
                }
            }
            ShardEvent::Interval { shard, at_ns, hist, counters: c, connected } => {
                shard_counters[shard] = c.clone();
                if let Some((_, h, _, _)) = per_shard[shard].replace((at_ns, hist, c, connected)) {
                    total.add(&h); // a second interval before the others caught up: keep its data
                }
                let ready = (0..shards).all(|s| per_shard[s].is_some() || done[s]);
                if ready && per_shard.iter().any(Option::is_some) {
                    let mut merged = Histograms::new();
                    let mut now_counters = Counters::new();
                    let mut conn = 0;
                    let mut at = 0;
                    for (a, h, c, n) in per_shard.iter_mut().filter_map(Option::take) {
                        merged.add(&h);
                        now_counters.add(&c);
                        conn += n;
                        at = at.max(a);
                    }
                    if let Some(t0) = steady_start {
                        phase = if at < t0 + warmup {
                            Phase::Warmup
                        } else if at < t0 + warmup + duration {
                            Phase::Steady
                        } else {
                            Phase::Draining
                        };
                    }
                    total.add(&merged);
                    let delta = now_counters.since(&last_counters);
                    last_counters = now_counters.clone();
                    let sec = Second {
                        t: ((at - run_start) as f64 / 1e9).round() as u64,
                        phase,
                        hist: merged,
                        delta,
                        connected: conn,
                    };
                    on_second(&sec, &now_counters);
                    seconds.push(sec);
                    // The relay went away: most clients lost their connection unexpectedly.
                    if aborted.is_none() && phase != Phase::Connecting && now_counters.disconnects > 0 {
                        let lost_frac = now_counters.disconnects as f64 / scenario.clients.count as f64;
                        if lost_frac >= 0.5 {
                            aborted = Some(format!(
                                "{} of {} clients lost their connection to the relay",
                                now_counters.disconnects, scenario.clients.count
                            ));
                            stop.store(true, Ordering::Relaxed);
                            abort.store(true, Ordering::Relaxed);
                            let _ = start_tx.send(Some(now_ns()));
                        }
                    }
                }
            }
            ShardEvent::Finished {
                shard,
                hist,
                counters: c,
                cpu_ns: cpu,
                steady_cpu_ns,
                steady_sent,
                first_error: fe,
            } => {
                if first_error.is_none() {
                    first_error = fe;
                }
                steady_cpu += steady_cpu_ns;
                steady_msgs += steady_sent;
                total.add(&hist);
                if let Some((_, h, _, _)) = per_shard[shard].take() {
                    total.add(&h);
                }
                done[shard] = true;
                shard_counters[shard] = c;
                cpu_ns += cpu;
                finished += 1;
                phase = Phase::Draining;
            }
            ShardEvent::Failed(msg) => {
                failure = Some(msg);
                stop.store(true, Ordering::Relaxed);
                abort.store(true, Ordering::Relaxed);
                let _ = start_tx.send(Some(now_ns()));
            }
        }
        if connected_shards == shards && hs_shards < shards && aborted.is_none() {
            // Nothing connected at all: the relay is not there.
            let c: u64 = shard_counters.iter().map(|c| c.connects_ok).sum();
            let f: u64 = shard_counters.iter().map(|c| c.connects_failed).sum();
            if c == 0 && f > 0 {
                aborted = Some(format!("no client could connect to {}", target.url));
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(msg) = failure {
        bail!(msg);
    }
    for c in &shard_counters {
        counters.add(c);
    }
    let wall_s = (now_ns() - run_start) as f64 / 1e9;
    if counters.connects_ok == 0 {
        let why = aborted.clone().unwrap_or_else(|| format!("no client could connect to {}", target.url));
        drop(embedded);
        let first = first_error.map(|e| format!(" (first failure: {e})")).unwrap_or_default();
        bail!("{why}{first}: is the relay running and reachable? (relay.url / --relay)");
    }
    if counters.connects_ok == counters.registers_failed {
        drop(embedded);
        let first = first_error.unwrap_or_default();
        bail!(
            "every client connected but none could register with the relay at {} ({first}); a relay started \
             with --auth-secret needs the same secret here: --set relay.auth_secret=SECRET",
            target.url
        );
    }
    let relay_stats = embedded.as_ref().map(|e| RelayStats::of(&e.metrics));
    drop(embedded);
    let measured_s = match steady_start {
        Some(_) if !interrupted && aborted.is_none() => (warmup + duration) as f64 / 1e9,
        Some(t0) => {
            seconds.last().map(|s| (run_start + s.t * 1_000_000_000).saturating_sub(t0) as f64 / 1e9).unwrap_or(0.0)
        }
        None => 0.0,
    };
    Ok(Outcome {
        total,
        counters,
        seconds,
        measured_s,
        setup_s,
        handshake_s,
        driver_cpu_s: cpu_ns as f64 / 1e9,
        steady_cpu_s: steady_cpu as f64 / 1e9,
        steady_sent: steady_msgs,
        wall_s,
        interrupted,
        aborted,
        shards,
        relay_url: plan.relay_url.clone().unwrap_or_else(|| format!("embedded ({})", target.url)),
        started_unix_s,
        relay_stats,
    })
}
