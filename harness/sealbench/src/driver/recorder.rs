//! What a driver shard records: one HdrHistogram per metric (ns, 3 significant digits),
//! and per traffic class for the metrics users ask about per class, plus plain counters.
//! Recording never allocates and takes no lock: each shard owns its recorder; the
//! coordinator merges copies once per second. Memory is fixed per shard, whatever the
//! number of clients.
//!
//! # Layout
//! - this module — the [`Metric`]s and the [`Counters`].
//! - [`histograms`] — [`Histograms`]: one histogram per metric and per (metric, tag).
//! - [`tags`] — traffic classes ([`tags::TagSet`], `class=group,size=50`) and their text forms.

pub mod histograms;
pub mod tags;

pub use histograms::Histograms;
use serde::{Deserialize, Serialize};

/// The latency metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(usize)]
pub enum Metric {
    /// The whole connection set-up: [`Metric::Tcp`] + [`Metric::Tls`] (wss) +
    /// [`Metric::Upgrade`].
    Connect = 0,
    /// HELLO sent → WELCOME received.
    Register,
    /// First handshake message sent → transport ready, on the initiator.
    Handshake,
    /// Intended send → decrypted at the recipient (coordinated-omission corrected), for
    /// messages delivered online (an offline delivery is [`Metric::OfflineE2e`] only).
    E2e,
    /// Actual send → decrypted at the recipient.
    E2eRaw,
    /// Actual send → relay ACK received (with `relay.ack`).
    RelayAck,
    /// Sealing one message (sampled).
    Seal,
    /// Opening one message (sampled).
    Open,
    /// How late the generator sent relative to the schedule.
    ScheduleLag,
    /// Intended send → the first recipient device decrypted it, per logical message with
    /// several recipient devices (a group message, or a DM to a user with several devices).
    FanoutFirst,
    /// Intended send → the last recipient device decrypted it; recorded only when every
    /// expected copy arrived (a partial fan-out has no "last").
    FanoutLast,
    /// The sender's time to seal and hand over every copy of one logical message (client
    /// fan-out: one seal per recipient device; relay fan-out: one seal).
    FanoutSeal,
    /// Intended send → decrypted after the recipient reconnected (the relay held it in its
    /// mailbox). Not also recorded in [`Metric::E2e`]: offline minutes would swamp it.
    OfflineE2e,
    /// A reconnecting client's WELCOME → the last message its mailbox held received.
    MailboxDrain,
    /// `connect()` called → TCP connected (the first part of [`Metric::Connect`]).
    Tcp,
    /// TCP connected → TLS handshake done (`wss://` only; nothing recorded for `ws://`).
    Tls,
    /// Upgrade request sent → `101 Switching Protocols` received (the last part of
    /// [`Metric::Connect`]).
    Upgrade,
    /// `crypto.protocol = "megolm"`: a sender's time to encrypt its new group session key
    /// for every other member device (over Olm) and hand the copies over, at each rotation.
    KeyShare,
    /// `crypto.protocol = "mls"`: creating a commit (the group's creation adding every
    /// member, or a self-update), at the committer.
    MlsCommit,
    /// `crypto.protocol = "mls"`: processing (and merging) a commit, at each member.
    MlsCommitProcess,
    /// `crypto.protocol = "mls"`: processing a Welcome, at each joining device.
    MlsWelcome,
}

impl Metric {
    /// Every metric, in index order.
    pub const ALL: [Metric; 21] = [
        Metric::Connect,
        Metric::Register,
        Metric::Handshake,
        Metric::E2e,
        Metric::E2eRaw,
        Metric::RelayAck,
        Metric::Seal,
        Metric::Open,
        Metric::ScheduleLag,
        Metric::FanoutFirst,
        Metric::FanoutLast,
        Metric::FanoutSeal,
        Metric::OfflineE2e,
        Metric::MailboxDrain,
        Metric::Tcp,
        Metric::Tls,
        Metric::Upgrade,
        Metric::KeyShare,
        Metric::MlsCommit,
        Metric::MlsCommitProcess,
        Metric::MlsWelcome,
    ];

    /// The metrics also recorded per traffic class ([`tags`]): those a user asks about
    /// "for groups of 500" or "for DMs". Set-up, crypto and generator metrics are not.
    pub const TAGGED: [Metric; 9] = [
        Metric::MlsCommit,
        Metric::MlsCommitProcess,
        Metric::KeyShare,
        Metric::E2e,
        Metric::E2eRaw,
        Metric::OfflineE2e,
        Metric::FanoutFirst,
        Metric::FanoutLast,
        Metric::FanoutSeal,
    ];

    /// Name in result files, interval-log tags and thresholds.
    pub fn name(self) -> &'static str {
        [
            "connect",
            "register",
            "handshake",
            "e2e",
            "e2e_raw",
            "relay_ack",
            "seal",
            "open",
            "schedule_lag",
            "fanout_first",
            "fanout_last",
            "fanout_seal",
            "offline_e2e",
            "mailbox_drain",
            "tcp",
            "tls",
            "upgrade",
            "key_share",
            "mls_commit",
            "mls_commit_process",
            "mls_welcome",
        ][self as usize]
    }

    /// Its place among [`Metric::TAGGED`], if it is recorded per tag.
    #[inline]
    pub fn tagged_index(self) -> Option<usize> {
        Metric::TAGGED.iter().position(|&t| t == self)
    }
}

/// Highest recordable value: 1 hour in ns (offline deliveries can be minutes late; larger
/// values are clamped). See [`Histograms`] for what this costs in memory.
pub const MAX_NS: u64 = 3_600_000_000_000;

/// A send this much later than intended counts as late (1 ms).
pub const LATE_SEND_NS: u64 = 1_000_000;

/// Error codes are counted in a fixed array indexed by code.
pub const MAX_CODE: usize = 32;

/// Counters. Every message sent ends as delivered, refused or lost; the rest are extra
/// observations (duplicates, reorders, authentication failures).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// TCP + WebSocket connections that succeeded.
    pub connects_ok: u64,
    /// Connections that failed (refused, timed out, upgrade refused).
    pub connects_failed: u64,
    /// HELLOs answered with an error (or not at all).
    pub registers_failed: u64,
    /// Handshakes completed (initiator side).
    pub handshakes_ok: u64,
    /// Handshakes that failed or timed out.
    pub handshakes_failed: u64,
    /// Transport messages sent.
    pub sent: u64,
    /// Transport messages decrypted at their recipient (first copy).
    pub delivered: u64,
    /// Messages sent while the histograms recorded (after warm-up).
    pub sent_measured: u64,
    /// Transport messages the relay refused, by error code.
    pub refused: Vec<u64>,
    /// Copies of already-delivered messages (replays / duplicates).
    pub duplicated: u64,
    /// Messages that arrived after a later one of the same direction.
    pub reordered: u64,
    /// Messages whose tag did not verify (forged or corrupted).
    pub auth_failed: u64,
    /// Messages older than the receiver's window (never opened).
    pub too_old: u64,
    /// Deliveries the client could not parse.
    pub malformed: u64,
    /// Connections the relay closed or lost unexpectedly.
    pub disconnects: u64,
    /// Relay errors not tied to a transport message (handshake, key, registration).
    pub other_errors: u64,
    /// Bytes of WebSocket messages sent / received by clients.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Messages that were due but could not be handed to the socket yet (back-pressure).
    pub backlogged: u64,
    /// Transport messages that reached an end whose handshake had not ended (or had
    /// failed): not opened, and not a forgery.
    #[serde(default)]
    pub not_ready: u64,
    /// Messages sent more than [`LATE_SEND_NS`] after their intended time, warm-up
    /// included (the saturation verdict's evidence: more than 1 % late ⇔ lag p99 above it).
    #[serde(default)]
    pub late_sends: u64,
    /// Authentic messages whose timing stamp cannot belong to this run (due before it
    /// started sending, sent before due, or after arrival): not delivered, not recorded.
    #[serde(default)]
    pub bad_timestamp: u64,
    /// Logical messages sent (a message to a group of 50 is one message and up to 49
    /// deliveries; `sent` counts the deliveries).
    #[serde(default)]
    pub messages: u64,
    /// Messages not sent because every device of the sending user was offline.
    #[serde(default)]
    pub skipped_offline: u64,
    /// Deliveries stored by the relay for a device that was still offline at the end
    /// (not lost: the relay holds them).
    #[serde(default)]
    pub undelivered_offline: u64,
    /// GROUP_SEND frames the relay refused (the copies it did not deliver show as lost).
    #[serde(default)]
    pub group_refusals: u64,
    /// Devices that came back online (a new connection and HELLO; sessions resumed).
    #[serde(default)]
    pub reconnects: u64,
    /// Reconnections that failed.
    #[serde(default)]
    pub reconnect_failures: u64,
    /// Messages whose fan-out never completed (a copy to a device online at the send
    /// was still missing when its record was reused or the run ended).
    #[serde(default)]
    pub fanout_incomplete: u64,
    /// Sender keys handed out over pairwise sessions and installed (relay fan-out).
    #[serde(default)]
    pub sender_keys: u64,
    /// `crypto.protocol = "mls"`: application messages from an epoch whose secrets the
    /// recipient no longer holds (authentic, but undecryptable: not delivered).
    #[serde(default)]
    pub old_epoch: u64,
    /// Membership churn (`crypto.mls_churn_every`, `crypto.megolm_leave_every`): copies the
    /// relay's group fan-out delivered to a device that was not a member for them (MLS: in
    /// their epoch, removed or not yet re-added; Megolm: sent after it left, and tried with
    /// the key it kept, in vain). Not among `sent`: a sender counts its members only.
    #[serde(default)]
    pub not_member: u64,
    /// Megolm: messages sent after a device left that it could read nonetheless (a rotation
    /// that did not exclude it; 0 in a correct run).
    #[serde(default)]
    pub departed_read: u64,
    /// Members removed during traffic: MLS remove commits, Megolm leaves…
    #[serde(default)]
    pub members_removed: u64,
    /// …and MLS members re-added (commit and Welcome, from a fresh key package): Welcomes
    /// processed.
    #[serde(default)]
    pub members_readded: u64,
}

impl Counters {
    /// Zeroed counters.
    pub fn new() -> Self {
        Counters { refused: vec![0; MAX_CODE], ..Default::default() }
    }

    /// Combines every scalar counter of `self` with the same counter of `o`, and the
    /// per-code refusals likewise (one field list for `add` and `since`).
    fn combine(&mut self, o: &Counters, f: impl Fn(u64, u64) -> u64) {
        macro_rules! each {
            ($($name:ident),*) => { $( self.$name = f(self.$name, o.$name); )* };
        }
        each!(
            connects_ok,
            connects_failed,
            registers_failed,
            handshakes_ok,
            handshakes_failed,
            sent,
            delivered,
            sent_measured,
            duplicated,
            reordered,
            auth_failed,
            too_old,
            malformed,
            disconnects,
            other_errors,
            bytes_sent,
            bytes_received,
            backlogged,
            not_ready,
            bad_timestamp,
            late_sends,
            messages,
            skipped_offline,
            undelivered_offline,
            group_refusals,
            reconnects,
            reconnect_failures,
            fanout_incomplete,
            sender_keys,
            old_epoch,
            not_member,
            departed_read,
            members_removed,
            members_readded
        );
        if self.refused.len() < MAX_CODE {
            self.refused.resize(MAX_CODE, 0);
        }
        for (i, a) in self.refused.iter_mut().enumerate() {
            *a = f(*a, o.refused.get(i).copied().unwrap_or(0));
        }
    }

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counters) {
        self.combine(o, |a, b| a + b);
    }

    /// What changed since `before` (counters only grow; a smaller value reads as 0).
    pub fn since(&self, before: &Counters) -> Counters {
        let mut d = self.clone();
        d.combine(before, u64::saturating_sub);
        d
    }

    /// Total refused transport messages.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }

    /// Sent messages neither delivered, refused, nor held by the relay for a device that
    /// was offline at the end.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.refused_total() + self.undelivered_offline)
    }
}
