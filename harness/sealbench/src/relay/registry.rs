//! Who is connected, their mailboxes while offline, groups and the key directory.
//!
//! Sharded maps under short `std` mutexes: the hot path (a connection sending to a peer it
//! has sent to before) does not come here at all, it uses its own cache of [`Peer`]s.

use super::metrics::RelayMetrics;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, mpsc};

const SHARDS: usize = 64;

/// A group's members: (client id, where to queue its frames).
type Members = Vec<(u64, Peer)>;

/// Shared control block of one connection: its queue accounting and its kill switch.
#[derive(Debug)]
pub struct ConnCtl {
    /// Bytes queued towards the connection and not yet written.
    pub queued_bytes: AtomicUsize,
    /// Set when another task decided this connection must close (slow consumer).
    pub killed: AtomicBool,
    /// Wakes the connection's task when `killed` is set.
    pub kill_notify: Notify,
    /// Distinguishes successive connections of one client id.
    pub generation: u64,
}

/// A handle to an online client: where to queue frames for it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's outgoing frame queue.
    pub tx: mpsc::Sender<Bytes>,
    /// Its control block.
    pub ctl: Arc<ConnCtl>,
}

/// Why a frame could not be queued to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueError {
    /// The peer's queue is full: it has been marked as a slow consumer and will be closed.
    Overloaded,
    /// The peer's connection has ended.
    Gone,
}

impl Peer {
    /// Queues `frame` without waiting. A full queue (by count or bytes) kills the peer as a
    /// slow consumer: a client that stops reading never makes the relay's memory grow.
    #[inline]
    pub fn enqueue(&self, frame: Bytes, byte_limit: usize) -> Result<(), EnqueueError> {
        if self.ctl.killed.load(Ordering::Relaxed) {
            return Err(EnqueueError::Gone);
        }
        let len = frame.len();
        let before = self.ctl.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > byte_limit {
            self.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.kill();
            return Err(EnqueueError::Overloaded);
        }
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        self.kill();
                        Err(EnqueueError::Overloaded)
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(EnqueueError::Gone),
                }
            }
        }
    }

    fn kill(&self) {
        if !self.ctl.killed.swap(true, Ordering::AcqRel) {
            self.ctl.kill_notify.notify_one();
        }
    }

    /// Is the peer's connection still running?
    pub fn is_live(&self) -> bool {
        !self.ctl.killed.load(Ordering::Relaxed) && !self.tx.is_closed()
    }
}

#[derive(Debug, Default)]
struct Slot {
    online: Option<Peer>,
    mailbox: VecDeque<Bytes>,
}

/// Outcome of routing to a client id.
#[derive(Debug)]
pub enum Route {
    /// The client is online: queue to this peer (and cache it).
    Online(Peer),
    /// The client is offline: the frame was stored in its mailbox.
    Stored,
    /// The client is offline and its mailbox (or the mailbox table) is full.
    MailboxFull,
}

/// Outcome of registering a client id.
#[derive(Debug)]
pub enum Register {
    /// Registered; these stored frames must be delivered first, in order.
    Ok(VecDeque<Bytes>),
    /// Another live connection holds the id.
    Duplicate,
}

/// The client table, mailboxes, groups and key directory.
#[derive(Debug)]
pub struct Registry {
    clients: Vec<Mutex<HashMap<u64, Slot>>>,
    groups: Vec<Mutex<HashMap<u64, Members>>>,
    keys: Vec<Mutex<HashMap<u64, Bytes>>>,
    mailboxes: AtomicUsize,
    keys_count: AtomicUsize,
    generation: AtomicU64,
}

fn shard<T>(v: &[Mutex<T>], id: u64) -> MutexGuard<'_, T> {
    // Ids are often sequential: mix before picking a shard.
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
    v[h as usize % v.len()].lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            clients: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            groups: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            keys: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            mailboxes: AtomicUsize::new(0),
            keys_count: AtomicUsize::new(0),
            generation: AtomicU64::new(1),
        }
    }

    /// A fresh control block for a new connection.
    pub fn new_ctl(&self) -> Arc<ConnCtl> {
        Arc::new(ConnCtl {
            queued_bytes: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            kill_notify: Notify::new(),
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Registers `id` as online at `peer`. Atomically takes its mailbox, so no message
    /// sent meanwhile can overtake the stored ones.
    pub fn register(&self, id: u64, peer: Peer, metrics: &RelayMetrics) -> Register {
        let mut map = shard(&self.clients, id);
        let slot = map.entry(id).or_default();
        if slot.online.as_ref().is_some_and(Peer::is_live) {
            return Register::Duplicate;
        }
        let stored = std::mem::take(&mut slot.mailbox);
        if !stored.is_empty() {
            self.mailboxes.fetch_sub(1, Ordering::Relaxed);
            metrics.mailbox_depth.dec_by(stored.len() as i64);
        }
        slot.online = Some(peer);
        Register::Ok(stored)
    }

    /// Marks `id` offline if `generation` is still the registered connection.
    pub fn unregister(&self, id: u64, generation: u64) {
        let mut map = shard(&self.clients, id);
        if let Some(slot) = map.get_mut(&id) {
            if slot.online.as_ref().is_some_and(|p| p.ctl.generation == generation) {
                slot.online = None;
            }
            if slot.online.is_none() && slot.mailbox.is_empty() {
                map.remove(&id);
            }
        }
    }

    /// Finds `id`; if it is offline, stores `frame()` in its mailbox (bounded).
    pub fn route(
        &self,
        id: u64,
        frame: impl FnOnce() -> Bytes,
        limits: (usize, usize),
        metrics: &RelayMetrics,
    ) -> Route {
        let (mailbox_limit, max_mailboxes) = limits;
        let mut map = shard(&self.clients, id);
        if let Some(peer) = map.get(&id).and_then(|s| s.online.as_ref()).filter(|p| p.is_live()) {
            return Route::Online(peer.clone());
        }
        let exists = map.get(&id).is_some_and(|s| !s.mailbox.is_empty());
        if !exists && self.mailboxes.load(Ordering::Relaxed) >= max_mailboxes {
            return Route::MailboxFull;
        }
        let slot = map.entry(id).or_default();
        slot.online = None;
        if slot.mailbox.len() >= mailbox_limit {
            return Route::MailboxFull;
        }
        if slot.mailbox.is_empty() {
            self.mailboxes.fetch_add(1, Ordering::Relaxed);
        }
        slot.mailbox.push_back(frame());
        metrics.mailbox_depth.inc();
        metrics.stored.inc();
        Route::Stored
    }

    /// Adds `id` to `group`.
    ///
    /// # Errors
    /// `Err(())` when the group already has `max_members` members.
    #[allow(clippy::result_unit_err)]
    pub fn join(&self, group: u64, id: u64, peer: Peer, max_members: usize) -> Result<(), ()> {
        let mut map = shard(&self.groups, group);
        let members = map.entry(group).or_default();
        if members.iter().any(|(m, _)| *m == id) {
            return Ok(());
        }
        if members.len() >= max_members {
            return Err(());
        }
        members.push((id, peer));
        Ok(())
    }

    /// Removes `id` from `group` (and the group when it is empty).
    pub fn leave(&self, group: u64, id: u64) {
        let mut map = shard(&self.groups, group);
        if let Some(members) = map.get_mut(&group) {
            members.retain(|(m, _)| *m != id);
            if members.is_empty() {
                map.remove(&group);
            }
        }
    }

    /// Calls `f` for every member of `group` but `except`.
    pub fn for_each_member(&self, group: u64, except: u64, mut f: impl FnMut(u64, &Peer)) {
        let map = shard(&self.groups, group);
        if let Some(members) = map.get(&group) {
            for (id, peer) in members.iter().filter(|(id, _)| *id != except) {
                f(*id, peer);
            }
        }
    }

    /// Publishes `id`'s key. Returns false when the directory is full.
    pub fn publish_key(&self, id: u64, key: Bytes, max_keys: usize) -> bool {
        let mut map = shard(&self.keys, id);
        if !map.contains_key(&id) {
            if self.keys_count.load(Ordering::Relaxed) >= max_keys {
                return false;
            }
            self.keys_count.fetch_add(1, Ordering::Relaxed);
        }
        map.insert(id, key);
        true
    }

    /// `id`'s published key.
    pub fn key(&self, id: u64) -> Option<Bytes> {
        shard(&self.keys, id).get(&id).cloned()
    }
}
