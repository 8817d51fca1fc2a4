//! The command line (clap derive). Parsing only: every command's work lives in its module.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub mod live;

/// sealbench: load and performance harness for end-to-end-encrypted messaging.
///
/// Simulated clients run real Noise handshakes through a relay over WebSockets and send
/// real AEAD-sealed messages; sealbench measures every stage with HdrHistograms.
#[derive(Debug, Parser)]
#[command(name = "sealbench", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

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

/// Worst-case memory of `sealbench relay`, stated once for `relay --help` (and
/// `docs/PROTOCOL.md` §4.6 says the same).
pub const RELAY_MEMORY_HELP: &str = "\
Worst-case memory (every limit reached at once):
  max_connections × (6 KiB + read_buffer + 16 KiB write buffer + 4 × max_message
                     + queue_bytes + 32 B × queue_messages)
  + 2 × mailbox_total_bytes   (the second half only for acknowledged frames put back
                               when their connection closed)
  + 100 B × max_known_clients + 400 B × 1,000,000 keys + 24 B × 64 × max_connections (groups)
With the defaults (19,936 connections at a 20,000-file limit): 19,936 × 8.4 MiB ≈ 164 GiB
+ 2 GiB + 0.1 GB + 0.4 GB + 30 MB ≈ 166 GiB. The queues dominate: lower --queue-bytes or
--max-connections to fit a machine (e.g. --queue-bytes 1048576 gives ≈ 30 GiB).";

/// `sealbench relay`.
#[derive(Debug, Args)]
#[command(after_long_help = RELAY_MEMORY_HELP)]
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

    /// Connections held at once; further upgrades get HTTP 503
    /// [default: the open-file limit minus 64].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds a new connection has to upgrade and send HELLO.
    #[arg(long, default_value_t = relay_defaults().handshake_timeout.as_secs_f64(), value_name = "SECONDS")]
    pub handshake_timeout: f64,

    /// Seconds of silence before a connection is closed (4002); a ping goes out at half.
    #[arg(long, default_value_t = relay_defaults().idle_timeout.as_secs_f64(), value_name = "SECONDS")]
    pub idle_timeout: f64,

    /// Groups one client may be in.
    #[arg(long, default_value_t = relay_defaults().max_groups_per_client, value_name = "N")]
    pub max_groups: usize,

    /// Members one group may have.
    #[arg(long, default_value_t = relay_defaults().max_group_members, value_name = "N")]
    pub max_group_members: usize,

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

    /// Hold every message this many milliseconds before routing it. For comparisons and
    /// tests of latency measurement only: it makes the relay deliberately slow.
    #[arg(
        long,
        default_value_t = relay_defaults().delay.as_secs_f64() * 1e3,
        value_name = "MS",
        hide_short_help = true
    )]
    pub delay_ms: f64,

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
    /// Quick sweep (~19 s): every AEAD at 64 B, 1 KiB and 16 KiB, every pattern once per
    /// Noise cipher, the protocol section at groups of 5 and 50. Without it: 16 B to
    /// 64 KiB plus 1350 B, every suite, groups of 5, 50 and 500 (~2 minutes).
    #[arg(long)]
    pub quick: bool,

    /// Output directory [default: results/crypto-<UTC time>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Only these AEADs (comma-separated): chacha20-poly1305, xchacha20-poly1305,
    /// aes-128-gcm, aes-256-gcm, none (the UNENCRYPTED baseline).
    #[arg(long, value_delimiter = ',', value_name = "AEAD,...")]
    pub aead: Vec<sealcore::AeadKind>,

    /// Backends to measure side by side (comma-separated): rustcrypto, ring, aws-lc-rs
    /// [default: rustcrypto]. A backend lacking an AEAD is skipped for it, with a note.
    #[arg(long, value_delimiter = ',', value_name = "BACKEND,...")]
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
}

/// `sealbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML), e.g. scenarios/quickstart.toml.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,

    /// Override any scenario field: --set traffic.rate=50 --set crypto.pattern=IK (repeatable;
    /// an empty value removes the field).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,

    /// Number of clients (clients.count).
    #[arg(long)]
    pub clients: Option<usize>,

    /// Measured duration, e.g. 30s (duration).
    #[arg(long, value_name = "DURATION", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Messages per second per conversation (traffic.rate; replaces an aggregate rate).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Transport AEAD (crypto.aead): chacha20-poly1305, xchacha20-poly1305, aes-128-gcm,
    /// aes-256-gcm, or none (the UNENCRYPTED baseline).
    #[arg(long)]
    pub aead: Option<sealcore::AeadKind>,

    /// Handshake pattern (crypto.pattern): NN, NK, XX, IK.
    #[arg(long)]
    pub pattern: Option<sealcore::Pattern>,

    /// Relay: `embedded` or a ws:// or wss:// URL (relay.url).
    #[arg(long, value_name = "embedded|URL")]
    pub relay: Option<crate::scenario::RelayTarget>,

    /// ws or wss. With the embedded relay, wss serves TLS with a certificate generated at
    /// start, trusted exactly (relay.tls); with a URL, its scheme decides and this checks it.
    #[arg(long, value_name = "ws|wss")]
    pub transport: Option<crate::scenario::Transport>,

    /// wss:// only: trust the relay's certificate if this CA (PEM) signed it, instead of
    /// the built-in Mozilla roots (relay.ca).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// wss:// only, TEST RELAYS ONLY: accept any certificate, unverified (relay.insecure;
    /// recorded in summary.json as transport.insecure).
    #[arg(long)]
    pub insecure: bool,

    /// Output directory [default: results/<UTC time>-<name>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Driver threads [default: one per core, or one per CPU of --cpus driver=LIST].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Pin the driver's shard threads and the embedded relay's threads to these CPUs, e.g.
    /// `driver=0,relay=1` or `driver=0-2,relay=3` (either part may be left out) [default:
    /// not pinned: every thread may run on every core]. The embedded relay then runs one
    /// worker thread per CPU it is given. summary.json's generator.cores says how the cores
    /// were shared.
    #[arg(long, value_name = "driver=LIST,relay=LIST", value_parser = crate::driver::cpus::CpuSplit::parse)]
    pub cpus: Option<crate::driver::cpus::CpuSplit>,

    /// Do not draw plots.
    #[arg(long)]
    pub no_plots: bool,

    /// Run part I of N of the scenario (a run split over processes or machines; `merge`
    /// combines the parts). Whole conversations per part. Also taken from the environment:
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) with SEALBENCH_SHARDS.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::scenario::Part>,

    /// The common steady start of a split run: every part starts sending then (wall clock;
    /// RFC 3339 such as 2026-11-26T12:00:00Z, or Unix seconds). Also SEALBENCH_START_AT.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,

    /// Check the scenario, the overrides and the part, print what this process would run,
    /// and exit (0) without connecting to anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Watching the run while it goes on.
    #[command(flatten)]
    pub live: live::LiveArgs,
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
            clients: self.clients,
            duration: self.duration,
            rate: self.rate,
            aead: self.aead,
            pattern: self.pattern,
            relay: self.relay.clone(),
            transport: self.transport,
            ca: self.ca.clone(),
            insecure: self.insecure,
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
    /// any text). Without any, a default set for the result kind applies.
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
    /// The scenario every cell runs (same seed, same schedule).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// AEADs to compare (comma-separated) [default: the scenario's]. The UNENCRYPTED
    /// `none` baseline is added unless --no-baseline.
    #[arg(long, value_delimiter = ',')]
    pub aead: Vec<sealcore::AeadKind>,
    /// Handshake patterns (comma-separated: NN, NK, XX, IK, and the hybrid post-quantum
    /// XX-pq, IK-pq) [default: the scenario's].
    #[arg(long, value_delimiter = ',')]
    pub pattern: Vec<sealcore::Pattern>,
    /// Transport modes (comma-separated: noise, kdf-chain; `ratchet` is the old name of
    /// kdf-chain) [default: the scenario's].
    #[arg(long, value_delimiter = ',')]
    pub mode: Vec<crate::scenario::Mode>,
    /// Backends (comma-separated: rustcrypto, ring, aws-lc-rs) [default: the scenario's].
    #[arg(long, value_delimiter = ',', value_name = "BACKEND,...")]
    pub backend: Vec<sealcore::Backend>,
    /// What carries the WebSocket (comma-separated: ws, wss) [default: the scenario's].
    /// wss on the embedded relay serves TLS with a certificate generated at start; an
    /// external relay serves one scheme, so its URL decides and only that one is allowed.
    #[arg(long, value_delimiter = ',', value_name = "ws,wss")]
    pub transport: Vec<crate::scenario::Transport>,
    /// Messaging protocols (comma-separated: noise, olm, megolm, mls, plaintext — the
    /// UNENCRYPTED baseline) [default: the scenario's]. `noise` cells vary over
    /// --aead/--pattern/--mode and are the reference; another protocol is one cell per
    /// transport (its own cipher suite); a group protocol (megolm, mls) runs its groups with
    /// relay fan-out.
    #[arg(long, value_delimiter = ',', value_name = "PROTOCOL,...")]
    pub protocol: Vec<sealproto::Protocol>,
    /// Message franking (comma-separated: off, on) [default: the scenario's]: each `noise`
    /// cell runs once per value (`on`: crypto.franking, with the scenario's
    /// traffic.report_share; `off`: no franking, no reports); other protocols run `off`.
    #[arg(long, value_delimiter = ',', value_name = "off,on", value_parser = on_off)]
    pub franking: Vec<bool>,
    /// Runs per cell, interleaved so machine drift favours no cell.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Leave out the `none` baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Scenario overrides applied to every cell (as for `run`).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Output directory [default: results/<UTC time>-matrix-<name>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `sealbench capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The scenario to scale (its traffic shape, crypto and relay).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Service-level objective, repeatable: 'e2e.p99<20ms', 'messages.lost==0'.
    #[arg(long = "slo", value_name = "EXPR", required = true)]
    pub slo: Vec<String>,
    /// First offered aggregate rate (msgs/s) [default: the scenario's]; with --clients,
    /// the first client count.
    #[arg(long)]
    pub start: Option<f64>,
    /// Highest rate (or client count) to try.
    #[arg(long)]
    pub max: Option<f64>,
    /// Search over the number of clients at the scenario's per-conversation rate instead.
    #[arg(long)]
    pub clients: bool,
    /// Growth factor while the SLO holds.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Stop bisecting when the bracket is narrower than this fraction.
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Measured time of each step.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub step: std::time::Duration,
    /// Warm-up of each step.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub warmup: std::time::Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 16)]
    pub max_steps: usize,
    /// `runs`: one run per step, bisecting after the first failure. `ramp`: one run
    /// whose stages step through the growth from --start by --factor to --max (each
    /// --step long, after one --warmup stage), each stage judged as a step; no bisection,
    /// no reconnection between steps, and the relay's state carries over.
    #[arg(long, value_enum, default_value_t = CapacityMode::Runs)]
    pub mode: CapacityMode,
    /// Scenario overrides (as for `run`).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Output directory [default: results/<UTC time>-capacity-<name>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// How `capacity` runs its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapacityMode {
    /// One run per step (the search bisects after the first failure).
    Runs,
    /// One run, one stage per step (a stepped ramp; no bisection).
    Ramp,
}

/// `on` / `off` (a matrix dimension that is a switch).
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("`{other}`: use on or off")),
    }
}
