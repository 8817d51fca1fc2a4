//! The load driver: turns a scenario into shards of simulated clients, runs them against
//! the embedded or an external relay, and gathers what they measured.
//!
//! # Layout
//! - [`limits`] — checks the run fits the machine (open files, ephemeral ports) before it starts.
//! - [`shard`] — one thread of clients: phases and routing; [`client`] — a client's
//!   connection; [`schedule`] — open-loop timing.
//! - [`protocol`] — the session protocols (noise, olm, megolm, mls, plaintext), one file
//!   each behind one trait, and the pairwise sessions they set up.
//! - [`books`] — a shard's counters, histograms and windows; [`chat`] — a conversation's
//!   devices, routes and messages in flight; [`content`] — what a message says after its
//!   stamp (zeros, or text with planted keywords for a relay that reads).
//! - [`recorder`] — histograms and counters.
//! - [`wire`] — the target's wire protocol (sealbench's, MQTT) behind one seam, with its
//!   capability table; request ids, [`wire::Side`].
//! - `layout` — which shard gets which conversations; `embedded` — the in-process relay;
//!   [`cpus`] — `--cpus`: pinning the shard threads and the embedded relay apart.
//! - [`tls`] — `wss://`: the run's one TLS client configuration and whom it trusts.
//!
//! - [`coordinator`] — folds the shards' once-a-second reports into intervals and the
//!   outcome (pure; this module carries out what it decides). Never on the per-message path.

pub mod books;
pub mod chat;
pub mod client;
pub mod content;
pub mod coordinator;
pub mod cpus;
mod embedded;
pub(crate) mod layout;
pub mod limits;
pub mod protocol;
pub mod recorder;
pub mod sampler;
pub mod schedule;
pub mod shard;
pub mod tls;
pub mod wire;

/// The embedded relay's message limit when set-up messages are large (an MLS Welcome to a
/// group of 500 is 166 kB).
const LARGE_MAX_MESSAGE: usize = 1 << 20;

/// The embedded relay's send queue per connection, bytes and frames (see where it starts).
const EMBEDDED_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// See [`EMBEDDED_QUEUE_BYTES`].
const EMBEDDED_QUEUE_MESSAGES: usize = 4096;

use crate::clock::now_ns;
use crate::relay::RelayConfig;
use crate::scenario::{Plan, RelayTarget};
use anyhow::Result;
pub use coordinator::Tally;
use coordinator::{Coordinator, Reaction, RunShape};
pub use embedded::{EmbeddedRelay, RelayStats};
use layout::{build_shards, resolve};
use protocol::Conversation;
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
    /// The embedded relay's worker threads; default: one per core (or per `--cpus relay` CPU).
    pub relay_threads: Option<usize>,
    /// Set to stop early (Ctrl-C): results are still written, marked interrupted.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Test hook: shard 0 stops sending for `.1` starting `.0` after the steady start.
    pub stall: Option<(Duration, Duration)>,
    /// A split run's common steady start (wall clock): every part starts sending then.
    pub start_at: Option<std::time::SystemTime>,
    /// `--cpus`: the CPUs the shard threads and the embedded relay may use (default: any).
    pub cpus: cpus::CpuSplit,
}

/// What each shard gets.
#[derive(Debug)]
pub struct ShardSpec {
    index: usize,
    plan: Arc<Plan>,
    target: client::Target,
    clients: Vec<ClientSpec>,
    convs: Vec<Conversation>,
    chats: Vec<ChatSpec>,
    connect_rate: f64,
    seed: u64,
    /// The measured window: from `warmup_ns` after the steady start, `duration_ns` long.
    warmup_ns: u64,
    duration_ns: u64,
    /// Sending lasts this long after the steady start (every stage).
    sending_ns: u64,
    cooldown_ns: u64,
    ack: bool,
    stall: Option<(u64, u64)>,
}

/// A device: one simulated client, one connection.
#[derive(Debug, Clone)]
struct ClientSpec {
    /// Relay id.
    id: u64,
    /// Its conversation (index into the shard's chats) and its position among the
    /// conversation's devices.
    chat: usize,
    pos: usize,
    source: Ipv4Addr,
    /// Published in the key directory at registration (NK, IK).
    publish_key: Option<[u8; 32]>,
    /// Joins this relay group at registration (relay fan-out).
    group: Option<u64>,
    /// Goes offline and comes back.
    churns: bool,
}

/// A conversation as laid out in a shard.
#[derive(Debug, Clone)]
struct ChatSpec {
    /// Its number in the run.
    id: u32,
    kind: crate::scenario::population::ChatKind,
    /// Its devices are the shard's clients `first_client..` in conversation order.
    first_client: usize,
    /// Each user's device positions (0-based within the conversation).
    users: Vec<std::ops::Range<usize>>,
    /// Devices at positions below this belong to sending users.
    sending: usize,
    /// Its sessions: (position a, position b, local session index); a initiates.
    sessions: Vec<(usize, usize, usize)>,
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
        /// The shard thread's CPU time over the interval's wall time.
        busy: f64,
        /// The interval's wall time, ns (about a second; longer when the shard's thread
        /// could not run its reporter in time).
        span_ns: u64,
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
        /// Times the shard thread was woken in that time (None: not known here).
        steady_wakes: Option<u64>,
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
    /// Traffic of a cool-down stage after the measured phase (not in the histograms).
    CoolDown,
    /// Waiting for in-flight messages.
    Draining,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 6] =
        [Phase::Connecting, Phase::Handshaking, Phase::Warmup, Phase::Steady, Phase::CoolDown, Phase::Draining];

    /// The phase of a name ([`Phase::name`]).
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Handshaking => "handshaking",
            Phase::Warmup => "warmup",
            Phase::Steady => "steady",
            Phase::CoolDown => "cool-down",
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
    /// The busiest shard's CPU time over the interval's wall time (0..=1; 0 when unknown).
    pub busy: f64,
    /// The stage the second belongs to (index into the plan's profile; the one holding
    /// the second's middle), None outside the sending phase.
    pub stage: Option<usize>,
    /// When the second ended, seconds since the run started (unrounded, unlike `t`).
    pub at_s: f64,
}

/// Everything a run produced: the coordinator's [`Tally`] (what the shards measured; its
/// figures read through the outcome, `outcome.counters`) and what only the caller knows.
#[derive(Debug)]
pub struct Outcome {
    /// What the shards measured: histograms, counters, seconds, CPU, how the run ended.
    pub tally: Tally,
    /// A split run's common start, Unix seconds.
    pub start_at_unix_s: Option<f64>,
    /// Wall seconds of the whole run.
    pub wall_s: f64,
    /// Driver shards used.
    pub shards: usize,
    /// The embedded relay's worker threads, as its runtime reports them (None: external).
    pub relay_workers: Option<usize>,
    /// Relay URL used.
    pub relay_url: String,
    /// Unix time (s) the run started, for interval-log headers.
    pub started_unix_s: f64,
    /// The embedded relay's own counters (None for an external relay).
    pub relay_stats: Option<RelayStats>,
    /// CPU seconds of the embedded relay's threads while sending (None for an external
    /// relay, or when the sending phase never started).
    pub relay_steady_cpu_s: Option<f64>,
    /// Cores' worth of CPU other processes on this machine used while sending (None
    /// without `/proc/stat`, or when sending never started).
    pub others_cores: Option<f64>,
    /// Cores' worth of CPU the hypervisor gave other guests while sending.
    pub steal_cores: Option<f64>,
    /// How the threads were pinned (`--cpus`; default: not pinned).
    pub cpus: cpus::CpuSplit,
}

/// An outcome is its tally plus what only the caller knows: the tally's figures read
/// through it (`outcome.counters`, `outcome.total`), as they did when they were copied.
impl std::ops::Deref for Outcome {
    type Target = Tally;

    fn deref(&self) -> &Tally {
        &self.tally
    }
}

/// Runs the planned scenario. `on_second` sees each merged second as it completes, with
/// the cumulative counters.
///
/// # Errors
/// When the run cannot fit the machine (before anything connects), the embedded relay
/// cannot start, a shard cannot run, or no client connects or registers.
pub fn run(plan: &Plan, options: &RunOptions, mut on_second: impl FnMut(&Second, &Counters)) -> Result<Outcome> {
    let scenario = &plan.scenario;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pinned = &options.cpus;
    pinned.check().map_err(|e| anyhow::anyhow!("--cpus {e}"))?;
    if pinned.relay.is_some() && !matches!(plan.scenario.relay.url, RelayTarget::Embedded) {
        anyhow::bail!(
            "--cpus {pinned}: the relay is external (relay.url); pin it where it runs (e.g. `taskset -c`), and give only driver=LIST here"
        );
    }
    check_relay_threads(plan, options.relay_threads, pinned)?;
    let default_shards = pinned.driver.as_ref().map_or(cores, Vec::len);
    let shards = options.shards.unwrap_or(default_shards).clamp(1, 64).min(plan.local().0.max(1));
    limits::check(plan)?;
    let started_unix_s = crate::timefmt::unix_seconds_now();
    let run_start = now_ns();
    let (embedded, target) = relay_target(plan, pinned.relay.as_deref(), options.relay_threads)?;

    let (start_tx, start_rx) = tokio::sync::watch::channel(None);
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let control = Control { start: start_rx, stop: stop.clone(), abort: abort.clone() };
    let (ev_tx, ev_rx) = std::sync::mpsc::channel();
    let plan_arc = Arc::new(plan.clone());
    let mut handles = Vec::new();
    for spec in build_shards(&plan_arc, shards, &target, options)? {
        let (control, ev) = (control.clone(), ev_tx.clone());
        let name = format!("sealbench-shard-{}", spec.index);
        let pin = pinned.driver.clone();
        handles.push(std::thread::Builder::new().name(name).spawn(move || {
            if let Some(cpus) = pin
                && let Err(e) = cpus::pin_this_thread(&cpus)
            {
                tracing::warn!(error = %e, "could not pin a shard thread to CPUs {}", cpus::list(&cpus));
            }
            shard::run(spec, control, ev)
        })?);
    }
    drop(ev_tx);

    let shape = RunShape {
        shards,
        clients: plan.local().1,
        warmup_ns: plan.warmup_ns(),
        duration_ns: plan.measured_ns(),
        sending_ns: plan.sending_ns(),
        stage_ends_ns: plan.stage_ends_ns(),
        run_start_ns: run_start,
        start_not_before_ns: options.start_at.map(|at| {
            let now = std::time::SystemTime::now();
            match at.duration_since(now) {
                Ok(ahead) => now_ns() + ahead.as_nanos() as u64,
                Err(behind) => now_ns().saturating_sub(behind.duration().as_nanos() as u64),
            }
        }),
        relay_url: target.url.clone(),
    };
    let relay_cpu = match (&embedded, &scenario.relay.metrics) {
        (Some(_), _) => sampler::RelayCpu::Embedded,
        (None, Some(url)) => {
            sampler::RelayCpu::Scraped(crate::scrape::MetricsUrl::parse(url).map_err(anyhow::Error::msg)?)
        }
        (None, None) => sampler::RelayCpu::Unknown,
    };
    let sending_cpu = sampler::sample_sending(control.start.clone(), shape.sending_ns, stop.clone(), relay_cpu);
    let steering = Steering { start: start_tx, stop, abort, interrupt: options.interrupt.clone() };
    let coordinator = coordinate(Coordinator::new(shape), &ev_rx, &steering, &mut on_second);
    for h in handles {
        let _ = h.join();
    }
    let tally = coordinator.finish();
    drop(steering); // a sampler still waiting for a start that never came ends now
    let sending_cpu = sending_cpu.join().ok().flatten();
    let relay_steady_cpu_s = sending_cpu.and_then(|c| c.relay_ns).map(|ns| ns as f64 / 1e9);
    let relay_stats = embedded.as_ref().map(|e| RelayStats::of(&e.metrics, plan.adversary.is_some()));
    let relay_workers = embedded.as_ref().map(|e| e.workers);
    drop(embedded);
    Ok(Outcome {
        tally: tally?,
        start_at_unix_s: options
            .start_at
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        wall_s: (now_ns() - run_start) as f64 / 1e9,
        shards,
        relay_workers,
        relay_url: match &scenario.relay.url {
            RelayTarget::Ws(u) => u.url.clone(),
            RelayTarget::Embedded => format!("embedded ({})", target.url),
        },
        started_unix_s,
        relay_stats,
        relay_steady_cpu_s,
        others_cores: sending_cpu.and_then(|c| c.others_cores()),
        steal_cores: sending_cpu.and_then(|c| c.steal_cores()),
        cpus: pinned.clone(),
    })
}

/// The levers the coordinator's reactions pull.
struct Steering {
    start: tokio::sync::watch::Sender<Option<u64>>,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    interrupt: Option<Arc<AtomicBool>>,
}

impl Steering {
    fn act(&self, r: &Reaction) {
        if r.stop {
            self.stop.store(true, Ordering::Relaxed);
        }
        if r.abort {
            self.abort.store(true, Ordering::Relaxed);
        }
        if let Some(t) = r.start_at {
            let _ = self.start.send(Some(t));
        }
    }
}

/// Feeds the shards' events (and Ctrl-C) to the coordinator until every shard is done,
/// carrying out its reactions and showing each completed second.
fn coordinate(
    mut coordinator: Coordinator,
    events: &std::sync::mpsc::Receiver<ShardEvent>,
    steering: &Steering,
    on_second: &mut impl FnMut(&Second, &Counters),
) -> Coordinator {
    while !coordinator.is_done() {
        let ev = match events.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => Some(ev),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if steering.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
            steering.act(&coordinator.interrupt(now_ns()));
        }
        let Some(ev) = ev else { continue };
        let r = coordinator.on_event(ev, now_ns());
        if let Some(i) = r.second {
            on_second(&coordinator.seconds()[i], &coordinator.counters_now());
        }
        steering.act(&r);
    }
    coordinator
}

/// Refuses `--relay-threads` where it cannot apply: an external relay, or `--cpus relay=`
/// (which gives the embedded relay one worker per CPU).
///
/// # Errors
/// Either of those, said with what to do instead.
pub fn check_relay_threads(plan: &Plan, relay_threads: Option<usize>, pinned: &cpus::CpuSplit) -> Result<()> {
    let Some(n) = relay_threads else { return Ok(()) };
    if !matches!(plan.scenario.relay.url, RelayTarget::Embedded) {
        anyhow::bail!(
            "--relay-threads {n}: the relay is external (relay.url); give it its threads where it runs (`sealbench relay --threads N`)"
        );
    }
    if let Some(cpus) = &pinned.relay {
        anyhow::bail!(
            "--relay-threads {n} and --cpus relay={}: the embedded relay runs one worker per CPU it is given; give one or the other",
            cpus::list(cpus)
        );
    }
    Ok(())
}

/// Every check a run makes before it connects, and nothing more: the run fits this
/// machine (open files, ephemeral ports: [`limits::check`]), and for a `wss://` relay the
/// TLS trust loads (a CA file that cannot be read or holds no certificate is named).
/// `run --dry-run`, `matrix` and `capacity` make the same checks, so that a dry run that
/// says "valid" is never refused by the run. Whether the relay's host resolves is not one
/// of them: a dry run on a laptop of a run meant for a cluster (`deploy/kubernetes`) cannot
/// resolve the cluster's names; [`resolves`] says it, as a warning.
///
/// # Errors
/// The first check that fails, named.
pub fn preflight(plan: &Plan) -> Result<()> {
    limits::check(plan)?;
    if let RelayTarget::Ws(url) = &plan.scenario.relay.url {
        if url.tls {
            let relay = &plan.scenario.relay;
            let trust = match (&relay.ca, relay.insecure) {
                (_, true) => tls::Trust::Insecure,
                (Some(ca), false) => tls::Trust::Ca(ca.clone()),
                (None, false) => tls::Trust::Roots,
            };
            tls::ClientTls::new(&trust, &url.host)?;
        }
    }
    Ok(())
}

/// Why the external relay's host does not resolve from here, if it does not (a dry run's
/// warning: the run would end with exit 1 here, though it may run where the name exists).
pub fn resolves(plan: &Plan) -> Option<String> {
    match &plan.scenario.relay.url {
        RelayTarget::Ws(url) => resolve(url).err().map(|e| format!("{e:#}")),
        RelayTarget::Embedded => None,
    }
}

/// Starts the embedded relay (on its own runtime threads), or resolves the external one;
/// builds the run's one TLS client configuration for `wss://`.
fn relay_target(
    plan: &Plan,
    relay_cpus: Option<&[usize]>,
    workers: Option<usize>,
) -> Result<(Option<EmbeddedRelay>, client::Target)> {
    let scenario = &plan.scenario;
    let relay = &scenario.relay;
    Ok(match &relay.url {
        RelayTarget::Ws(url) => {
            let tls = if url.tls {
                let trust = match (&relay.ca, relay.insecure) {
                    (_, true) => tls::Trust::Insecure,
                    (Some(ca), false) => tls::Trust::Ca(ca.clone()),
                    (None, false) => tls::Trust::Roots,
                };
                Some(tls::ClientTls::new(&trust, &url.host)?)
            } else {
                None
            };
            if relay.wire == wire::Wire::Xmpp {
                wire::xmpp::use_domain(&wire::xmpp::domain_of(&url.host))?;
            }
            (
                None,
                client::Target {
                    addr: resolve(url)?,
                    url: url.url.clone(),
                    tls,
                    auth_secret: relay.auth_secret.as_ref().map(|s| s.as_bytes().to_vec()),
                    wire: relay.wire,
                },
            )
        }
        RelayTarget::Embedded => {
            let (server_tls, client_tls) = if relay.tls {
                let (server, cert) = crate::relay::tls::self_signed()?;
                (Some(server), Some(tls::ClientTls::new(&tls::Trust::Exactly(cert), "127.0.0.1")?))
            } else {
                (None, None)
            };
            // An MLS Welcome carries the whole ratchet tree: 166 kB for a group of 500
            // (docs/PERFORMANCE.md), past the default 64 KiB message limit.
            let large = plan.protocol.large_setup_messages();
            let cfg = RelayConfig {
                max_message: if large { LARGE_MAX_MESSAGE } else { RelayConfig::default().max_message },
                max_connections: scenario.clients.count + 64,
                // The driver is this relay's only consumer: a generator stall must show as
                // lateness, never as the relay closing a slow consumer. Its queues stay as
                // large as before the standalone relay's safe defaults (PROTOCOL.md §4.6).
                queue_bytes: EMBEDDED_QUEUE_BYTES,
                queue_messages: EMBEDDED_QUEUE_MESSAGES,
                delay: relay.delay,
                adversary: plan.adversary,
                tls: server_tls,
                scan: match &plan.scan {
                    Some(s) => Some(Arc::new(
                        crate::relay::scan::Scanner::new(&s.list, s.action)
                            .map_err(|e| anyhow::anyhow!("relay.scan: {e}"))?,
                    )),
                    None => None,
                },
                ..RelayConfig::default()
            };
            let e = EmbeddedRelay::start(cfg, relay_cpus, workers)?;
            let scheme = if client_tls.is_some() { "wss" } else { "ws" };
            let url = format!("{scheme}://{}/", e.addr);
            let addr = e.addr;
            // The embedded relay speaks sealbench's wire (the plan refuses another with it).
            let wire = wire::Wire::Sealbench;
            (Some(e), client::Target { addr, url, tls: client_tls, auth_secret: None, wire })
        }
    })
}
