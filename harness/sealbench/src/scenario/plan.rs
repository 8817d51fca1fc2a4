//! [`Scenario`] → [`Plan`]: the checks that span fields, and what the driver derives
//! (rate per conversation, the size distribution, source addresses). Made once per run,
//! cell or step.

use super::population::ChatKind;
use super::{ConversationKind, Fanout, Population, Profile, RelayTarget, Scenario};
use crate::relay::Adversary;
use crate::target::{Capability, Wire};
use anyhow::{Context, Result, bail};
use sealcore::{AeadKind, Suite, TransportMode};
use std::net::Ipv4Addr;

/// Smallest plaintext: the timing header.
pub const MIN_SIZE: usize = sealcore::payload::PLAINTEXT_HEADER_LEN;
/// Largest plaintext (the relay's default maximum message minus all headers).
pub const MAX_SIZE: usize = 64 * 1024 - 128;

/// A checked scenario with what the driver derives from it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario as checked.
    pub scenario: Scenario,
    /// Handshake pattern, AEAD and hash together.
    pub suite: Suite,
    /// Transport mode (with its rekey interval).
    pub mode: TransportMode,
    /// Messages per second per conversation: the scenario's rate, or with stages the mean
    /// target over the run (the profile scales it in time).
    pub rate_per_conversation: f64,
    /// The target aggregate rate over the run (one flat measured stage, after an
    /// unmeasured warm-up, for a scenario without stages).
    pub profile: Profile,
    /// (size, cumulative weight) pairs; one entry for a fixed size.
    pub sizes: Vec<(usize, f64)>,
    /// Source addresses, expanded.
    pub sources: Vec<Ipv4Addr>,
    /// The embedded relay's adversary, if the scenario asks for one.
    pub adversary: Option<Adversary>,
    /// Users and conversations.
    pub population: Population,
    /// The part of a split run this process runs (None: all of it).
    pub part: Option<super::part::Part>,
    /// The session protocol and its options, typed once.
    pub protocol: ProtocolPlan,
    /// What messages say after their stamp (zeros, or text with planted keywords).
    pub content: super::ContentPlan,
    /// The embedded relay's keyword scan, if the scenario asks for one (its list loaded).
    pub scan: Option<super::ScanPlan>,
}

/// The session protocol a run's devices speak and its options, as the driver needs them
/// (built once from `crypto.*`).
#[derive(Debug, Clone, Copy)]
pub struct ProtocolPlan {
    /// Which protocol.
    pub protocol: sealproto::Protocol,
    /// Handshake pattern, AEAD and hash (Noise sessions and sender keys).
    pub suite: Suite,
    /// Transport mode (Noise sessions and sender keys).
    pub mode: TransportMode,
    /// Noise IK / NK: the initiator fetches the responder's static key first.
    pub fetch_responder_key: bool,
    /// Megolm: messages before a sender rotates its session (0: never by count).
    pub megolm_rotate_after: u32,
    /// Megolm: a member leaves every this many messages of a group (0: never).
    pub megolm_leave_every: u32,
    /// MLS: the creator commits a self-update every this many messages (0: never).
    pub mls_self_update_every: u32,
    /// MLS: membership churn every this many messages (0: none).
    pub mls_churn_every: u32,
    /// Message franking, when `crypto.franking` asks for it.
    pub franking: Option<super::franking::FrankingPlan>,
}

impl ProtocolPlan {
    fn new(s: &Scenario, suite: Suite, mode: TransportMode) -> Self {
        let c = &s.crypto;
        let noise = c.protocol == sealproto::Protocol::Noise;
        ProtocolPlan {
            protocol: c.protocol,
            suite,
            mode,
            fetch_responder_key: noise && suite.pattern.needs_remote_static(),
            megolm_rotate_after: c.megolm_rotate_after,
            megolm_leave_every: c.megolm_leave_every,
            mls_self_update_every: c.mls_self_update_every,
            mls_churn_every: c.mls_churn_every,
            franking: None,
        }
    }

    /// Whether a relay-fan-out group's devices also have pairwise sessions (MLS groups
    /// need none: key packages, Welcome and commits go through the relay).
    pub fn pairwise_in_groups(&self) -> bool {
        self.protocol != sealproto::Protocol::Mls
    }

    /// Whether set-up messages can be far larger than data messages (an MLS Welcome
    /// carries the whole ratchet tree: 166 kB for a group of 500).
    pub fn large_setup_messages(&self) -> bool {
        self.protocol == sealproto::Protocol::Mls
    }
}

/// Members a group may have on the reference relay (`max_group_members`).
pub const MAX_GROUP_DEVICES: u32 = 1024;

impl Plan {
    /// Checks `scenario` as a whole and derives the plan.
    ///
    /// # Errors
    /// Names the field and says what is accepted.
    pub fn new(scenario: Scenario) -> Result<Plan> {
        let s = &scenario;
        check_ranges(s)?;
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!("name: use letters, digits, '-', '_' or '.' (it becomes part of a directory name)");
        }
        let staged = check_timeline(s)?;
        if s.clients.count < 2 {
            bail!("clients.count: at least 2 clients are needed for a conversation");
        }
        if !s.clients.count.is_multiple_of(2)
            && s.conversations.kind == ConversationKind::Pairs
            && s.clients.devices.is_empty()
        {
            bail!("clients.count: {} is odd; `pairs` needs an even number", s.clients.count);
        }
        check_shares(s)?;
        if !(s.clients.connect_rate.is_finite() && s.clients.connect_rate >= 0.0) {
            bail!("clients.connect_rate: must be 0 (as fast as possible) or a positive number of clients per second");
        }
        let mode = match s.crypto.mode {
            super::Mode::Noise => TransportMode::Noise { rekey_every: s.crypto.rekey_every },
            super::Mode::KdfChain => TransportMode::KdfChain,
        };
        if let Some((i, c)) = s
            .stages
            .iter()
            .enumerate()
            .find_map(|(i, st)| st.clients.map(|c| (i, c)))
            .filter(|&(_, c)| c > s.clients.count)
        {
            bail!("stages[{i}].clients: {c} connected clients is more than clients.count ({})", s.clients.count);
        }
        let population = Population::new(s)?;
        check_groups(s, &population)?;
        check_protocol(s, &population)?;
        check_wire(s, &population)?;
        let chats = population.chats.len();
        let (profile, rate_per_conversation) = if staged {
            let profile = Profile::new(&s.stages)?;
            let per_conversation = profile.mean_rate() / chats as f64;
            (profile, per_conversation)
        } else {
            let r = rate_per_conversation(s, chats)?;
            (Profile::steady(s.warmup, s.duration, r * chats as f64), r)
        };
        let sizes = sizes(s)?;
        let sources = parse_sources(&s.clients.source_addresses).context("clients.source_addresses")?;
        let embedded = s.relay.url == RelayTarget::Embedded;
        s.relay.check_transport()?;
        if embedded && s.relay.auth_secret.is_some() {
            bail!("relay.auth_secret: only for an external relay (the embedded one needs no tokens)");
        }
        if let Some(url) = &s.relay.metrics {
            if embedded {
                bail!(
                    "relay.metrics: the embedded relay's CPU is measured directly; relay.metrics is for an external relay"
                );
            }
            crate::scrape::MetricsUrl::parse(url).map_err(|e| anyhow::anyhow!("relay.metrics: {e}"))?;
        }
        if !embedded && !s.relay.delay.is_zero() {
            bail!("relay.delay: only the embedded relay can be slowed down");
        }
        let adversary = match &s.relay.adversary {
            None => None,
            Some(_) if !embedded => bail!("relay.adversary: only the embedded relay can play the adversary"),
            Some(a) => Some(Adversary::parse(a).map_err(|e| anyhow::anyhow!("relay.adversary: {e}"))?),
        };
        s.crypto.backend.check(s.crypto.aead).map_err(|e| anyhow::anyhow!("crypto.backend: {e}"))?;
        let suite = Suite::new(s.crypto.pattern, s.crypto.aead, s.crypto.hash).with_backend(s.crypto.backend);
        let mut protocol = ProtocolPlan::new(s, suite, mode);
        protocol.franking = super::franking::plan(s)?;
        let content = super::reading::content(s)?;
        let scan = super::reading::scan(s)?;
        Ok(Plan {
            protocol,
            content,
            scan,
            suite,
            mode,
            rate_per_conversation,
            profile,
            sizes,
            sources,
            adversary,
            population,
            part: None,
            scenario,
        })
    }

    /// Runs the checks of [`Plan::new`] on a scenario that stays with the caller.
    ///
    /// # Errors
    /// As [`Plan::new`].
    pub fn check(scenario: &Scenario) -> Result<()> {
        Plan::new(scenario.clone()).map(drop)
    }

    /// Conversations in the run (1:1 and groups).
    pub fn conversations(&self) -> usize {
        self.population.chats.len()
    }

    /// Connected clients the stages ask for `t_s` seconds after the steady start (None:
    /// every client stays connected).
    pub fn clients_at(&self, t_s: f64) -> Option<f64> {
        super::stages::clients_at(&self.scenario.stages, self.scenario.clients.count, t_s)
    }

    /// The most copies one message can take (devices of its conversation but the sender's).
    pub fn max_copies(&self) -> usize {
        self.population.chats.iter().map(|c| self.population.device_count(c) as usize - 1).max().unwrap_or(1)
    }

    /// The rate offered over all conversations of the run (every part), messages/s.
    pub fn offered_rate(&self) -> f64 {
        self.rate_per_conversation * self.conversations() as f64
    }

    /// The rate offered to this process: its conversations' (all of them unless the run
    /// is split), messages/s.
    pub fn local_offered_rate(&self) -> f64 {
        match self.part {
            None => self.offered_rate(),
            Some(_) => self.rate_per_conversation * self.local().0 as f64,
        }
    }

    /// The share of the aggregate rate that a sender of `rate` messages/s (at the plan's
    /// mean rate) carries: what its schedule scales the profile by.
    pub fn share_of(&self, rate: f64) -> f64 {
        rate / self.offered_rate()
    }

    /// Sending time before the measured window (the warm-up), ns.
    pub fn warmup_ns(&self) -> u64 {
        secs_ns(self.profile.window_s().0)
    }

    /// The measured window's length, ns.
    pub fn measured_ns(&self) -> u64 {
        let (a, b) = self.profile.window_s();
        secs_ns(b) - secs_ns(a)
    }

    /// How long sending lasts (every stage), ns.
    pub fn sending_ns(&self) -> u64 {
        secs_ns(self.profile.total_s())
    }

    /// Stage ends, ns after the steady start.
    pub fn stage_ends_ns(&self) -> Vec<u64> {
        self.profile.spans().iter().map(|s| secs_ns(s.end_s)).collect()
    }

    /// Why the run sends UNENCRYPTED messages (a baseline), if it does.
    pub fn unencrypted(&self) -> Option<&'static str> {
        unencrypted(&self.scenario)
    }
}

/// Why `s` sends UNENCRYPTED messages, if it does: the `none` AEAD of Noise sessions (the
/// baseline that isolates crypto cost; the other protocols do not use the AEAD), or a
/// protocol without end-to-end encryption.
pub fn unencrypted(s: &Scenario) -> Option<&'static str> {
    let p = s.crypto.protocol;
    if !p.encrypts() {
        return Some("a protocol without end-to-end encryption: the relay could read every message");
    }
    (p == sealproto::Protocol::Noise && s.crypto.aead == AeadKind::None)
        .then_some("aead = none, the baseline that isolates crypto cost")
}

/// A staged scenario gives its timeline in `stages` only; another needs a duration.
/// Returns whether it is staged.
fn check_timeline(s: &Scenario) -> Result<bool> {
    let staged = !s.stages.is_empty();
    if staged {
        if !s.duration.is_zero() {
            bail!("duration: leave it out when `stages` is set (the run lasts the sum of the stages' durations)");
        }
        if !s.warmup.is_zero() {
            bail!("warmup: leave it out when `stages` is set (a first stage with `measure = false` is the warm-up)");
        }
        for (field, v) in [("rate", s.traffic.rate), ("aggregate_rate", s.traffic.aggregate_rate)] {
            if v.is_some() {
                bail!(
                    "traffic.{field}: leave it out when `stages` is set (each stage's `rate` is the target, messages/s over all conversations)"
                );
            }
        }
    } else if s.duration.is_zero() {
        bail!("duration: must be more than 0 (e.g. \"30s\"), or give `[[stages]]`");
    }
    Ok(staged)
}

/// The most clients one scenario describes (over every part of a split run).
pub const MAX_CLIENTS: usize = 10_000_000;
/// The longest duration any one field may give (a soak of 30 days).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
/// The highest rate a scenario may ask for, messages/s (per conversation or aggregate).
pub const MAX_RATE: f64 = 1e8;

/// Every numeric field within what a run can mean, checked before anything is laid out or
/// allocated: a count past [`MAX_CLIENTS`] would otherwise be allocated (or truncated),
/// a duration past [`MAX_DURATION`] overflow the clock, a rate past [`MAX_RATE`] mean
/// nothing.
fn check_ranges(s: &Scenario) -> Result<()> {
    if s.clients.count > MAX_CLIENTS {
        bail!(
            "clients.count: {} is more than the {MAX_CLIENTS} clients one scenario can describe (split a larger \
             population over several scenarios)",
            s.clients.count
        );
    }
    let mut durations =
        vec![("duration", s.duration), ("warmup", s.warmup), ("cooldown", s.cooldown), ("relay.delay", s.relay.delay)];
    if let Some(c) = &s.churn {
        durations.extend([("churn.online", c.online), ("churn.offline", c.offline)]);
        if let Some(st) = &c.storm {
            durations.extend([("churn.storm.at", st.at), ("churn.storm.within", st.within)]);
        }
    }
    let stage_names: Vec<String> = (0..s.stages.len()).map(|i| format!("stages[{i}].duration")).collect();
    for (name, st) in stage_names.iter().zip(&s.stages) {
        durations.push((name.as_str(), st.duration));
    }
    let total: std::time::Duration = s.stages.iter().map(|st| st.duration).fold(s.duration, |a, b| a.saturating_add(b));
    durations.push(("the run (duration and stages together)", total.saturating_add(s.warmup)));
    for (name, d) in durations {
        if d > MAX_DURATION {
            bail!(
                "{name}: {} s is longer than the {} days a field may give",
                d.as_secs(),
                MAX_DURATION.as_secs() / 86_400
            );
        }
    }
    let mut rates = vec![("traffic.rate", s.traffic.rate), ("traffic.aggregate_rate", s.traffic.aggregate_rate)];
    let names: Vec<(String, String)> =
        (0..s.stages.len()).map(|i| (format!("stages[{i}].rate"), format!("stages[{i}].from"))).collect();
    for ((r, f), st) in names.iter().zip(&s.stages) {
        rates.extend([(r.as_str(), st.rate), (f.as_str(), st.from)]);
    }
    for (name, r) in rates {
        if let Some(r) = r
            && !(r.is_finite() && (0.0..=MAX_RATE).contains(&r))
        {
            bail!("{name}: {r:e} messages/s is outside 0..={MAX_RATE:e} messages/s");
        }
    }
    if !(s.clients.connect_rate.is_finite() && (0.0..=MAX_RATE).contains(&s.clients.connect_rate)) {
        bail!("clients.connect_rate: {:e} connections/s is outside 0..={MAX_RATE:e}", s.clients.connect_rate);
    }
    Ok(())
}

/// Shares are fractions; churn periods are positive.
fn check_shares(s: &Scenario) -> Result<()> {
    let frac = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    if !frac(s.conversations.group_share) {
        bail!("conversations.group_share: must be between 0 and 1, got {}", s.conversations.group_share);
    }
    if let Some(c) = &s.churn {
        if !frac(c.share) {
            bail!("churn.share: must be between 0 and 1 (the share of users who churn), got {}", c.share);
        }
        if c.online.is_zero() || c.offline.is_zero() {
            bail!("churn.online / churn.offline: mean periods must be more than 0 (e.g. \"30s\", \"5s\")");
        }
        if let Some(st) = &c.storm
            && (!frac(st.share) || st.within.is_zero())
        {
            bail!("churn.storm: `share` must be between 0 and 1 and `within` more than 0");
        }
    }
    Ok(())
}

/// The protocol is built in and the driver can run it with this population.
fn check_protocol(s: &Scenario, p: &Population) -> Result<()> {
    use sealproto::Protocol;
    let proto = s.crypto.protocol;
    if !proto.available() {
        bail!("crypto.protocol: {proto} is not built into this binary (build with the Cargo feature '{proto}')");
    }
    let relay_groups = p.chats.iter().any(|c| matches!(c.kind, ChatKind::Group { fanout: Fanout::Relay, .. }));
    let client_groups = p.chats.iter().any(|c| matches!(c.kind, ChatKind::Group { fanout: Fanout::Client, .. }));
    if s.crypto.mls_churn_every > 0 {
        if proto != Protocol::Mls {
            bail!(
                "crypto.mls_churn_every: only with crypto.protocol = \"mls\" (it is {proto}); set it to 0 or remove it"
            );
        }
        if let Some(c) = p.chats.iter().find(|c| c.senders as usize >= c.users.len()) {
            bail!(
                "crypto.mls_churn_every: the members it removes and re-adds are ones that do not send, but every user \
                 of group {} sends ({} of {}); set conversations.group_senders below the smallest group size",
                c.id,
                c.senders,
                c.users.len()
            );
        }
    }
    if s.crypto.megolm_leave_every > 0 {
        if proto != Protocol::Megolm {
            bail!(
                "crypto.megolm_leave_every: only with crypto.protocol = \"megolm\" (it is {proto}); set it to 0 or remove it"
            );
        }
        let group = |c: &&crate::scenario::population::Chat| matches!(c.kind, ChatKind::Group { .. });
        if let Some(c) = p.chats.iter().filter(group).find(|c| c.senders as usize >= c.users.len()) {
            bail!(
                "crypto.megolm_leave_every: the members that leave are ones that do not send, but every user of \
                 group {} sends ({} of {}); set conversations.group_senders below the smallest group size",
                c.id,
                c.senders,
                c.users.len()
            );
        }
    }
    match proto {
        Protocol::Olm if relay_groups => bail!(
            "crypto.protocol = \"olm\": Olm sessions are pairwise, so a group needs conversations.fanout = \"client\" \
             (one Olm copy per member device); relay fan-out of one ciphertext is what megolm and mls do"
        ),
        Protocol::Megolm if !relay_groups || client_groups => bail!(
            "crypto.protocol = \"megolm\": Megolm is a group protocol with relay fan-out (one ciphertext per message, \
             its key shared over Olm), so it needs conversations.kind = \"groups\" or \"mix\" with fanout = \"relay\" \
             (the 1:1 conversations of a mix run Olm); for 1:1 traffic alone use protocol = \"olm\""
        ),
        Protocol::Mls
            if !relay_groups || p.chats.iter().any(|c| matches!(c.kind, ChatKind::Direct)) || client_groups =>
        {
            bail!(
                "crypto.protocol = \"mls\": MLS is a group protocol with relay fan-out (one ciphertext per message, \
                 commits and Welcome through the relay), so it needs conversations.kind = \"groups\" with \
                 fanout = \"relay\"; for 1:1 traffic use protocol = \"olm\""
            )
        }
        _ => Ok(()),
    }
}

/// The target's wire offers what the scenario needs (its capability table): refused
/// here, before anything connects, naming the capability and what to do instead.
fn check_wire(s: &Scenario, p: &Population) -> Result<()> {
    let wire = s.relay.wire;
    if wire == Wire::Sealbench {
        return Ok(());
    }
    let name = wire.name();
    if s.relay.url == RelayTarget::Embedded {
        bail!(
            "relay.wire = \"{name}\": the embedded relay speaks sealbench's wire; set relay.url to the {name} \
             server's WebSocket URL (e.g. \"ws://127.0.0.1:8080/\"), or leave relay.wire out"
        );
    }
    if s.relay.auth_secret.is_some() {
        bail!(
            "relay.auth_secret: sealbench relay tokens mean nothing to a {name} server (its clients log in \
             anonymously); remove it, or allow anonymous clients on the server"
        );
    }
    let caps = wire.capabilities();
    let proto = s.crypto.protocol;
    let relay_groups = p.chats.iter().any(|c| matches!(c.kind, ChatKind::Group { fanout: Fanout::Relay, .. }));
    let offline = s.churn.is_some() || s.stages.iter().any(|st| st.clients.is_some());
    let needs: [(bool, Capability, String, &str); 5] = [
        (
            matches!(proto, sealproto::Protocol::Olm | sealproto::Protocol::Megolm | sealproto::Protocol::Mls),
            Capability::ConsumeOnceKeys,
            format!("crypto.protocol = \"{proto}\" (its one-time keys or key packages are claimed once each)"),
            "use crypto.protocol = \"noise\" (or \"plaintext\") against this target, or run it against the \
             sealbench relay",
        ),
        (
            proto == sealproto::Protocol::Noise && s.crypto.pattern.needs_remote_static(),
            Capability::KeyDirectory,
            format!(
                "crypto.pattern = \"{}\" (the initiator fetches the responder's static key)",
                s.crypto.pattern.name()
            ),
            "use crypto.pattern = \"XX\" (static keys travel in the handshake)",
        ),
        (
            relay_groups,
            Capability::ServerFanout,
            "conversations.fanout = \"relay\"".to_owned(),
            "use conversations.fanout = \"client\" (one sealed copy per member device)",
        ),
        // Stored deliveries need not be marked by the server: the driver knows what it owes
        // each device that comes back (both ends of every conversation are in one shard)
        // and counts that many deliveries as stored (`shard/state.rs`, `stored_at_return`).
        (
            offline,
            Capability::StoreAndForward,
            "churn or stages with `clients` (devices that go offline and come back)".to_owned(),
            "remove [churn] and the stages' `clients`, or measure offline delivery against the sealbench relay",
        ),
        (s.relay.ack, Capability::ServerAck, "relay.ack = true".to_owned(), "set relay.ack = false"),
    ];
    for (needed, cap, what, instead) in needs {
        if needed && !caps.has(cap) {
            bail!("relay.wire = \"{name}\": {what} needs {}, which the {name} wire lacks; {instead}", cap.name());
        }
    }
    Ok(())
}

/// Groups fit the relay, and relay fan-out is not combined with churn.
fn check_groups(s: &Scenario, p: &Population) -> Result<()> {
    let relay_groups = p.chats.iter().any(|c| matches!(c.kind, ChatKind::Group { fanout: Fanout::Relay, .. }));
    // An MQTT broker queues a group topic's messages for an offline member like any other
    // (its subscription outlives the connection), so churn with topic fan-out is measured.
    if relay_groups && s.churn.is_some() && s.relay.wire != Wire::Mqtt {
        bail!(
            "churn: not with conversations.fanout = \"relay\": the reference relay stores only 1:1 messages for offline \
             devices (group messages are never stored, docs/PROTOCOL.md §4.5), so an offline member would simply miss \
             them; churn is measured with fanout = \"client\""
        );
    }
    if relay_groups
        && s.relay.url == RelayTarget::Embedded
        && let Some(c) = p.chats.iter().find(|c| p.device_count(c) > MAX_GROUP_DEVICES)
    {
        bail!(
            "conversations.group_sizes: a group of {} users has {} devices, more than the reference relay's \
                 {MAX_GROUP_DEVICES} members per group",
            c.users.len(),
            p.device_count(c)
        );
    }
    Ok(())
}

fn rate_per_conversation(s: &Scenario, chats: usize) -> Result<f64> {
    let conversations = chats.max(1) as f64;
    Ok(match (s.traffic.rate, s.traffic.aggregate_rate) {
        (Some(_), Some(_)) => bail!("traffic: `rate` and `aggregate_rate` are both set, but only one can apply"),
        (None, Some(a)) if a.is_finite() && a > 0.0 => a / conversations,
        (None, Some(a)) => bail!("traffic.aggregate_rate: must be a positive number of messages per second, got {a}"),
        (Some(r), None) if r.is_finite() && r > 0.0 => r,
        (Some(r), None) => bail!("traffic.rate: must be a positive number of messages per second, got {r}"),
        (None, None) => 1.0,
    })
}

/// Seconds (a stage boundary) to whole ns.
fn secs_ns(s: f64) -> u64 {
    (s * 1e9).round() as u64
}

fn sizes(s: &Scenario) -> Result<Vec<(usize, f64)>> {
    let sizes = if s.traffic.sizes.is_empty() {
        vec![(s.traffic.size, 1.0)]
    } else {
        let total: f64 = s.traffic.sizes.iter().map(|s| s.weight).sum();
        if !(total.is_finite() && total > 0.0) || s.traffic.sizes.iter().any(|s| s.weight < 0.0) {
            bail!("traffic.sizes: weights must be non-negative and add up to more than 0");
        }
        let mut acc = 0.0;
        s.traffic
            .sizes
            .iter()
            .map(|s| {
                acc += s.weight / total;
                (s.size, acc)
            })
            .collect()
    };
    for &(size, _) in &sizes {
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            bail!("traffic.size: {size} bytes is outside {MIN_SIZE}..={MAX_SIZE} (24 bytes carry the timing header)");
        }
    }
    Ok(sizes)
}

/// Expands `127.0.0.2` and `127.0.0.2-127.0.0.9` entries; each must be an address of
/// this machine (checked by binding it).
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
            // Loopback addresses all bind on Linux; any other must be configured here.
            if !ip.is_loopback() && std::net::UdpSocket::bind((ip, 0)).is_err() {
                bail!("`{ip}` is not an address of this machine (clients connect from a local address)");
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

    #[test]
    fn source_ranges_expand_and_must_be_local() {
        let v = parse_sources(&["127.0.0.2-127.0.0.4".into(), "127.0.0.9".into()]).unwrap();
        assert_eq!(v.len(), 4);
        // TEST-NET-3 (RFC 5737): never configured on a machine.
        let e = parse_sources(&["203.0.113.7".into()]).unwrap_err().to_string();
        assert!(e.contains("not an address of this machine"), "{e}");
    }
}
