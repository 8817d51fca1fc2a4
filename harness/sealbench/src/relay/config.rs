//! Relay limits and options, all with defaults, all settable from `sealbench relay`.

use std::time::Duration;

/// How the relay behaves. Every limit bounds memory or refuses input explicitly.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Largest accepted WebSocket message, bytes. Larger ones get `TOO_LARGE`.
    pub max_message: usize,
    /// Messages stored per offline recipient before senders get `MAILBOX_FULL`.
    pub mailbox_limit: usize,
    /// Bytes stored per recipient (each message charged its length plus
    /// [`STORED_OVERHEAD`]) before senders get `MAILBOX_FULL`.
    pub mailbox_bytes: usize,
    /// Bytes stored in all mailboxes together (same charge): the hard bound on mailbox
    /// memory, whatever the number of recipients.
    pub mailbox_total_bytes: usize,
    /// Non-empty mailboxes at once (bounds the per-mailbox bookkeeping).
    pub max_mailboxes: usize,
    /// Client ids remembered after they disconnect (a mailbox exists only for an id that
    /// has registered, so made-up ids cannot take memory). Past it, an id that disconnects
    /// with an empty mailbox is forgotten, and sends to it get `UNKNOWN_RECIPIENT`.
    pub max_known_clients: usize,
    /// Frames queued towards one connection before it is a slow consumer.
    pub queue_messages: usize,
    /// Bytes queued towards one connection before it is a slow consumer.
    pub queue_bytes: usize,
    /// Connections accepted at once; further upgrades get HTTP 503.
    pub max_connections: usize,
    /// Time a new connection has to finish the WebSocket upgrade and send HELLO.
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed; a ping goes out at half of it.
    pub idle_timeout: Duration,
    /// Groups one client may be in.
    pub max_groups_per_client: usize,
    /// Members one group may have.
    pub max_group_members: usize,
    /// Entries the key directory may hold.
    pub max_keys: usize,
    /// Limits of the key directory's pools (one-time keys, key packages).
    pub key_pools: super::keypool::PoolLimits,
    /// Limits on each connection's key claims (rate, burst, per peer).
    pub key_claims: super::keypool::ClaimLimits,
    /// When set, HELLO must carry HMAC-SHA256(secret, client id).
    pub auth_secret: Option<Vec<u8>>,
    /// tungstenite read buffer per connection, bytes (allocated eagerly per connection, and
    /// zero-filled by tungstenite before every read: small is cheaper on both counts;
    /// larger messages still arrive, the buffer grows for them).
    pub read_buffer: usize,
    /// tungstenite write buffer target per connection, bytes.
    pub write_buffer: usize,
    /// Test and comparison aid: hold every routed message this long before routing it.
    pub delay: Duration,
    /// Test aid: tamper with, replay, duplicate, drop, reorder or delay a fraction of the
    /// forwarded 1:1 transport messages (see [`super::adversary`]). `None` in production.
    pub adversary: Option<super::adversary::Adversary>,
    /// Serve `wss://`: TLS with this configuration in front of every upgrade (see
    /// [`super::tls`]). `None`: plain `ws://`.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The relay that reads: match the text of every PLAIN / PLAIN_GROUP body against a
    /// keyword list, and count or block what matches (see [`super::scan`]). `None`: the
    /// relay reads nothing (E2E bodies are opaque to it in any case).
    pub scan: Option<std::sync::Arc<super::scan::Scanner>>,
}

/// Bytes charged per stored message on top of its length (its slot in the mailbox queue
/// and the allocation's header), so that many tiny messages are bounded too.
pub const STORED_OVERHEAD: usize = 64;

/// File descriptors kept free below the process limit for the listener, the metrics
/// server, logs and the 503 answers themselves.
pub const FD_RESERVE: u64 = 64;

impl Default for RelayConfig {
    /// The defaults, with the connection limit this machine allows
    /// ([`default_max_connections`]).
    fn default() -> Self {
        RelayConfig { max_connections: default_max_connections(), ..RelayConfig::static_defaults() }
    }
}

impl RelayConfig {
    /// The defaults with the open-file connection limit (before the memory budget).
    fn static_defaults() -> Self {
        RelayConfig {
            max_message: 64 * 1024,
            mailbox_limit: 1000,
            mailbox_bytes: 16 * 1024 * 1024,
            mailbox_total_bytes: 512 * 1024 * 1024,
            max_mailboxes: 100_000,
            max_known_clients: 1_000_000,
            queue_messages: 1024,
            queue_bytes: 256 * 1024,
            max_connections: fd_max_connections(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_groups_per_client: 64,
            max_group_members: 1024,
            max_keys: 1_000_000,
            key_pools: super::keypool::PoolLimits::default(),
            key_claims: super::keypool::ClaimLimits::default(),
            auth_secret: None,
            read_buffer: 2 * 1024,
            write_buffer: 16 * 1024,
            delay: Duration::ZERO,
            adversary: None,
            tls: None,
            scan: None,
        }
    }
}

/// The process's soft open-file limit.
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024)
}

/// The process's hard open-file limit (what the soft one can be raised to without
/// privileges); `None` when unlimited.
pub fn open_file_hard_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
}

/// Raises the soft open-file limit to the hard one, as servers and tools that hold many
/// sockets do at start (Go's runtime does it for every program): a stock desktop's soft
/// limit of 1,024 would otherwise refuse the quickstart's 1,000 clients while its hard
/// limit allows far more. Returns the soft limit before and after (the same when it could
/// not be raised, or already was at the hard limit).
pub fn raise_open_file_limit() -> (u64, u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let soft = before.current.unwrap_or(1024);
    // An unlimited hard limit cannot be a soft one for open files (the kernel caps it at
    // fs.nr_open): leave such a soft limit as it is.
    let Some(hard) = before.maximum.filter(|&h| h > soft) else { return (soft, soft) };
    match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: before.maximum }) {
        Ok(()) => (soft, open_file_limit()),
        Err(_) => (soft, soft),
    }
}

/// The soft open-file limit minus [`FD_RESERVE`]: what one relay process can hold.
pub fn fd_max_connections() -> usize {
    open_file_limit().saturating_sub(FD_RESERVE).max(1) as usize
}

/// The default connection limit: what the open files allow ([`fd_max_connections`]),
/// and no more than fit the memory budget ([`memory_budget`]) at the other defaults'
/// worst case — so that the defaults' worst case fits the machine the relay runs on.
pub fn default_max_connections() -> usize {
    let fd = fd_max_connections();
    match memory_budget() {
        Some(budget) => {
            let probe = RelayConfig { max_connections: 1, ..RelayConfig::static_defaults() };
            let room = budget.saturating_sub(shared_worst_case(&probe));
            fd.min((room / per_connection_worst_case(&probe)).max(1) as usize)
        }
        None => fd,
    }
}

/// Bytes the relay's defaults may take in the worst case: a quarter of this machine's
/// memory (the smaller of `MemTotal` and the cgroup's `memory.max`). `None` where neither
/// can be read (the connection limit then follows the open files alone).
pub fn memory_budget() -> Option<u64> {
    machine_memory().map(|m| m / 4)
}

/// This machine's memory as the relay may use it: `MemTotal` of `/proc/meminfo`, or the
/// cgroup v2 limit `memory.max` when that is lower.
pub fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|v| v.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The largest WebSocket message the relay reads before closing the connection (1009):
/// messages between `max_message` and this get `TOO_LARGE` and the connection stays.
pub fn read_cap(max_message: usize) -> usize {
    (max_message + max_message / 4).max(max_message + 1024)
}

/// Bytes of one connection, everything at its limit (`docs/PROTOCOL.md` §4.6): its task
/// and state (6 KiB), read and write buffers, a message being read up to [`read_cap`],
/// its send queue (`queue_bytes` + 32 B a slot), its group memberships (24 B each) and its
/// claim-rate state (1 KiB).
pub fn per_connection_worst_case(c: &RelayConfig) -> u64 {
    (6 * 1024
        + c.read_buffer
        + c.write_buffer
        + read_cap(c.max_message)
        + c.queue_bytes
        + 32 * c.queue_messages
        + 24 * c.max_groups_per_client
        + 1024) as u64
}

/// Bytes the relay holds whatever its connections, everything at its limit: the
/// mailboxes twice over (the second half only for acknowledged frames put back when their
/// connection closed), 100 B per known client id, 400 B per directory key, the key pools.
pub fn shared_worst_case(c: &RelayConfig) -> u64 {
    (2 * c.mailbox_total_bytes + 100 * c.max_known_clients + 400 * c.max_keys + c.key_pools.total_bytes) as u64
}

/// The relay's worst-case memory with `c` (every limit reached at once).
pub fn worst_case_bytes(c: &RelayConfig) -> u64 {
    c.max_connections as u64 * per_connection_worst_case(c) + shared_worst_case(c)
}

/// The worst case of `c` spelled out, as `relay --help` and the relay at start print it.
pub fn worst_case_text(c: &RelayConfig) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let budget = match memory_budget() {
        Some(b) => format!(" (a quarter of this machine's memory: {:.2} GiB)", b as f64 / GIB),
        None => String::new(),
    };
    format!(
        "{} connections × {:.0} KiB + {:.2} GiB shared = {:.2} GiB{budget}",
        c.max_connections,
        per_connection_worst_case(c) as f64 / 1024.0,
        shared_worst_case(c) as f64 / GIB,
        worst_case_bytes(c) as f64 / GIB
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_worst_case_fits_a_quarter_of_this_machines_memory() {
        let d = RelayConfig::default();
        let worst = worst_case_bytes(&d);
        match memory_budget() {
            Some(budget) => assert!(worst <= budget, "{} > budget {budget}", worst_case_text(&d)),
            None => assert_eq!(d.max_connections, fd_max_connections()),
        }
        // The formula adds what it says: one more connection costs one connection's worth.
        let more = RelayConfig { max_connections: d.max_connections + 1, ..d.clone() };
        assert_eq!(worst_case_bytes(&more) - worst, per_connection_worst_case(&d));
        // On this project's machines (24 GiB, 20,000 open files) it is at most 6 GiB.
        if machine_memory().is_some_and(|m| m <= 24 << 30) {
            assert!(worst <= 6 << 30, "{}", worst_case_text(&d));
        }
    }

    #[test]
    fn the_read_cap_leaves_room_over_the_message_limit() {
        assert_eq!(read_cap(64 * 1024), 80 * 1024);
        assert_eq!(read_cap(1024), 2048);
    }
}
