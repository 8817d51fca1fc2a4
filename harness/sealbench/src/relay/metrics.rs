//! Relay metrics: Prometheus text format through `prometheus-client`.
//!
//! Hot-path counters are accumulated per connection and added here once per batch of
//! frames, so a forwarded message costs no shared atomic of its own.

use super::adversary::AdversaryCounts;
use super::scan::{ScanAction, ScanStats, ScanTime, Scanner};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sealcore::frame::ErrorCode;

/// Label of a refused input.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The error code's name.
    pub code: &'static str,
}

/// Label of a refused upgrade or a close.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// Label of a mailbox refusal: the limit that refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// `messages`, `bytes`, `total_bytes` or `mailboxes`.
    pub limit: &'static str,
}

/// Label of an adversary action.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `tampered`, `replayed`, `duplicated`, `dropped`, `reordered` or `delayed`.
    pub action: &'static str,
}

/// Label of a key claim: what it handed out.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClaimLabel {
    /// `one_time`, `fallback` (the pool had no one-time item left) or `empty` (nothing:
    /// refused with NO_SUCH_KEY).
    pub result: &'static str,
}

/// Label of a refused key-pool request: which request and why.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyRefusalLabel {
    /// `publish` (KEYS_PUBLISH) or `claim` (KEY_CLAIM).
    pub op: &'static str,
    /// publish: `pool_full`, `directory_full`, `client_share`, `bad_item`; claim:
    /// `claimer_rate`, `peer_rate`.
    pub reason: &'static str,
}

/// Every relay metric.
#[derive(Debug)]
pub struct RelayMetrics {
    registry: Registry,
    /// Connections open now.
    pub connections: Gauge,
    /// Connections accepted (TCP) in all.
    pub connections_total: Counter,
    /// Successful registrations.
    pub registrations: Counter,
    /// Frames routed to a recipient (direct) or member (group, counted per member).
    pub routed: Counter,
    /// Messages stored in mailboxes.
    pub stored: Counter,
    /// Refused inputs by error code.
    pub refused: Family<CodeLabel, Counter>,
    /// Bytes received in binary messages.
    pub bytes_in: Counter,
    /// Bytes sent in binary messages.
    pub bytes_out: Counter,
    /// Connections closed as slow consumers.
    pub queue_overflows: Counter,
    /// Frames that were queued for a connection when it was closed (never written).
    pub dropped_on_close: Counter,
    /// Direct deliveries that were queued for a connection when it closed, put back at
    /// the front of the recipient's mailbox (acknowledged, so never dropped).
    pub requeued_on_close: Counter,
    /// Messages waiting in mailboxes now.
    pub mailbox_depth: Gauge,
    /// Bytes charged to mailboxes now (length + per-message overhead).
    pub mailbox_bytes: Gauge,
    /// Stored frames written to their recipient.
    pub mailbox_delivered: Counter,
    /// Sends refused with MAILBOX_FULL, by the limit that refused them.
    pub mailbox_refusals: Family<LimitLabel, Counter>,
    /// Upgrades refused (capacity, timeout, bad request).
    pub upgrades_refused: Family<ReasonLabel, Counter>,
    /// Connections closed by the relay, by reason.
    pub closes: Family<ReasonLabel, Counter>,
    /// TLS handshakes that failed (`error`: the client refused our certificate or spoke
    /// no TLS) or did not finish in time (`timeout`).
    pub tls_handshakes_failed: Family<ReasonLabel, Counter>,
    /// In-relay routing time of sampled SEND frames, seconds (read → enqueued).
    pub routing_seconds: Histogram,
    /// What the adversarial relay did (test aid; all zero without `--adversary`).
    pub adversary: Family<ActionLabel, Counter>,
    /// KEY_CLAIMs answered, by what they handed out (their sum: every claim).
    pub key_claims: Family<ClaimLabel, Counter>,
    /// KEYS_PUBLISHes and KEY_CLAIMs refused by a pool limit, by request and reason.
    pub key_refusals: Family<KeyRefusalLabel, Counter>,
    /// With a scan (`--scan`): SEND / GROUP_SEND bodies read and scanned (PLAIN,
    /// PLAIN_GROUP)…
    pub scanned: Counter,
    /// …and the bodies it could not read (any other kind: ciphertext), never scanned.
    pub scan_unreadable: Counter,
    /// Scanned bodies with at least one keyword match.
    pub scan_matched: Counter,
    /// Keyword matches in all scanned bodies.
    pub scan_matches: Counter,
    /// Scanned bodies refused with CONTENT_BLOCKED (`--scan-action block`).
    pub scan_blocked: Counter,
    /// Scan time of sampled bodies (one in [`super::scan::SCAN_SAMPLE`]), seconds.
    pub scan_seconds: Histogram,
    /// Keywords on the scan list (0: the relay reads nothing).
    pub scan_words: Gauge,
    /// The same samples as `scan_seconds`, ns, at 3 significant digits: the percentiles of
    /// `summary.json`. Recorded only when its lock is free (a sample is skipped rather than
    /// waited for), so the hot path never waits on another thread.
    scan_time: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    /// The scan's action, when the relay scans.
    scan_action: Option<ScanAction>,
    /// Message franking: stamps and reports.
    pub franking: super::franking::FrankingMetrics,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        // The relay's own metrics under its prefix; the standard process metrics beside them,
        // unprefixed (crate::procmetrics).
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::procmetrics::ProcessMetrics));
        let registry = root.sub_registry_with_prefix("sealbench_relay");
        let m = RelayMetrics {
            connections: Gauge::default(),
            connections_total: Counter::default(),
            registrations: Counter::default(),
            routed: Counter::default(),
            stored: Counter::default(),
            refused: Family::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            queue_overflows: Counter::default(),
            dropped_on_close: Counter::default(),
            requeued_on_close: Counter::default(),
            mailbox_depth: Gauge::default(),
            mailbox_bytes: Gauge::default(),
            mailbox_delivered: Counter::default(),
            mailbox_refusals: Family::default(),
            upgrades_refused: Family::default(),
            closes: Family::default(),
            tls_handshakes_failed: Family::default(),
            routing_seconds: Histogram::new(exponential_buckets(250e-9, 2.0, 24)),
            adversary: Family::default(),
            key_claims: Family::default(),
            key_refusals: Family::default(),
            scanned: Counter::default(),
            scan_unreadable: Counter::default(),
            scan_matched: Counter::default(),
            scan_matches: Counter::default(),
            scan_blocked: Counter::default(),
            scan_seconds: Histogram::new(exponential_buckets(50e-9, 2.0, 20)),
            scan_words: Gauge::default(),
            scan_time: std::sync::Mutex::new(scan_histogram()),
            scan_action: None,
            franking: Default::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "Connections open now", m.connections.clone());
        registry.register("connections_accepted", "TCP connections accepted", m.connections_total.clone());
        registry.register("registrations", "Successful HELLO registrations", m.registrations.clone());
        registry.register("messages_routed", "Frames routed to recipients (group: per member)", m.routed.clone());
        registry.register("messages_stored", "Messages stored in offline mailboxes", m.stored.clone());
        registry.register("messages_refused", "Refused inputs, by error code", m.refused.clone());
        // The convention's names: the unit before `_total` (received_bytes_total).
        let bytes = prometheus_client::registry::Unit::Bytes;
        registry.register_with_unit("received", "Bytes received in binary messages", bytes.clone(), m.bytes_in.clone());
        registry.register_with_unit("sent", "Bytes sent in binary messages", bytes, m.bytes_out.clone());
        registry.register("queue_overflows", "Connections closed as slow consumers", m.queue_overflows.clone());
        registry.register(
            "frames_dropped_on_close",
            "Frames queued for a connection when it closed",
            m.dropped_on_close.clone(),
        );
        registry.register(
            "frames_requeued_on_close",
            "Direct deliveries queued for a connection when it closed, put back in the mailbox",
            m.requeued_on_close.clone(),
        );
        registry.register("mailbox_depth", "Messages waiting in mailboxes", m.mailbox_depth.clone());
        registry.register(
            "mailbox_bytes",
            "Bytes charged to mailboxes (length + 64 per message)",
            m.mailbox_bytes.clone(),
        );
        registry.register(
            "mailbox_delivered",
            "Stored messages written to their recipient",
            m.mailbox_delivered.clone(),
        );
        registry.register(
            "mailbox_refusals",
            "Sends refused with MAILBOX_FULL, by the limit that refused them",
            m.mailbox_refusals.clone(),
        );
        registry.register("upgrades_refused", "WebSocket upgrades refused, by reason", m.upgrades_refused.clone());
        registry.register("closes", "Connections closed by the relay, by reason", m.closes.clone());
        registry.register(
            "tls_handshakes_failed",
            "TLS handshakes that failed (error) or did not finish in time (timeout)",
            m.tls_handshakes_failed.clone(),
        );
        registry.register(
            "routing_seconds",
            "In-relay routing time of sampled SEND frames (read to enqueued)",
            m.routing_seconds.clone(),
        );
        registry.register(
            "adversary",
            "Messages the adversarial relay tampered with, replayed, duplicated, dropped, reordered or delayed (testing only)",
            m.adversary.clone(),
        );
        registry.register(
            "key_claims",
            "KEY_CLAIMs by what they handed out: one_time, fallback (no one-time item left), empty (nothing)",
            m.key_claims.clone(),
        );
        register_scan_and_keys(registry, &m);
        m.franking.register(registry);
        RelayMetrics { registry: root, ..m }
    }

    /// Records which scan the relay runs (before it serves; `None`: it reads nothing).
    pub fn set_scanner(&mut self, scanner: Option<&Scanner>) {
        self.scan_action = scanner.map(Scanner::action);
        self.scan_words.set(scanner.map_or(0, |s| s.words() as i64));
    }

    /// Records one sampled scan time.
    pub fn scan_observe(&self, took: std::time::Duration) {
        self.scan_seconds.observe(took.as_secs_f64());
        if let Ok(mut h) = self.scan_time.try_lock() {
            h.saturating_record((took.as_nanos() as u64).max(1));
        }
    }

    /// What the scan saw so far (None when the relay does not scan).
    pub fn scan_stats(&self) -> Option<ScanStats> {
        let action = self.scan_action?;
        let time_us = self.scan_time.lock().ok().and_then(|h| ScanTime::of(&h));
        Some(ScanStats {
            words: self.scan_words.get().max(0) as usize,
            action,
            scanned: self.scanned.get(),
            unreadable: self.scan_unreadable.get(),
            matched: self.scan_matched.get(),
            matches: self.scan_matches.get(),
            blocked: self.scan_blocked.get(),
            time_us,
        })
    }

    /// Counts a KEY_CLAIM by what it handed out (`one_time`, `fallback`, `empty`).
    pub fn key_claimed(&self, result: &'static str) {
        self.key_claims.get_or_create(&ClaimLabel { result }).inc();
    }

    /// Counts a key-pool request refused by a limit (`op`: `publish` or `claim`).
    pub fn key_refused(&self, op: &'static str, reason: &'static str) {
        self.key_refusals.get_or_create(&KeyRefusalLabel { op, reason }).inc();
    }

    /// How many `op` requests were refused for `reason` so far.
    pub fn key_refusals_count(&self, op: &'static str, reason: &'static str) -> u64 {
        self.key_refusals.get_or_create(&KeyRefusalLabel { op, reason }).get()
    }

    /// How many KEY_CLAIMs handed out `result` so far.
    pub fn key_claims_count(&self, result: &'static str) -> u64 {
        self.key_claims.get_or_create(&ClaimLabel { result }).get()
    }

    /// Counts a refused input.
    pub fn refuse(&self, code: ErrorCode) {
        self.refused.get_or_create(&CodeLabel { code: code.name() }).inc();
    }

    /// How many inputs were refused with `code` so far.
    pub fn refused_count(&self, code: ErrorCode) -> u64 {
        self.refused.get_or_create(&CodeLabel { code: code.name() }).get()
    }

    /// Counts a MAILBOX_FULL refusal by the limit that refused it.
    pub fn mailbox_refusal(&self, limit: &'static str) {
        self.mailbox_refusals.get_or_create(&LimitLabel { limit }).inc();
    }

    /// Counts one adversary action (`tampered`, `replayed`, ...).
    pub fn adversary_did(&self, action: &'static str) {
        self.adversary.get_or_create(&ActionLabel { action }).inc();
    }

    /// What the adversarial relay has done so far.
    pub fn adversary_counts(&self) -> AdversaryCounts {
        let n = |action| self.adversary.get_or_create(&ActionLabel { action }).get();
        AdversaryCounts {
            tampered: n("tampered"),
            replayed: n("replayed"),
            duplicated: n("duplicated"),
            dropped: n("dropped"),
            reordered: n("reordered"),
            delayed: n("delayed"),
        }
    }

    /// Counts a close by the relay.
    pub fn close(&self, reason: &'static str) {
        self.closes.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// How many connections were closed for `reason`.
    pub fn close_count(&self, reason: &'static str) -> u64 {
        self.closes.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Counts a refused upgrade.
    pub fn refuse_upgrade(&self, reason: &'static str) {
        self.upgrades_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a failed TLS handshake.
    pub fn tls_failed(&self, reason: &'static str) {
        self.tls_handshakes_failed.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// TLS handshakes that failed, all reasons.
    pub fn tls_failed_count(&self) -> u64 {
        ["error", "timeout"]
            .iter()
            .map(|&reason| self.tls_handshakes_failed.get_or_create(&ReasonLabel { reason }).get())
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// An empty histogram of scan times, 1 ns to 10 s at 3 significant digits (fixed bounds:
/// recording never allocates).
fn scan_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("static histogram bounds")
}

/// Registers the relay's scan (what it read) and key-pool metrics: the second half of
/// [`RelayMetrics::new`].
fn register_scan_and_keys(registry: &mut Registry, m: &RelayMetrics) {
    registry.register("scanned", "SEND / GROUP_SEND bodies read and scanned (PLAIN, PLAIN_GROUP)", m.scanned.clone());
    registry.register(
        "scan_unreadable",
        "SEND / GROUP_SEND bodies the relay could not read (end-to-end encrypted): not scanned",
        m.scan_unreadable.clone(),
    );
    registry.register("scan_matched", "Scanned bodies with at least one keyword match", m.scan_matched.clone());
    registry.register("scan_matches", "Keyword matches in all scanned bodies", m.scan_matches.clone());
    registry.register("scan_blocked", "Scanned bodies refused with CONTENT_BLOCKED", m.scan_blocked.clone());
    registry.register("scan_seconds", "Keyword scan time of sampled bodies (one in 8 scanned)", m.scan_seconds.clone());
    registry.register("scan_words", "Keywords on the relay's scan list (0: it reads nothing)", m.scan_words.clone());
    registry.register(
        "key_refusals",
        "KEYS_PUBLISHes and KEY_CLAIMs refused by a key-pool limit: op=publish (pool_full, directory_full, client_share, bad_item) or op=claim (claimer_rate, peer_rate)",
        m.key_refusals.clone(),
    );
    // Present from the start (a scrape before any claim reads 0, not a missing series).
    for result in ["one_time", "fallback", "empty"] {
        drop(m.key_claims.get_or_create(&ClaimLabel { result }));
    }
    for (op, reason) in [
        ("publish", "pool_full"),
        ("publish", "directory_full"),
        ("publish", "client_share"),
        ("publish", "bad_item"),
        ("claim", "claimer_rate"),
        ("claim", "peer_rate"),
    ] {
        drop(m.key_refusals.get_or_create(&KeyRefusalLabel { op, reason }));
    }
}
