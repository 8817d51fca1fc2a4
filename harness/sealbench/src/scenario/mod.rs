//! Scenario files: TOML, unknown fields refused, every field overridable with
//! `--set path=value`. A scenario is parsed once, into types: every choice field is an
//! enum (spelled in files as before) refused with its line when it is wrong. A [`Plan`] —
//! the scenario checked as a whole, with what the driver derives from it — is made once
//! and carried through driver, summary, matrix and capacity.
//!
//! # Layout
//! - this module — the scenario's fields, each with its meaning and default (the scenario
//!   reference `--help` and the README point to).
//! - [`choice`] — the choice types (`Mode`, `Arrival`, `Senders`, `RelayTarget`, …).
//! - `load` — text → [`Scenario`]: TOML, `--set` overrides, errors with file, line and field.
//! - `plan` — [`Scenario`] → [`Plan`]: whole-scenario checks and derived values.
//! - `transport` — `ws` or `wss`, and the `[relay]` TLS fields (`tls`, `ca`, `insecure`).
//! - [`stages`] — `[[stages]]` (load that changes within a run) and the rate [`Profile`]
//!   the open-loop schedule follows.
//! - `franking` — message franking (`crypto.franking`, `traffic.report_share`), checked.
//! - `reading` — the relay that reads: messages' text and keywords (`traffic.content`,
//!   `traffic.keyword_share`) and the embedded relay's scan (`relay.scan`), checked together.

pub mod choice;
mod franking;
mod load;
mod part;
mod plan;
pub mod population;
mod reading;
pub mod stages;
mod tags;
mod transport;

use crate::target::Wire;
pub use choice::{
    Arrival, Content, ConversationKind, Fanout, Mode, OLD_KDF_CHAIN_NAME, Pairing, RelayTarget, Senders, Transport,
    WsUrl,
};
pub use franking::FrankingPlan;
pub use part::Part;
pub use plan::{MAX_SIZE, MIN_SIZE, Plan, ProtocolPlan, unencrypted};
pub use population::Population;
pub use reading::{ContentPlan, PLANT_FROM, ScanPlan};
use sealcore::{AeadKind, Backend, HashKind, Pattern};
use serde::{Deserialize, Serialize};
pub use stages::{Profile, Span, Stage};
use std::time::Duration;

/// A load scenario, resolved (defaults filled in).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in the result directory name.
    pub name: String,
    /// Seed of every random choice (pairing, arrival times, sizes).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Length of the measured steady phase. Required without `stages`; left out (zero)
    /// with them: the run then lasts the sum of the stages.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Duration::is_zero")]
    pub duration: Duration,
    /// Traffic before the measured phase: sent and accounted, not in the histograms. Left
    /// out with `stages` (a leading stage with `measure = false` is the warm-up).
    #[serde(default, with = "humantime_serde")]
    pub warmup: Duration,
    /// Time to drain in-flight messages after sending stops; what has not arrived then is lost.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// The simulated clients.
    pub clients: Clients,
    /// Who talks to whom.
    #[serde(default)]
    pub conversations: Conversations,
    /// What they send, and how often.
    #[serde(default)]
    pub traffic: Traffic,
    /// Handshake and transport cryptography.
    #[serde(default)]
    pub crypto: Crypto,
    /// Which relay.
    #[serde(default)]
    pub relay: RelayChoice,
    /// Users going offline and coming back (absent: everyone stays online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    /// Pass/fail expressions, e.g. `e2e.p99 < 25ms`.
    #[serde(default)]
    pub thresholds: Vec<String>,
    /// Load that changes within the run: stages of a target aggregate rate, ramped
    /// linearly (see [`stages`]). Instead of `duration`, `warmup` and the traffic rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
}

fn default_seed() -> u64 {
    1
}
fn default_cooldown() -> Duration {
    Duration::from_secs(2)
}

/// The simulated clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Clients {
    /// How many.
    pub count: usize,
    /// Connections opened per second (0: as fast as possible).
    #[serde(default)]
    pub connect_rate: f64,
    /// Source addresses to connect from, each `127.0.0.x` or a range `127.0.0.2-127.0.0.9`
    /// (each address has ~28k ephemeral ports towards one relay address).
    #[serde(default = "default_sources")]
    pub source_addresses: Vec<String>,
    /// Devices per user, as a distribution (absent: one device each). Every device is one
    /// client (one connection); `count` counts devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DevicesWeight>,
}

/// One entry of the devices-per-user distribution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DevicesWeight {
    /// Devices of such a user (at least 1).
    pub devices: usize,
    /// Relative weight.
    pub weight: f64,
}

/// One entry of the group-size distribution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupSize {
    /// Users in such a group (at least 2).
    pub size: usize,
    /// Relative weight (share of groups, not of users).
    pub weight: f64,
}

/// Users who go offline and come back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Share of the users whose devices churn (0..=1); the others stay online.
    #[serde(default)]
    pub share: f64,
    /// Mean length of an online session of a churning device (exponential).
    #[serde(default = "default_online", with = "humantime_serde")]
    pub online: Duration,
    /// Mean length of an offline period (exponential).
    #[serde(default = "default_offline", with = "humantime_serde")]
    pub offline: Duration,
    /// A reconnect storm: many devices drop at once and come back within a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<Storm>,
}

fn default_online() -> Duration {
    Duration::from_secs(30)
}
fn default_offline() -> Duration {
    Duration::from_secs(5)
}

/// A reconnect storm (a relay restart, a mobile network blip).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Storm {
    /// When, after the steady phase starts (warm-up included).
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// Share of all online devices that drop (0..=1).
    pub share: f64,
    /// They come back at evenly random times within this window.
    #[serde(with = "humantime_serde")]
    pub within: Duration,
}

fn default_sources() -> Vec<String> {
    vec!["127.0.0.1".into()]
}

/// How users are put into conversations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Conversations {
    /// Conversation shape. Only `pairs` (1:1) for now.
    #[serde(default)]
    pub kind: ConversationKind,
    /// Who meets whom: `adjacent` (users in order) or `random` (a seeded shuffle).
    #[serde(default)]
    pub pairing: Pairing,
    /// `groups` / `mix`: users per group, as a distribution of sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_sizes: Vec<GroupSize>,
    /// `mix`: the share of users in groups (the rest are in 1:1 conversations).
    #[serde(default = "default_group_share")]
    pub group_share: f64,
    /// How a group message reaches the members: `client` or `relay` fan-out.
    #[serde(default)]
    pub fanout: Fanout,
    /// Members of each group who send (0: every member). Each sending device needs a
    /// pairwise session with every other device of its group.
    #[serde(default = "default_group_senders")]
    pub group_senders: usize,
}

fn default_group_share() -> f64 {
    0.5
}
fn default_group_senders() -> usize {
    4
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations {
            kind: ConversationKind::default(),
            pairing: Pairing::default(),
            group_sizes: Vec::new(),
            group_share: default_group_share(),
            fanout: Fanout::default(),
            group_senders: default_group_senders(),
        }
    }
}

/// One entry of a message-size distribution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SizeWeight {
    /// Plaintext bytes (at least 24: the timing header).
    pub size: usize,
    /// Relative weight.
    pub weight: f64,
}

/// What is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Messages per second per conversation (both directions together); 1 when neither
    /// this nor `aggregate_rate` is set. Not together with `aggregate_rate`, nor with
    /// `stages` (each stage has its own rate).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Messages per second over all conversations (instead of `rate`).
    #[serde(default)]
    pub aggregate_rate: Option<f64>,
    /// `constant` (evenly spaced) or `poisson` (exponential gaps).
    #[serde(default)]
    pub arrival: Arrival,
    /// Fixed plaintext size in bytes (≥ 24). Not together with `sizes` in a file.
    #[serde(default = "default_size")]
    pub size: usize,
    /// A size distribution instead of `size`.
    #[serde(default)]
    pub sizes: Vec<SizeWeight>,
    /// `initiator` (only the initiator sends), `alternating` (turns), `both` (independently).
    #[serde(default)]
    pub senders: Senders,
    /// The schedule's timer granularity: a shard's timer wakes at most once per tick and
    /// sends every message that fell due since, each stamped with its own intended time
    /// (so the wait shows in schedule lag and in every latency measured from intended
    /// time). `0s` wakes for every message: on this kind of VM a wake-up costs more CPU
    /// than a loopback hop (`sealbench calibrate`), so the default batches what falls due
    /// within 200 µs.
    #[serde(default = "default_tick", with = "humantime_serde")]
    pub tick: Duration,
    /// What fills a message after its timing stamp: `zeros` (the default) or `text` —
    /// seeded pseudo-words that a scanning relay (`relay.scan`) can match, the same bytes
    /// whatever the protocol (end-to-end encrypted, they are what is sealed).
    #[serde(default, skip_serializing_if = "is_default")]
    pub content: Content,
    /// `content = "text"`: the share of messages (0..=1) that carry one keyword of the
    /// generated scan list (one of its first 1,000 words, so a list of `relay.scan.words`
    /// of 1,000 or more holds it; with fewer words, one of those).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keyword_share: f64,
    /// With `crypto.franking`: the share of franked messages (0..=1) their recipient
    /// reports to the relay (a REPORT it verifies; `docs/PROTOCOL.md` §6.1). Which ones is
    /// drawn from the run's seed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub report_share: f64,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_tick() -> Duration {
    Duration::from_micros(200)
}

fn default_size() -> usize {
    256
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            rate: None,
            aggregate_rate: None,
            arrival: Arrival::default(),
            size: default_size(),
            sizes: Vec::new(),
            senders: Senders::default(),
            tick: default_tick(),
            content: Content::default(),
            keyword_share: 0.0,
            report_share: 0.0,
        }
    }
}

impl Traffic {
    /// Sets the rate per conversation (and drops an aggregate rate).
    pub fn set_rate(&mut self, per_conversation: f64) {
        self.rate = Some(per_conversation);
        self.aggregate_rate = None;
    }

    /// Sets the aggregate rate (and drops a per-conversation rate).
    pub fn set_aggregate_rate(&mut self, total: f64) {
        self.aggregate_rate = Some(total);
        self.rate = None;
    }
}

/// Handshake and transport cryptography.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Crypto {
    /// `NN`, `NK`, `XX`, `IK`.
    #[serde(default = "default_pattern", with = "choice::by_name")]
    pub pattern: Pattern,
    /// Transport AEAD; `none` is the UNENCRYPTED baseline.
    #[serde(default = "default_aead", with = "choice::by_name")]
    pub aead: AeadKind,
    /// `SHA256` or `BLAKE2s`.
    #[serde(default = "default_hash", with = "choice::by_name")]
    pub hash: HashKind,
    /// `noise` or `kdf-chain` (formerly `ratchet`, still read).
    #[serde(default)]
    pub mode: Mode,
    /// The library that implements it: `rustcrypto` (default), `ring`, `aws-lc-rs`.
    #[serde(default, with = "choice::by_name", skip_serializing_if = "is_default_backend")]
    pub backend: Backend,
    /// noise mode: rekey every N messages (0: never).
    #[serde(default)]
    pub rekey_every: u64,
    /// The messaging protocol: `noise` (the default: the Noise handshake and transport
    /// above), `olm`, `megolm` or `mls` (docs/PROTOCOL.md §5).
    #[serde(default, with = "choice::by_name")]
    pub protocol: sealproto::Protocol,
    /// megolm: a sender starts a new group session (and shares its key again) after this
    /// many messages; 0: never by count. Matrix clients rotate after 100 by default.
    #[serde(default = "default_rotate_after")]
    pub megolm_rotate_after: u32,
    /// megolm: after every this many messages of its group, a member device that does not
    /// send leaves it; every sender rotates its session at once and shares the new key with
    /// the remaining members only (the departed device must not read what follows); 0: never.
    #[serde(default)]
    pub megolm_leave_every: u32,
    /// mls: the group's creator commits a self-update (fresh leaf keys) after every this
    /// many messages of its group; 0: never.
    #[serde(default = "default_self_update")]
    pub mls_self_update_every: u32,
    /// mls: membership churn during traffic. After every this many messages of its group
    /// the creator commits a change: it removes a member that does not send (a commit), or
    /// re-adds the one it removed last (a commit and a Welcome, from a key package that
    /// member published afresh and the creator claimed from the directory); 0: never.
    #[serde(default)]
    pub mls_churn_every: u32,
    /// Message franking (`noise` conversation and group messages on sealbench's wire): each
    /// message carries a commitment its recipient checks and the relay stamps, so that a
    /// recipient can report it verifiably (`traffic.report_share`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub franking: bool,
}

fn default_rotate_after() -> u32 {
    100
}

fn default_self_update() -> u32 {
    50
}

fn is_default_backend(b: &Backend) -> bool {
    *b == Backend::default()
}

fn default_pattern() -> Pattern {
    Pattern::XX
}
fn default_aead() -> AeadKind {
    AeadKind::ChaCha20Poly1305
}
fn default_hash() -> HashKind {
    HashKind::Sha256
}

impl Default for Crypto {
    fn default() -> Self {
        Crypto {
            pattern: default_pattern(),
            aead: default_aead(),
            hash: default_hash(),
            mode: Mode::default(),
            backend: Backend::default(),
            rekey_every: 0,
            protocol: sealproto::Protocol::default(),
            megolm_rotate_after: default_rotate_after(),
            megolm_leave_every: 0,
            mls_self_update_every: default_self_update(),
            mls_churn_every: 0,
            franking: false,
        }
    }
}

/// Which relay the clients use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayChoice {
    /// `embedded` (a reference relay in this process, on 127.0.0.1) or a `ws://` or
    /// `wss://` URL.
    #[serde(default)]
    pub url: RelayTarget,
    /// The wire protocol the target at `url` speaks: `sealbench` (the reference relay's,
    /// the default) or `mqtt` (MQTT 3.1.1 over WebSocket: a broker such as Mosquitto). A
    /// scenario that needs what the wire lacks (its capability table,
    /// `target::Capabilities`) is refused before anything connects.
    #[serde(default, skip_serializing_if = "is_sealbench_wire")]
    pub wire: Wire,
    /// Embedded relay only: serve `wss://` with a certificate generated at start (for
    /// 127.0.0.1 and localhost), which the clients trust exactly (not `insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// A `wss://` URL only: trust the relay's certificate if this CA (PEM file, one or
    /// more certificates) signed it, *instead of* the built-in Mozilla roots. Relative to
    /// the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// A `wss://` URL only: accept any certificate (self-signed test relays). The run
    /// says so on the console and in `summary.json` (`transport.insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// External relay only: its metrics endpoint, `http://HOST:PORT/metrics` (as served by
    /// `sealbench relay --metrics`, or any exporter with the standard
    /// `process_cpu_seconds_total`): read at the start and the end of sending, so that the
    /// run reports the relay's CPU per message (`generator.relay_cpu_us_per_msg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Ask the relay for an ACK per message (measures `relay_ack`).
    #[serde(default)]
    pub ack: bool,
    /// Embedded relay only: hold every message this long (deliberately slow relay).
    #[serde(default, with = "humantime_serde")]
    pub delay: Duration,
    /// External relay started with `--auth-secret`: the same secret, so that clients can
    /// present HMAC tokens. Not written to result files.
    #[serde(default, skip_serializing)]
    pub auth_secret: Option<String>,
    /// Embedded relay only, for testing the security accounting under load: tamper with,
    /// replay, duplicate, drop, reorder or delay a fraction of the transport messages, e.g.
    /// `"tamper=0.01,replay=0.01,drop=0.01,seed=7"` (as `sealbench relay --adversary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversary: Option<String>,
    /// Embedded relay only: the relay that reads — it scans the plaintext of every
    /// unencrypted message (`crypto.protocol = "plaintext"`) for keywords, e.g.
    /// `{ words = 10000, action = "count" }` (as `sealbench relay --scan-words`, `--scan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanChoice>,
}

/// `relay.scan`: the keyword list of a relay that reads, and what it does with a match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScanChoice {
    /// A generated list of this many words (1 to 1,000,000; e.g. 1000, 10000, 100000):
    /// seeded pseudo-words, the list `traffic.keyword_share` plants from. Not with `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<usize>,
    /// Or a file of keywords, one a line (blank lines and `#` lines skipped), relative to
    /// the working directory. Not with `words`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
    /// `count` (the default: count matches and route the message) or `block` (refuse a
    /// message that matched with CONTENT_BLOCKED).
    #[serde(default)]
    pub action: crate::relay::scan::ScanAction,
}

fn is_sealbench_wire(w: &Wire) -> bool {
    *w == Wire::Sealbench
}

/// Typed edits applied after the file and its `--set` overrides: the short flags of
/// `run`, and what `matrix` and `capacity` change per cell or step.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// `clients.count`.
    pub clients: Option<usize>,
    /// `duration`.
    pub duration: Option<Duration>,
    /// `traffic.rate` (replaces an aggregate rate).
    pub rate: Option<f64>,
    /// `crypto.aead`.
    pub aead: Option<AeadKind>,
    /// `crypto.pattern`.
    pub pattern: Option<Pattern>,
    /// `relay.url`.
    pub relay: Option<RelayTarget>,
    /// `relay.tls` (embedded) or, for a URL, a check that its scheme agrees.
    pub transport: Option<Transport>,
    /// `relay.ca`.
    pub ca: Option<std::path::PathBuf>,
    /// `relay.insecure` (set only, never cleared).
    pub insecure: bool,
    /// `relay.metrics`.
    pub relay_metrics: Option<String>,
    /// Multiplies the whole timeline: `duration`, `warmup` and every stage's `duration`
    /// (`--time-scale 0.1` runs a staged scenario in a tenth of its time, same shape).
    pub time_scale: Option<f64>,
}

impl Edits {
    /// The edits that can be wrong for a scenario they were applied to.
    ///
    /// # Errors
    /// `--transport` that the relay URL's scheme contradicts.
    pub fn check(&self, s: &mut Scenario) -> anyhow::Result<()> {
        if let Some(k) = self.time_scale
            && !(k.is_finite() && k > 0.0 && k <= 1000.0)
        {
            anyhow::bail!("--time-scale {k}: a factor more than 0 and at most 1000 (0.1 runs the timeline in a tenth)");
        }
        match self.transport {
            Some(t) => s.relay.require_transport(t),
            None => Ok(()),
        }
    }

    /// Applies the edits that are set.
    pub fn apply(&self, s: &mut Scenario) {
        if let Some(n) = self.clients {
            s.clients.count = n;
        }
        if let Some(d) = self.duration {
            s.duration = d;
        }
        if let Some(r) = self.rate {
            s.traffic.set_rate(r);
        }
        if let Some(a) = self.aead {
            s.crypto.aead = a;
        }
        if let Some(p) = self.pattern {
            s.crypto.pattern = p;
        }
        if let Some(r) = &self.relay {
            s.relay.url = r.clone();
        }
        if let Some(t) = self.transport {
            // Checked by `Edits::check`.
            s.relay.set_transport(t);
        }
        if let Some(ca) = &self.ca {
            s.relay.ca = Some(ca.clone());
        }
        if let Some(m) = &self.relay_metrics {
            s.relay.metrics = Some(m.clone());
        }
        if let Some(k) = self.time_scale.filter(|k| k.is_finite() && *k > 0.0 && *k <= 1000.0) {
            let scale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() * k);
            (s.duration, s.warmup) = (scale(s.duration), scale(s.warmup));
            for stage in &mut s.stages {
                stage.duration = scale(stage.duration);
            }
        }
        s.relay.insecure |= self.insecure;
    }
}
