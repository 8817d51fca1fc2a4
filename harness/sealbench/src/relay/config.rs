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
    fn default() -> Self {
        RelayConfig {
            max_message: 64 * 1024,
            mailbox_limit: 1000,
            mailbox_bytes: 16 * 1024 * 1024,
            mailbox_total_bytes: 1024 * 1024 * 1024,
            max_mailboxes: 100_000,
            max_known_clients: 1_000_000,
            queue_messages: 4096,
            queue_bytes: 8 * 1024 * 1024,
            max_connections: default_max_connections(),
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
pub fn default_max_connections() -> usize {
    open_file_limit().saturating_sub(FD_RESERVE).max(1) as usize
}
