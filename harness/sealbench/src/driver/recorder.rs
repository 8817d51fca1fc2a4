//! What a driver shard records: one HdrHistogram per metric (ns, 3 significant digits),
//! and per traffic class for the metrics users ask about per class, plus plain counters.
//! Recording never allocates and takes no lock: each shard owns its recorder; the
//! coordinator merges copies once per second. Memory is fixed per shard, whatever the
//! number of clients.
//!
//! # Layout
//! - this module — the [`Metric`]s.
//! - [`counters`] — the run's [`Counters`], written once in one list.
//! - [`histograms`] — [`Histograms`]: one histogram per metric and per (metric, tag).
//! - [`tags`] (now [`crate::tags`]) — traffic classes ([`tags::TagSet`], `class=group,size=50`) and their text forms.

pub mod counters;
pub mod histograms;

/// Traffic classes: the vocabulary moved to [`crate::tags`] (scenario, driver and results
/// share it); kept here under its old path.
pub use crate::tags;

pub use counters::Counters;
pub(crate) use counters::counters_table;
pub use histograms::Histograms;

/// The latency metrics, written once: each row is a [`Metric`] variant (its doc says what
/// is timed), its name in result files, interval-log tags and thresholds, its place in
/// tables (`table`: end to end first, set-up after, the generator's own lag last), and,
/// for the metrics also recorded per traffic class ([`tags`]), its place among
/// [`Metric::TAGGED`] (`tagged`). Generates the enum, [`Metric::ALL`], [`Metric::name`],
/// [`Metric::TABLE`] and [`Metric::TAGGED`]; a place given twice or left out fails to
/// compile.
macro_rules! metrics {
    ($( $(#[$doc:meta])* $variant:ident : $name:literal, table $table:literal $(, tagged $tagged:literal)?; )*) => {
        /// How many metrics there are.
        const METRICS: usize = [$( $name ),*].len();

        /// The latency metrics.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(usize)]
        pub enum Metric {
            $( $(#[$doc])* $variant, )*
        }

        impl Metric {
            /// Every metric, in index order.
            pub const ALL: [Metric; METRICS] = [$( Metric::$variant ),*];
            /// Each metric's name, in index order.
            const NAMES: [&str; METRICS] = [$( $name ),*];
            /// Each metric's place in [`Metric::TABLE`], in index order.
            const TABLE_PLACES: [Option<usize>; METRICS] = [$( Some($table) ),*];
            /// Each metric's place among [`Metric::TAGGED`], in index order.
            const TAGGED_PLACES: [Option<usize>; METRICS] = [$( place!($($tagged)?) ),*];
        }
    };
}

/// `Some(place)`, or `None` when the row gives none.
macro_rules! place {
    () => {
        None
    };
    ($place:literal) => {
        Some($place)
    };
}

metrics! {
    /// The whole connection set-up: [`Metric::Tcp`] + [`Metric::Tls`] (wss) +
    /// [`Metric::Upgrade`].
    Connect: "connect", table 13;
    /// HELLO sent → WELCOME received (and the key publish or group join asked for), on
    /// sealbench's own wire.
    Register: "register", table 17;
    /// The log-in on another server's wire (`relay.wire` `mqtt`: CONNECT → CONNACK and the
    /// subscriptions' SUBACKs; `xmpp`: stream open → SASL → bind, presence sent): what
    /// [`Metric::Register`] is on sealbench's wire.
    Login: "login", table 22;
    /// First handshake message sent → transport ready, on the initiator.
    Handshake: "handshake", table 12;
    /// Intended send → decrypted at the recipient (coordinated-omission corrected), for
    /// messages delivered online (an offline delivery is [`Metric::OfflineE2e`] only).
    E2e: "e2e", table 0, tagged 3;
    /// Actual send → decrypted at the recipient.
    E2eRaw: "e2e_raw", table 1, tagged 4;
    /// Actual send → relay ACK received (with `relay.ack`).
    RelayAck: "relay_ack", table 11;
    /// Sealing one message (sampled).
    Seal: "seal", table 18;
    /// Opening one message (sampled).
    Open: "open", table 19;
    /// How late the generator sent relative to the schedule.
    ScheduleLag: "schedule_lag", table 20;
    /// Intended send → the first recipient device decrypted it, per logical message with
    /// several recipient devices (a group message, or a DM to a user with several devices).
    FanoutFirst: "fanout_first", table 3, tagged 6;
    /// Intended send → the last recipient device decrypted it; recorded only when every
    /// expected copy arrived (a partial fan-out has no "last").
    FanoutLast: "fanout_last", table 4, tagged 7;
    /// The sender's time to seal and hand over every copy of one logical message (client
    /// fan-out: one seal per recipient device; relay fan-out: one seal).
    FanoutSeal: "fanout_seal", table 6, tagged 8;
    /// Intended send → decrypted after the recipient reconnected (the relay held it in its
    /// mailbox). Not also recorded in [`Metric::E2e`]: offline minutes would swamp it.
    OfflineE2e: "offline_e2e", table 2, tagged 5;
    /// A reconnecting client's WELCOME → the last message its mailbox held received.
    MailboxDrain: "mailbox_drain", table 10;
    /// `connect()` called → TCP connected (the first part of [`Metric::Connect`]).
    Tcp: "tcp", table 14;
    /// TCP connected → TLS handshake done (`wss://` only; nothing recorded for `ws://`).
    Tls: "tls", table 15;
    /// Upgrade request sent → `101 Switching Protocols` received (the last part of
    /// [`Metric::Connect`]).
    Upgrade: "upgrade", table 16;
    /// `crypto.protocol = "megolm"`: a sender's time to encrypt its new group session key
    /// for every other member device (over Olm) and hand the copies over, at each rotation.
    KeyShare: "key_share", table 5, tagged 2;
    /// `crypto.protocol = "mls"`: creating a commit (the group's creation adding every
    /// member, or a self-update), at the committer.
    MlsCommit: "mls_commit", table 9, tagged 0;
    /// `crypto.protocol = "mls"`: processing (and merging) a commit, at each member.
    MlsCommitProcess: "mls_commit_process", table 8, tagged 1;
    /// `crypto.protocol = "mls"`: processing a Welcome, at each joining device.
    MlsWelcome: "mls_welcome", table 7;
    /// `crypto.franking`: the sender's franking of one message (drawing its franking key
    /// and committing to the message), sampled as [`Metric::Seal`] is.
    Frank: "frank", table 21;
}

/// The metrics `places` puts in order, `N` of them (those with a place).
///
/// # Panics
/// At compile time: a place given twice, or one left out.
const fn in_order<const N: usize>(places: [Option<usize>; METRICS]) -> [Metric; N] {
    let mut out = [Metric::Connect; N];
    let mut filled = [false; N];
    let mut i = 0;
    while i < METRICS {
        if let Some(p) = places[i] {
            assert!(p < N && !filled[p], "a metric's place is given twice or out of range");
            out[p] = Metric::ALL[i];
            filled[p] = true;
        }
        i += 1;
    }
    let mut p = 0;
    while p < N {
        assert!(filled[p], "a place in the metrics' order is left out");
        p += 1;
    }
    out
}

/// How many metrics have a place in `places`.
const fn placed(places: [Option<usize>; METRICS]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < METRICS {
        if places[i].is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

impl Metric {
    /// The order latency metrics are listed in tables: end to end first, set-up after,
    /// the generator's own lag last.
    pub const TABLE: [Metric; METRICS] = in_order(Metric::TABLE_PLACES);

    /// The metrics also recorded per traffic class ([`tags`]): those a user asks about
    /// "for groups of 500" or "for DMs". Set-up, crypto and generator metrics are not.
    pub const TAGGED: [Metric; placed(Metric::TAGGED_PLACES)] = in_order(Metric::TAGGED_PLACES);

    /// Name in result files, interval-log tags and thresholds.
    pub fn name(self) -> &'static str {
        Metric::NAMES[self as usize]
    }

    /// Its place among [`Metric::TAGGED`], if it is recorded per tag.
    #[inline]
    pub fn tagged_index(self) -> Option<usize> {
        Metric::TAGGED_PLACES[self as usize]
    }
}

/// Highest recordable value: 1 hour in ns (offline deliveries can be minutes late; larger
/// values are clamped). See [`Histograms`] for what this costs in memory.
pub const MAX_NS: u64 = 3_600_000_000_000;

/// A send this much later than intended counts as late (1 ms).
pub const LATE_SEND_NS: u64 = 1_000_000;

/// Error codes are counted in a fixed array indexed by code.
pub const MAX_CODE: usize = 32;
