//! The command line (clap derive). Parsing only: every command's work lives in its module.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub mod choice;
pub mod deprecated;
pub mod live;

/// sealbench: load and performance harness for end-to-end-encrypted messaging.
///
/// Simulated clients run real Noise handshakes through a relay over WebSockets and send
/// real AEAD-sealed messages; sealbench measures every stage with HdrHistograms.
#[derive(Debug, Parser)]
#[command(name = "sealbench", version, about, long_about = None, propagate_version = true, after_help = TOP_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The jobs, one example each, and the exit codes (after `sealbench --help`).
const TOP_HELP: &str = "\
Examples, one per job:
  sealbench run scenarios/quickstart.toml                        one load run (1,000 clients)
  sealbench capacity scenarios/quickstart.toml --slo 'e2e.p99<25ms'   capacity planning
  sealbench compare base/ new/ --fail-on 'e2e.p99 > +10%'        regression gate (CI)
  sealbench matrix scenarios/quickstart.toml --aead chacha20-poly1305,aes-256-gcm
                                                                 comparing cipher choices
Exit codes: 0 ok; 2 bad usage or scenario (nothing run); 99 a threshold or a --fail-on
rule failed; 130 interrupted (results so far written); 1 anything else.
Thresholds and rules: docs/THRESHOLDS.md. Scenario fields: docs/SCENARIOS.md.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load scenario: thousands of clients, real handshakes and sealed messages through
    /// a relay; writes summary.json, latency.hlog, timeseries.csv and plots. Exit 99 when a
    /// threshold fails.
    ///
    /// A scenario describes the population (devices per user, 1:1 chats and groups with
    /// client or relay fan-out, churn and reconnect storms), the traffic and its stages,
    /// the crypto, the relay and the thresholds. Every field, with units, defaults and
    /// examples: docs/SCENARIOS.md. Examples: scenarios/quickstart.toml,
    /// scenarios/messenger-mix.toml, scenarios/group-fanout.toml.
    Run(RunArgs),
    /// Compare two results (regression gate): every comparable figure with its change,
    /// marked better / worse / within noise. Exit 99 when a --fail-on rule is violated.
    Compare(CompareArgs),
    /// Combine the results of a run split over processes or machines (`run --shard I/N`)
    /// into one: histograms added from every part's latency.hlog (never percentiles
    /// averaged), counters summed, seconds aligned on wall-clock time, thresholds judged on
    /// the whole, each part's generator verdict kept. Exit 99 when a threshold fails.
    Merge(MergeArgs),
    /// Run one scenario per cipher choice (AEAD × pattern × mode × transport), interleaved
    /// and repeated, and tabulate what each costs end to end (matrix.json, matrix.md, plots).
    Matrix(MatrixArgs),
    /// Find the highest offered rate (or client count) that meets every SLO: grow until it
    /// breaks, then bisect (capacity.json, capacity.md, plots).
    Capacity(CapacityArgs),
    /// Single-core sweep of the crypto core: AEAD seal/open per message size, handshakes
    /// per second per suite (classical and hybrid post-quantum), X25519, ML-KEM-768, the KDF
    /// chain vs Noise transport; per backend (--backend). Writes crypto.json and plots.
    Crypto(CryptoArgs),
    /// Measure this machine's floors in a few seconds — the CPU cost of one loopback TCP
    /// hop (unbatched, and 16 messages to a write), of a timer wake-up, of X25519 and of
    /// one seal — and cache them (`~/.cache/sealbench/calibration.json`). Every result
    /// carries them, and reports CPU per message also as a multiple of the hop.
    Calibrate(CalibrateArgs),
    /// Run the reference relay: routes opaque ciphertext between clients over WebSockets
    /// until SIGINT/SIGTERM (then closes every connection with "going away" and exits 0).
    Relay(RelayArgs),
}

/// The relay's defaults: `sealbench relay`'s flags show and use these, so each default is
/// written once, in [`crate::relay::RelayConfig::default`].
fn relay_defaults() -> crate::relay::RelayConfig {
    crate::relay::RelayConfig::default()
}

/// Worst-case memory of `sealbench relay`: the formula (`docs/PROTOCOL.md` §4.6 says the
/// same) and its value for the defaults on this machine, computed by
/// [`crate::relay::config::worst_case_bytes`].
pub fn relay_memory_help() -> String {
    let d = relay_defaults();
    format!(
        "\
Worst-case memory (every limit reached at once):
  max_connections × (6 KiB + read_buffer + write_buffer 16 KiB + 1.25 × max_message
                     + queue_bytes + 32 B × queue_messages + 24 B × max_groups + 1 KiB)
  + 2 × mailbox_total_bytes   (the second half only for acknowledged frames put back
                               when their connection closed)
  + 100 B × max_known_clients + 400 B × 1,000,000 keys + key_pool_bytes
The defaults fit a quarter of this machine's memory: the connection limit is the open-file
limit minus 64, and no more than fit. Here: {}.
More connections (--max-connections, up to the open files) or larger --queue-bytes raise
it; the relay prints the figure for the flags given when it starts.",
        crate::relay::config::worst_case_text(&d)
    )
}

/// `sealbench relay`.
#[derive(Debug, Args)]
#[command(after_long_help = relay_memory_help())]
pub struct RelayArgs {
    /// Address to accept WebSocket connections on.
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (and /healthz).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Require HELLO tokens: token = HMAC-SHA256(secret, client id as u64 little-endian).
    #[arg(long, env = "SEALBENCH_AUTH_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// Largest accepted message in bytes (larger ones get a TOO_LARGE error frame).
    #[arg(long, default_value_t = relay_defaults().max_message, value_name = "BYTES")]
    pub max_message: usize,

    /// Messages stored per offline recipient; past it senders get MAILBOX_FULL.
    #[arg(long, default_value_t = relay_defaults().mailbox_limit, value_name = "N")]
    pub mailbox_limit: usize,

    /// Bytes stored per recipient (each message counts its length + 64); past it senders
    /// get MAILBOX_FULL.
    #[arg(long, default_value_t = relay_defaults().mailbox_bytes, value_name = "BYTES")]
    pub mailbox_bytes: usize,

    /// Bytes stored in all mailboxes together (same count); past it senders get
    /// MAILBOX_FULL.
    #[arg(long, default_value_t = relay_defaults().mailbox_total_bytes, value_name = "BYTES")]
    pub mailbox_total_bytes: usize,

    /// Recipients that may hold a non-empty mailbox at once.
    #[arg(long, default_value_t = relay_defaults().max_mailboxes, value_name = "N")]
    pub max_mailboxes: usize,

    /// Client ids remembered after they disconnect (mailboxes exist only for ids that have
    /// registered; sends to unknown ids get UNKNOWN_RECIPIENT).
    #[arg(long, default_value_t = relay_defaults().max_known_clients, value_name = "N")]
    pub max_known_clients: usize,

    /// Frames queued towards one connection before it is closed as a slow consumer (4001).
    #[arg(long, default_value_t = relay_defaults().queue_messages, value_name = "N")]
    pub queue_messages: usize,

    /// Bytes queued towards one connection before it is closed as a slow consumer (4001).
    #[arg(long, default_value_t = relay_defaults().queue_bytes, value_name = "BYTES")]
    pub queue_bytes: usize,

    /// Connections held at once; further upgrades get HTTP 503 [default: the open-file
    /// limit minus 64, and no more than fit a quarter of this machine's memory at the
    /// other limits' worst case (see the end of --help)].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Time a new connection has to upgrade and send HELLO, with a unit (e.g. 10s).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::results::figure::parse_duration_or_legacy_seconds)]
    pub handshake_timeout: Duration,

    /// Silence before a connection is closed (4002), with a unit (e.g. 60s, 5m); a ping
    /// goes out at half.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::results::figure::parse_duration_or_legacy_seconds)]
    pub idle_timeout: Duration,

    /// Groups one client may be in.
    #[arg(long, default_value_t = relay_defaults().max_groups_per_client, value_name = "N")]
    pub max_groups: usize,

    /// Members one group may have.
    #[arg(long, default_value_t = relay_defaults().max_group_members, value_name = "N")]
    pub max_group_members: usize,

    /// Bytes all clients' key pools may hold together (one-time keys, key packages; each
    /// item counts its length + 32); past it publishes get BAD_KEY (directory_full).
    #[arg(long, default_value_t = relay_defaults().key_pools.total_bytes, value_name = "BYTES")]
    pub key_pool_bytes: usize,

    /// One client's share of --key-pool-bytes (all its pools together): past it its
    /// publishes get BAD_KEY (client_share) while other clients can still publish.
    #[arg(long, default_value_t = relay_defaults().key_pools.client_bytes, value_name = "BYTES")]
    pub key_client_bytes: usize,

    /// Key claims a second one connection may make, sustained; past it (and its burst)
    /// claims get RATE_LIMITED (claimer_rate).
    #[arg(long, default_value_t = relay_defaults().key_claims.rate, value_name = "PER_SECOND")]
    pub claim_rate: f64,

    /// Key claims one connection may make at once (the burst of --claim-rate).
    #[arg(long, default_value_t = relay_defaults().key_claims.burst, value_name = "N")]
    pub claim_burst: u32,

    /// Items one connection may claim from any one client's pool within --claim-window
    /// (one-time and fallback alike); past it claims get RATE_LIMITED (peer_rate).
    #[arg(long, default_value_t = relay_defaults().key_claims.per_peer, value_name = "N")]
    pub claims_per_peer: u32,

    /// The window of --claims-per-peer, with a unit (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::results::figure::parse_duration)]
    pub claim_window: Duration,

    /// WebSocket read buffer per connection in bytes (allocated per connection).
    #[arg(long, default_value_t = relay_defaults().read_buffer, value_name = "BYTES")]
    pub read_buffer: usize,

    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Thread per core: each thread runs its own single-threaded runtime and accepts on
    /// its own SO_REUSEPORT listener, so a connection never leaves its thread and no
    /// worker wakes another to steal work (default: one multi-threaded runtime whose
    /// workers share every connection). See docs/PERFORMANCE.md for when it pays.
    #[arg(long)]
    pub thread_per_core: bool,

    /// Serve wss:// (TLS) with this PEM certificate chain, leaf first (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Hold every message this long before routing it, with a unit (e.g. 2ms). For
    /// comparisons and tests of latency measurement only: it makes the relay deliberately
    /// slow.
    #[arg(long, value_name = "DURATION", value_parser = crate::results::figure::parse_duration, hide_short_help = true)]
    pub delay: Option<Duration>,

    /// Deprecated spelling of --delay in milliseconds (`--delay-ms 2` is `--delay 2ms`);
    /// still accepted, with a warning, for one release.
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "delay")]
    pub delay_ms: Option<f64>,

    /// TESTING ONLY: tamper with / replay / duplicate / drop / reorder / delay this fraction
    /// of forwarded 1:1 transport messages, e.g.
    /// `tamper=0.01,replay=0.01,duplicate=0.01,drop=0.01,reorder=0.01,delay=0.01,delay_ms=50,seed=1`.
    /// Counted in /metrics (sealbench_relay_adversary_total{action=...}).
    #[arg(long, value_name = "KEY=VALUE,...", hide_short_help = true)]
    pub adversary: Option<String>,

    /// A relay that reads: match the text of every unencrypted message (PLAIN,
    /// PLAIN_GROUP) against the keywords in FILE (one a line; blank and `#` lines
    /// skipped). End-to-end-encrypted messages cannot be read: they are counted as
    /// unreadable. Counted in /metrics (sealbench_relay_scanned_total, ...).
    #[arg(long, value_name = "FILE", conflicts_with = "scan_words")]
    pub scan: Option<PathBuf>,

    /// As --scan, with sealbench's generated list of N pseudo-words (e.g. 1000, 10000,
    /// 100000): the list `traffic.keyword_share` plants keywords from.
    #[arg(long, value_name = "N")]
    pub scan_words: Option<usize>,

    /// What the scan does with a message that matched: `count` it and route it, or
    /// `block` it (refused with CONTENT_BLOCKED, error code 20).
    #[arg(long, default_value = "count", value_name = "count|block")]
    pub scan_action: crate::relay::scan::ScanAction,
}

/// `sealbench crypto`.
#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Quick sweep (seconds rather than minutes): every AEAD at 64 B, 1 KiB and 16 KiB,
    /// every pattern once per Noise cipher, the protocol section at groups of 5 and 50. Without it: 16 B to
    /// 64 KiB plus 1350 B, every suite, groups of 5, 50 and 500 (minutes).
    #[arg(long)]
    pub quick: bool,

    /// Output directory [default: results/crypto-<UTC time>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Only these AEADs (comma-separated; `none` is the UNENCRYPTED baseline).
    #[arg(long, value_delimiter = ',', value_name = "AEAD,...", value_parser = choice::choice::<sealcore::AeadKind>())]
    pub aead: Vec<sealcore::AeadKind>,

    /// Backends to measure side by side (comma-separated) [default: rustcrypto]. A backend
    /// lacking an AEAD is skipped for it, with a note.
    #[arg(long, value_delimiter = ',', value_name = "BACKEND,...", value_parser = choice::choice::<sealcore::Backend>())]
    pub backend: Vec<sealcore::Backend>,

    /// Only these message sizes in bytes (comma-separated), instead of the plan's.
    #[arg(long, value_delimiter = ',', value_name = "BYTES,...", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub sizes: Vec<u32>,

    /// Do not draw plots (crypto.json and the table only).
    #[arg(long)]
    pub no_plots: bool,

    /// Protocol section: only these protocols (comma-separated: noise, olm, megolm, mls;
    /// `none` leaves the section out) [default: every protocol built in].
    #[arg(long, value_delimiter = ',', value_name = "PROTOCOL,...")]
    pub protocol: Vec<String>,

    /// Protocol section: group sizes in devices [default: 5,50,500; --quick: 5,50].
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u32).range(2..=2000))]
    pub group_sizes: Vec<u32>,
}

/// `sealbench calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// About a second instead of a few: fewer rounds (what a run takes by itself when it
    /// finds no calibration).
    #[arg(long)]
    pub quick: bool,

    /// Print the calibration as JSON on stdout (the cache is written as well).
    #[arg(long)]
    pub json: bool,

    /// Show the cached calibration without measuring.
    #[arg(long, conflicts_with = "quick")]
    pub show: bool,

    /// Also measure the floor of these traffic shapes, CONNECTIONS@RATE (msgs/s in all),
    /// comma-separated, e.g. 1000@5000,2000@40000: a minimal generator and relay moving
    /// that traffic (3 s each); a run of that shape reports its CPU per message as a
    /// multiple of it [default without --quick: 1000@5000,1000@10000].
    #[arg(long, value_delimiter = ',', value_name = "N@RATE,...", value_parser = parse_shape)]
    pub shape: Vec<(usize, f64)>,
}

/// `N@RATE` of `calibrate --shape`.
fn parse_shape(s: &str) -> Result<(usize, f64), String> {
    let (n, r) = s.split_once('@').ok_or_else(|| format!("`{s}`: write CONNECTIONS@RATE, e.g. 1000@5000"))?;
    let n: usize = n.trim().parse().map_err(|_| format!("`{s}`: `{n}` is not a number of connections"))?;
    let r: f64 = r.trim().parse().map_err(|_| format!("`{s}`: `{r}` is not a rate in msgs/s"))?;
    if n < 2 || n % 2 != 0 || n > 8000 || !(r > 0.0 && r <= 1e6) {
        return Err(format!("`{s}`: an even number of connections from 2 to 8,000, and a rate up to 1,000,000 msgs/s"));
    }
    Ok((n, r))
}

/// The flags of every command that runs a scenario (`run`, `matrix`, `capacity`),
/// flattened into each: one spelling, one meaning.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML), e.g. scenarios/quickstart.toml.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,

    /// Override any scenario field: --set traffic.rate=50 --set crypto.pattern=IK, a stage's
    /// field with --set stages.0.duration=10s (repeatable; an empty value removes the field).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,

    /// Number of clients (clients.count).
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,

    /// Measured duration with a unit, e.g. 30s (duration; for `capacity`, of each step).
    #[arg(long, value_name = "DURATION", value_parser = crate::results::figure::parse_duration)]
    pub duration: Option<Duration>,

    /// Multiply the whole timeline by this factor: duration, warm-up and every stage's
    /// duration (0.1 runs a staged scenario in a tenth of its time, same shape).
    #[arg(long, value_name = "FACTOR")]
    pub time_scale: Option<f64>,

    /// Relay: `embedded` or a ws:// or wss:// URL (relay.url).
    #[arg(long, value_name = "embedded|URL")]
    pub relay: Option<crate::scenario::RelayTarget>,

    /// wss:// only: trust the relay's certificate if this CA (PEM) signed it, instead of
    /// the built-in Mozilla roots (relay.ca).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// wss:// only, TEST RELAYS ONLY: accept any certificate, unverified (relay.insecure;
    /// recorded in summary.json as transport.insecure).
    #[arg(long)]
    pub insecure: bool,

    /// An external relay's metrics, http://HOST:PORT/metrics (relay.metrics): its
    /// process_cpu_seconds_total gives the relay's CPU per message.
    #[arg(long, value_name = "URL")]
    pub relay_metrics: Option<String>,

    /// Output directory [default: results/<UTC time>-<name>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Do not draw plots (nor report.html).
    #[arg(long)]
    pub no_plots: bool,

    /// Check everything that can be checked before connecting (the scenario, the
    /// overrides, the thresholds, this machine's limits), print what would run, and exit
    /// (0, or 2 as the run would) without connecting to anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Watching the run while it goes on.
    #[command(flatten)]
    pub live: live::LiveArgs,
}

impl ScenarioArgs {
    /// The shared flags as typed scenario edits (applied after the `--set` overrides).
    pub fn edits(&self) -> crate::scenario::Edits {
        crate::scenario::Edits {
            clients: self.clients,
            duration: self.duration,
            relay: self.relay.clone(),
            ca: self.ca.clone(),
            insecure: self.insecure,
            relay_metrics: self.relay_metrics.clone(),
            time_scale: self.time_scale,
            ..Default::default()
        }
    }
}

/// `sealbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Messages per second per conversation (traffic.rate; replaces an aggregate rate).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Transport AEAD (crypto.aead; `none` is the UNENCRYPTED baseline).
    #[arg(long, value_name = "AEAD", value_parser = choice::choice::<sealcore::AeadKind>())]
    pub aead: Option<sealcore::AeadKind>,

    /// Handshake pattern (crypto.pattern; `-pq`: hybrid post-quantum).
    #[arg(long, value_name = "PATTERN", value_parser = choice::choice::<sealcore::Pattern>())]
    pub pattern: Option<sealcore::Pattern>,

    /// ws or wss. With the embedded relay, wss serves TLS with a certificate generated at
    /// start, trusted exactly (relay.tls); with a URL, its scheme decides and this checks it.
    #[arg(long, value_name = "TRANSPORT", value_parser = choice::choice::<crate::scenario::Transport>())]
    pub transport: Option<crate::scenario::Transport>,

    /// Driver threads [default: one per core, or one per CPU of --cpus driver=LIST].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// The embedded relay's worker threads [default: one per core, or one per CPU of --cpus
    /// relay=LIST]. `--shards 1 --relay-threads 1` is the shape of the floor `calibrate
    /// --shape` measures (one generator thread, one relay thread). On a small machine it also
    /// costs less CPU per message than a thread per core, but one shard runs both ends of
    /// every handshake, so when clients connect fast its own queue shows in the handshake
    /// latency (docs/PERFORMANCE.md, "Fewer threads").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub relay_threads: Option<u16>,

    /// Pin the driver's shard threads and the embedded relay's threads to these CPUs, e.g.
    /// `driver=0,relay=1` or `driver=0-2,relay=3` (either part may be left out) [default:
    /// not pinned: every thread may run on every core]. The embedded relay then runs one
    /// worker thread per CPU it is given. summary.json's generator.cores says how the cores
    /// were shared.
    #[arg(long, value_name = "driver=LIST,relay=LIST", value_parser = crate::driver::cpus::CpuSplit::parse)]
    pub cpus: Option<crate::driver::cpus::CpuSplit>,

    /// Run part I of N of the scenario (a run split over processes or machines; `merge`
    /// combines the parts). Whole conversations per part. Also taken from the environment:
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) with SEALBENCH_SHARDS.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::scenario::Part>,

    /// The common steady start of a split run: every part starts sending then (wall clock;
    /// RFC 3339 such as 2026-11-26T12:00:00Z, or Unix seconds). Also SEALBENCH_START_AT.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,

    /// The scenario and the flags every command that runs one takes.
    #[command(flatten)]
    pub common: ScenarioArgs,

    /// Run the scenario N times, one after the other (nothing interleaved), into
    /// DIR/run-1 … DIR/run-N, with DIR/repeats.json: each figure's mean and spread across
    /// the runs. `compare` of two such directories judges on the between-run spread, which
    /// catches what one run's own seconds cannot (a whole-run shift). Exit 99 when any
    /// run's thresholds failed.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
}

impl RunArgs {
    /// This process's part: `--shard`, else the Indexed Job's environment.
    ///
    /// # Errors
    /// A bad environment value (named).
    pub fn part(&self) -> Result<Option<crate::scenario::Part>, String> {
        if self.shard.is_some() {
            return Ok(self.shard);
        }
        crate::scenario::Part::from_env(
            std::env::var("JOB_COMPLETION_INDEX").ok(),
            std::env::var("SEALBENCH_SHARDS").ok(),
        )
    }

    /// The common start: `--start-at`, else SEALBENCH_START_AT.
    ///
    /// # Errors
    /// A time that is neither RFC 3339 nor Unix seconds.
    pub fn start_at(&self) -> Result<Option<std::time::SystemTime>, String> {
        let Some(text) = self.start_at.clone().or_else(|| std::env::var("SEALBENCH_START_AT").ok()) else {
            return Ok(None);
        };
        crate::timefmt::parse_wall_clock(&text).map(Some)
    }
    /// The short flags as typed scenario edits (applied after the `--set` overrides).
    pub fn edits(&self) -> crate::scenario::Edits {
        crate::scenario::Edits {
            rate: self.rate,
            aead: self.aead,
            pattern: self.pattern,
            transport: self.transport,
            ..self.common.edits()
        }
    }
}

/// `sealbench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The parts' result directories (each holds summary.json, latency.hlog,
    /// timeseries.csv).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged result goes.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Do not draw plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Merge even when parts are missing (without it, a missing part is refused, exit 2):
    /// the result then says it is PARTIAL wherever it is shown.
    #[arg(long)]
    pub partial: bool,
}

/// `sealbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Baseline: a result directory (of run, crypto, matrix or capacity) or its
    /// summary.json / crypto.json / matrix.json / capacity.json.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The result to judge against the baseline.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Regression rule, repeatable: 'e2e.p99 > +10%', 'throughput.delivered_per_s < -5%',
    /// 'crypto.seal_ns[chacha20-poly1305,1024] > +5%', 'messages.lost > +0' (`*` matches
    /// any text). Without any, a default set for the result kind applies. The grammar:
    /// docs/THRESHOLDS.md.
    #[arg(long = "fail-on", value_name = "RULE")]
    pub fail_on: Vec<String>,
    /// Compare even when the two runs measured different loads (clients, size, rate).
    #[arg(long)]
    pub force: bool,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `sealbench matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The scenario every cell runs (same seed, same schedule), its overrides (applied to
    /// every cell), and the flags every command that runs a scenario takes.
    #[command(flatten)]
    pub common: ScenarioArgs,
    /// AEADs to compare (comma-separated) [default: the scenario's]. The UNENCRYPTED
    /// `none` baseline is added unless --no-baseline.
    #[arg(long, value_delimiter = ',', value_name = "AEAD,...", value_parser = choice::choice::<sealcore::AeadKind>())]
    pub aead: Vec<sealcore::AeadKind>,
    /// Handshake patterns (comma-separated; `-pq`: hybrid post-quantum) [default: the
    /// scenario's].
    #[arg(long, value_delimiter = ',', value_name = "PATTERN,...", value_parser = choice::choice::<sealcore::Pattern>())]
    pub pattern: Vec<sealcore::Pattern>,
    /// Transport modes (comma-separated; `ratchet` is the old name of kdf-chain)
    /// [default: the scenario's].
    #[arg(long, value_delimiter = ',', value_name = "MODE,...", value_parser = choice::choice::<crate::scenario::Mode>())]
    pub mode: Vec<crate::scenario::Mode>,
    /// Backends (comma-separated) [default: the scenario's].
    #[arg(long, value_delimiter = ',', value_name = "BACKEND,...", value_parser = choice::choice::<sealcore::Backend>())]
    pub backend: Vec<sealcore::Backend>,
    /// What carries the WebSocket (comma-separated) [default: the scenario's].
    /// wss on the embedded relay serves TLS with a certificate generated at start; an
    /// external relay serves one scheme, so its URL decides and only that one is allowed.
    #[arg(long, value_delimiter = ',', value_name = "TRANSPORT,...", value_parser = choice::choice::<crate::scenario::Transport>())]
    pub transport: Vec<crate::scenario::Transport>,
    /// Messaging protocols (comma-separated; `plaintext` is the UNENCRYPTED baseline)
    /// [default: the scenario's]. `noise` cells vary over
    /// --aead/--pattern/--mode and are the reference; another protocol is one cell per
    /// transport (its own cipher suite); a group protocol (megolm, mls) runs its groups with
    /// relay fan-out.
    #[arg(long, value_delimiter = ',', value_name = "PROTOCOL,...", value_parser = choice::choice::<sealproto::Protocol>())]
    pub protocol: Vec<sealproto::Protocol>,
    /// Message franking (comma-separated: off, on) [default: the scenario's]: each `noise`
    /// cell runs once per value (`on`: crypto.franking, with the scenario's
    /// traffic.report_share; `off`: no franking, no reports); other protocols run `off`.
    #[arg(long, value_delimiter = ',', value_name = "off,on", value_parser = on_off)]
    pub franking: Vec<bool>,
    /// Runs per cell, interleaved so machine drift favours no cell (1 to 100).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Leave out the `none` baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

/// `sealbench capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The scenario to scale (its traffic shape, crypto and relay), its overrides, and the
    /// flags every command that runs a scenario takes (`--duration`: each step's measured
    /// time, default 5s).
    #[command(flatten)]
    pub common: ScenarioArgs,
    /// Service-level objective, repeatable: 'e2e.p99<20ms', 'messages.lost==0' (a
    /// threshold: grammar in docs/THRESHOLDS.md). Added to the scenario's thresholds,
    /// which are the SLOs by default.
    #[arg(long = "slo", value_name = "EXPR")]
    pub slo: Vec<String>,
    /// Search against the --slo expressions only, not the scenario's thresholds.
    #[arg(long, requires = "slo")]
    pub slo_only: bool,
    /// Trust every step's first run: do not run a step that broke an SLO again, nor the
    /// answer (by default a break counts only when two runs of it broke, and the answer
    /// must have held twice, so that one lag spike cannot decide).
    #[arg(long)]
    pub no_confirm: bool,
    /// First offered aggregate rate (msgs/s) [default: the scenario's]; with --search
    /// clients, the first client count.
    #[arg(long)]
    pub start: Option<f64>,
    /// Highest rate (or client count) to try.
    #[arg(long)]
    pub max: Option<f64>,
    /// Growth factor while the SLO holds.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Stop bisecting when the bracket is narrower than this fraction.
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Warm-up of each step.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = crate::results::figure::parse_duration)]
    pub warmup: std::time::Duration,
    /// At most this many steps (confirmations included).
    #[arg(long, default_value_t = 24)]
    pub max_steps: usize,
    /// What the search grows: the offered `rate` (msgs/s, at the scenario's clients), or
    /// the number of `clients` (at the scenario's per-conversation rate).
    #[arg(long, value_enum, default_value_t = SearchOver::Rate)]
    pub search: SearchOver,
    /// `runs`: one run per step, bisecting after the first failure. `ramp`: one run
    /// whose stages step through the growth from --start by --factor to --max (each
    /// --duration long, after one --warmup stage), each stage judged as a step; no
    /// bisection, no reconnection between steps, and the relay's state carries over.
    #[arg(long, value_enum, default_value_t = CapacityMode::Runs)]
    pub method: CapacityMode,
    /// Deprecated spelling of `--duration` here (each step's measured time); still
    /// accepted for one release.
    #[arg(long, value_name = "DURATION", value_parser = crate::results::figure::parse_duration, hide = true)]
    pub step: Option<Duration>,
    /// The transport (ws or wss; with the embedded relay, wss serves TLS).
    #[arg(long, value_name = "TRANSPORT", value_parser = choice::choice::<crate::scenario::Transport>())]
    pub transport: Option<crate::scenario::Transport>,
}

/// How `capacity` runs its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapacityMode {
    /// One run per step (the search bisects after the first failure).
    Runs,
    /// One run, one stage per step (a stepped ramp; no bisection).
    Ramp,
}

/// What `capacity` grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchOver {
    /// The offered aggregate rate, at the scenario's clients.
    Rate,
    /// The number of clients, at the scenario's per-conversation rate.
    Clients,
}

impl CapacityArgs {
    /// Each step's measured time: `--duration`, else the deprecated `--step`, else 5 s.
    pub fn step_duration(&self) -> Duration {
        self.common.duration.or(self.step).unwrap_or(Duration::from_secs(5))
    }

    /// True when the search grows the number of clients.
    pub fn over_clients(&self) -> bool {
        self.search == SearchOver::Clients
    }
}

/// `on` / `off` (a matrix dimension that is a switch).
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("`{other}`: use on or off")),
    }
}
