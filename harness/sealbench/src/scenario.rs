//! Scenario files: TOML, unknown fields refused, every field overridable with
//! `--set path=value`. Errors name the file, the line and the field.
//!
//! (Long for a module because every field's meaning and default is documented here: this
//! file is the scenario reference `--help` and the README point to.)

use anyhow::{Context, Result, anyhow, bail};
use sealcore::{AeadKind, HashKind, Pattern, TransportMode};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;
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
    /// Length of the measured steady phase.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Traffic before the measured phase: sent and accounted, not in the histograms.
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
    /// Pass/fail expressions, e.g. `e2e.p99 < 25ms`.
    #[serde(default)]
    pub thresholds: Vec<String>,
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
}

fn default_sources() -> Vec<String> {
    vec!["127.0.0.1".into()]
}

/// How clients are put into conversations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Conversations {
    /// Conversation shape. Only `pairs` (1:1) for now.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// `adjacent` (0–1, 2–3, …) or `random` (a seeded shuffle).
    #[serde(default = "default_pairing")]
    pub pairing: String,
}

fn default_kind() -> String {
    "pairs".into()
}
fn default_pairing() -> String {
    "adjacent".into()
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations { kind: default_kind(), pairing: default_pairing() }
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
    /// Messages per second per conversation (both directions together).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Messages per second over all conversations (instead of `rate`).
    #[serde(default)]
    pub aggregate_rate: Option<f64>,
    /// `constant` (evenly spaced) or `poisson` (exponential gaps).
    #[serde(default = "default_arrival")]
    pub arrival: String,
    /// Fixed plaintext size in bytes (≥ 24).
    #[serde(default = "default_size")]
    pub size: usize,
    /// A size distribution instead of `size`.
    #[serde(default)]
    pub sizes: Vec<SizeWeight>,
    /// `initiator` (only the initiator sends), `alternating` (turns), `both` (independently).
    #[serde(default = "default_senders")]
    pub senders: String,
}

fn default_arrival() -> String {
    "constant".into()
}
fn default_size() -> usize {
    256
}
fn default_senders() -> String {
    "both".into()
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            rate: Some(1.0),
            aggregate_rate: None,
            arrival: default_arrival(),
            size: default_size(),
            sizes: Vec::new(),
            senders: default_senders(),
        }
    }
}

/// Handshake and transport cryptography.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Crypto {
    /// `NN`, `NK`, `XX`, `IK`.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Transport AEAD; `none` is the UNENCRYPTED baseline.
    #[serde(default = "default_aead")]
    pub aead: String,
    /// `SHA256` or `BLAKE2s`.
    #[serde(default = "default_hash")]
    pub hash: String,
    /// `noise` or `ratchet`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// noise mode: rekey every N messages (0: never).
    #[serde(default)]
    pub rekey_every: u64,
}

fn default_pattern() -> String {
    "XX".into()
}
fn default_aead() -> String {
    "chacha20-poly1305".into()
}
fn default_hash() -> String {
    "SHA256".into()
}
fn default_mode() -> String {
    "noise".into()
}

impl Default for Crypto {
    fn default() -> Self {
        Crypto {
            pattern: default_pattern(),
            aead: default_aead(),
            hash: default_hash(),
            mode: default_mode(),
            rekey_every: 0,
        }
    }
}

/// Which relay the clients use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayChoice {
    /// `embedded` (a reference relay in this process, on 127.0.0.1) or a `ws://` URL.
    #[serde(default = "default_url")]
    pub url: String,
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
}

fn default_url() -> String {
    "embedded".into()
}

impl Default for RelayChoice {
    fn default() -> Self {
        RelayChoice { url: default_url(), ack: false, delay: Duration::ZERO, auth_secret: None }
    }
}

/// Who sends in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Senders {
    /// Only the initiator.
    Initiator,
    /// The two sides take turns on one schedule.
    Alternating,
    /// Each side on its own schedule (half the rate each).
    Both,
}

/// The arrival process of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced.
    Constant,
    /// Exponentially distributed gaps (a Poisson process).
    Poisson,
}

/// The parts of a scenario the driver needs, parsed into their types.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Handshake pattern.
    pub pattern: Pattern,
    /// Transport AEAD.
    pub aead: AeadKind,
    /// Handshake hash.
    pub hash: HashKind,
    /// Transport mode.
    pub mode: TransportMode,
    /// Messages per second per conversation.
    pub rate_per_conversation: f64,
    /// Arrival process.
    pub arrival: Arrival,
    /// Who sends.
    pub senders: Senders,
    /// (size, cumulative weight) pairs; one entry for a fixed size.
    pub sizes: Vec<(usize, f64)>,
    /// Source addresses, expanded.
    pub sources: Vec<Ipv4Addr>,
    /// Random pairing instead of adjacent.
    pub random_pairing: bool,
    /// External relay URL, or None for the embedded relay.
    pub relay_url: Option<String>,
}

/// Smallest plaintext: the timing header.
pub const MIN_SIZE: usize = sealcore::payload::PLAINTEXT_HEADER_LEN;
/// Largest plaintext (the relay's default maximum message minus all headers).
pub const MAX_SIZE: usize = 64 * 1024 - 128;

impl Scenario {
    /// Loads `path`, applies `overrides` (`path.to.field=value`), and validates.
    ///
    /// # Errors
    /// Unreadable file; TOML syntax error or unknown / mistyped field (with file, line
    /// and field); an override that does not parse; an invalid value (naming the field).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// As [`load`](Self::load), from text; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        let scenario: Scenario = if overrides.is_empty() {
            toml::from_str(text).map_err(|e| anyhow!("{origin}: {}", located(text, &e)))?
        } else {
            let mut table: toml::Table =
                toml::from_str(text).map_err(|e| anyhow!("{origin}: {}", located(text, &e)))?;
            for o in overrides {
                apply_override(&mut table, o)?;
            }
            let merged = toml::to_string(&table).context("re-serialising the scenario")?;
            toml::from_str(&merged).map_err(|e| anyhow!("{origin} (with --set overrides): {}", e.message()))?
        };
        scenario.plan().map_err(|e| anyhow!("{origin}: {e:#}"))?;
        Ok(scenario)
    }

    /// Parses and checks every field the driver uses.
    ///
    /// # Errors
    /// Names the field and says what is accepted.
    pub fn plan(&self) -> Result<Plan> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!("name: use letters, digits, '-', '_' or '.' (it becomes part of a directory name)");
        }
        if self.duration.is_zero() {
            bail!("duration: must be more than 0 (e.g. \"30s\")");
        }
        if self.clients.count < 2 {
            bail!("clients.count: at least 2 clients are needed for a conversation");
        }
        if self.clients.count % 2 != 0 {
            bail!("clients.count: {} is odd; `pairs` needs an even number", self.clients.count);
        }
        if !(self.clients.connect_rate.is_finite() && self.clients.connect_rate >= 0.0) {
            bail!("clients.connect_rate: must be 0 (as fast as possible) or a positive number of clients per second");
        }
        if self.conversations.kind != "pairs" {
            bail!("conversations.kind: `{}` is not supported; use \"pairs\"", self.conversations.kind);
        }
        let random_pairing = match self.conversations.pairing.as_str() {
            "adjacent" => false,
            "random" => true,
            other => bail!("conversations.pairing: `{other}`; use \"adjacent\" or \"random\""),
        };
        let pattern: Pattern = self.crypto.pattern.parse().context("crypto.pattern")?;
        let aead: AeadKind = self.crypto.aead.parse().context("crypto.aead")?;
        let hash: HashKind = self.crypto.hash.parse().context("crypto.hash")?;
        let mode = match self.crypto.mode.as_str() {
            "noise" => TransportMode::Noise { rekey_every: self.crypto.rekey_every },
            "ratchet" => TransportMode::Ratchet,
            other => bail!("crypto.mode: `{other}`; use \"noise\" or \"ratchet\""),
        };
        let conversations = (self.clients.count / 2) as f64;
        let rate_per_conversation = match (self.traffic.rate, self.traffic.aggregate_rate) {
            (_, Some(a)) if a.is_finite() && a > 0.0 => a / conversations,
            (_, Some(a)) => bail!("traffic.aggregate_rate: must be a positive number of messages per second, got {a}"),
            (Some(r), None) if r.is_finite() && r > 0.0 => r,
            (Some(r), None) => bail!("traffic.rate: must be a positive number of messages per second, got {r}"),
            (None, None) => bail!("traffic: set `rate` (per conversation) or `aggregate_rate`"),
        };
        let arrival = match self.traffic.arrival.as_str() {
            "constant" => Arrival::Constant,
            "poisson" => Arrival::Poisson,
            other => bail!("traffic.arrival: `{other}`; use \"constant\" or \"poisson\""),
        };
        let senders = match self.traffic.senders.as_str() {
            "initiator" => Senders::Initiator,
            "alternating" => Senders::Alternating,
            "both" => Senders::Both,
            other => bail!("traffic.senders: `{other}`; use \"initiator\", \"alternating\" or \"both\""),
        };
        let sizes = if self.traffic.sizes.is_empty() {
            vec![(self.traffic.size, 1.0)]
        } else {
            let total: f64 = self.traffic.sizes.iter().map(|s| s.weight).sum();
            if !(total.is_finite() && total > 0.0) || self.traffic.sizes.iter().any(|s| s.weight < 0.0) {
                bail!("traffic.sizes: weights must be non-negative and add up to more than 0");
            }
            let mut acc = 0.0;
            self.traffic
                .sizes
                .iter()
                .map(|s| {
                    acc += s.weight / total;
                    (s.size, acc)
                })
                .collect()
        };
        for &(s, _) in &sizes {
            if !(MIN_SIZE..=MAX_SIZE).contains(&s) {
                bail!("traffic.size: {s} bytes is outside {MIN_SIZE}..={MAX_SIZE} (24 bytes carry the timing header)");
            }
        }
        let sources = parse_sources(&self.clients.source_addresses).context("clients.source_addresses")?;
        let relay_url = match self.relay.url.as_str() {
            "embedded" => None,
            u if u.starts_with("ws://") => Some(u.to_owned()),
            other => bail!("relay.url: `{other}`; use \"embedded\" or a ws:// URL"),
        };
        if relay_url.is_none() && self.relay.auth_secret.is_some() {
            bail!("relay.auth_secret: only for an external relay (the embedded one needs no tokens)");
        }
        if relay_url.is_some() && !self.relay.delay.is_zero() {
            bail!("relay.delay: only the embedded relay can be slowed down");
        }
        Ok(Plan {
            pattern,
            aead,
            hash,
            mode,
            rate_per_conversation,
            arrival,
            senders,
            sizes,
            sources,
            random_pairing,
            relay_url,
        })
    }
}

/// A TOML error with its line and the offending line's text.
fn located(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let src = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}: {} (at `{src}`)", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

/// Applies one `a.b.c=value` override; the value is read as TOML (`50`, `true`, `"XX"`),
/// falling back to a plain string (`XX`, `30s`).
fn apply_override(table: &mut toml::Table, o: &str) -> Result<()> {
    let (path, raw) = o.split_once('=').ok_or_else(|| anyhow!("--set {o}: expected path=value"))?;
    let path = path.trim();
    let raw = raw.trim();
    if raw.is_empty() {
        let keys: Vec<&str> = path.split('.').collect();
        let mut cur = &mut *table;
        for k in &keys[..keys.len() - 1] {
            match cur.get_mut(*k).and_then(toml::Value::as_table_mut) {
                Some(t) => cur = t,
                None => return Ok(()),
            }
        }
        cur.remove(keys[keys.len() - 1]);
        return Ok(());
    }
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {o}: empty field name in `{path}`");
    }
    let mut cur = table;
    for k in &keys[..keys.len() - 1] {
        let entry = cur.entry((*k).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| anyhow!("--set {o}: `{k}` is not a table"))?;
    }
    cur.insert(keys[keys.len() - 1].to_owned(), value);
    Ok(())
}

/// Expands `127.0.0.2` and `127.0.0.2-127.0.0.9` entries.
fn parse_sources(list: &[String]) -> Result<Vec<Ipv4Addr>> {
    let mut out = Vec::new();
    for item in list {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item.trim(), item.trim()),
        };
        let a: Ipv4Addr = a.parse().with_context(|| format!("`{item}` is not an IPv4 address or range"))?;
        let b: Ipv4Addr = b.parse().with_context(|| format!("`{item}` is not an IPv4 address or range"))?;
        let (lo, hi) = (u32::from(a), u32::from(b));
        if hi < lo || hi - lo > 4096 {
            bail!("`{item}`: the range must go upwards and hold at most 4096 addresses");
        }
        for ip in lo..=hi {
            let ip = Ipv4Addr::from(ip);
            if !ip.is_loopback() {
                bail!("`{ip}`: load tests send traffic to loopback only (127.0.0.0/8)");
            }
            out.push(ip);
        }
    }
    if out.is_empty() {
        bail!("at least one source address is needed");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "name = \"t\"\nduration = \"5s\"\n[clients]\ncount = 10\n";

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MIN, "t.toml", &[]).unwrap();
        assert_eq!(s.cooldown, Duration::from_secs(2));
        let p = s.plan().unwrap();
        assert_eq!(p.pattern, Pattern::XX);
        assert_eq!(p.aead, AeadKind::ChaCha20Poly1305);
        assert_eq!(p.sizes, vec![(256, 1.0)]);
    }

    #[test]
    fn unknown_fields_are_refused_with_file_line_and_field() {
        let text = format!("{MIN}colour = \"red\"\n");
        let e = Scenario::parse(&text, "t.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("t.toml") && e.contains("line 5") && e.contains("colour"), "{e}");
        let text = format!("{MIN}[crypto]\naead = \"rot13\"\n");
        let e = format!("{:#}", Scenario::parse(&text, "t.toml", &[]).unwrap_err());
        assert!(e.contains("crypto.aead") && e.contains("rot13"), "{e}");
    }

    #[test]
    fn overrides_reach_any_field_and_are_validated() {
        let sets = vec!["traffic.rate=50".to_owned(), "crypto.pattern=IK".to_owned(), "duration=2s".to_owned()];
        let s = Scenario::parse(MIN, "t.toml", &sets).unwrap();
        assert_eq!(s.traffic.rate, Some(50.0));
        assert_eq!(s.crypto.pattern, "IK");
        assert_eq!(s.duration, Duration::from_secs(2));
        assert!(Scenario::parse(MIN, "t.toml", &["clients.count=3".to_owned()]).is_err());
        assert!(Scenario::parse(MIN, "t.toml", &["nonsense".to_owned()]).is_err());
    }

    #[test]
    fn source_ranges_expand_and_must_be_loopback() {
        let v = parse_sources(&["127.0.0.2-127.0.0.4".into(), "127.0.0.9".into()]).unwrap();
        assert_eq!(v.len(), 4);
        assert!(parse_sources(&["10.0.0.1".into()]).is_err());
    }
}
