//! Who is connected, their mailboxes while offline, groups and the key directory.
//!
//! Sharded maps under short `std` mutexes: the hot path (a connection sending to a peer it
//! has sent to before) does not come here at all, it uses its own cache of [`Peer`]s.

use super::config::STORED_OVERHEAD;
use super::metrics::RelayMetrics;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 64;

/// A group's members: (client id, where to queue its frames).
type Members = Vec<(u64, Peer)>;

/// Shared control block of one connection: its queue of outgoing frames, the queue's
/// accounting, its kill switch and the waker of the connection's task.
///
/// The queue is a `VecDeque` under a short lock rather than a channel: it allocates only
/// once frames have waited in it (a tokio `mpsc` channel allocates its first 32-slot
/// block and a cache-padded channel up front, ~1.6 KB that every idle connection carried),
/// and the connection's one task both reads and writes, so one waker serves everything
/// that concerns it (frames queued, frames stored for it, being killed).
#[derive(Debug)]
pub struct ConnCtl {
    /// Frames queued towards the connection and not yet taken by its writing side.
    queue: Mutex<VecDeque<Bytes>>,
    /// The most frames [`ConnCtl::queue`] holds before the connection is a slow consumer.
    capacity: usize,
    /// Set (under the queue's lock) when the connection has stopped taking frames.
    closed: AtomicBool,
    /// Bytes queued towards the connection and not yet written.
    pub queued_bytes: AtomicUsize,
    /// Set when another task decided this connection must close (slow consumer).
    pub killed: AtomicBool,
    /// The connection's task: woken when a frame is queued to an empty queue, when
    /// `mail_pending` becomes true and when `killed` is set.
    pub waker: AtomicWaker,
    /// Distinguishes successive connections of one client id.
    pub generation: u64,
    /// The registered client id (0 before HELLO): the writer drains this id's mailbox.
    pub id: AtomicU64,
    /// Set (under the client's shard lock) while its mailbox holds frames the writer has
    /// not written yet; while it is set, new frames for the client join the mailbox too,
    /// so nothing overtakes the stored ones.
    pub mail_pending: AtomicBool,
}

impl ConnCtl {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Bytes>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves up to `max` queued frames to the end of `out`; returns how many.
    pub fn take_queued(&self, out: &mut Vec<Bytes>, max: usize) -> usize {
        let mut q = self.queue();
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        n
    }

    /// Stops the queue (from now on [`Peer::enqueue`] says [`EnqueueError::Gone`]) and
    /// moves what it holds to the end of `out`.
    pub fn close_queue(&self, out: &mut Vec<Bytes>) {
        let mut q = self.queue();
        self.closed.store(true, Ordering::Release);
        out.extend(q.drain(..));
        *q = VecDeque::new();
    }

    /// Gives the queue's memory back if it is empty (the connection has fallen silent).
    pub fn release_queue(&self) {
        let mut q = self.queue();
        if q.is_empty() {
            *q = VecDeque::new();
        }
    }
}

/// A handle to an online client: where to queue frames for it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its control block, which holds its queue.
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
    /// Queues `frame` without waiting and wakes the peer's task. A full queue (by count or
    /// bytes) kills the peer as a slow consumer: a client that stops reading never makes
    /// the relay's memory grow.
    #[inline]
    pub fn enqueue(&self, frame: Bytes, byte_limit: usize) -> Result<(), EnqueueError> {
        self.push(frame, byte_limit, true)
    }

    /// [`Peer::enqueue`] for a connection's own frames (acks, errors, WELCOME, pings),
    /// queued by its own task: that task drains its queue before it waits again, so
    /// waking it would only poll it once more for nothing.
    #[inline]
    pub fn enqueue_own(&self, frame: Bytes, byte_limit: usize) -> Result<(), EnqueueError> {
        self.push(frame, byte_limit, false)
    }

    #[inline]
    fn push(&self, frame: Bytes, byte_limit: usize, wake: bool) -> Result<(), EnqueueError> {
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
        let mut q = self.ctl.queue();
        let refused = if self.ctl.closed.load(Ordering::Relaxed) {
            Some(EnqueueError::Gone)
        } else if q.len() >= self.ctl.capacity {
            Some(EnqueueError::Overloaded)
        } else {
            None
        };
        if let Some(e) = refused {
            drop(q);
            self.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            if e == EnqueueError::Overloaded {
                self.kill();
            }
            return Err(e);
        }
        let was_empty = q.is_empty();
        q.push_back(frame);
        drop(q);
        // A non-empty queue is being drained: the writing side takes everything before it
        // waits again, so only the first frame needs to wake it.
        if was_empty && wake {
            self.ctl.waker.wake();
        }
        Ok(())
    }

    fn kill(&self) {
        if !self.ctl.killed.swap(true, Ordering::AcqRel) {
            self.ctl.waker.wake();
        }
    }

    /// Is the peer's connection still running?
    pub fn is_live(&self) -> bool {
        !self.ctl.killed.load(Ordering::Relaxed) && !self.ctl.closed.load(Ordering::Relaxed)
    }

    /// Tells the writer that the mailbox has frames for it.
    pub fn wake_mail(&self) {
        if !self.ctl.mail_pending.swap(true, Ordering::AcqRel) {
            self.ctl.waker.wake();
        }
    }
}

/// A known client id: its connection while online, its mailbox.
#[derive(Debug, Default)]
struct Slot {
    online: Option<Peer>,
    mailbox: VecDeque<Bytes>,
    /// Bytes charged to this mailbox (length + [`STORED_OVERHEAD`] per frame).
    charged: usize,
}

/// Outcome of routing to a client id.
#[derive(Debug)]
pub enum Route {
    /// The client is online with nothing stored: queue to this peer (and cache it).
    Online(Peer),
    /// The frame joined the client's mailbox (offline, or online with stored frames
    /// still being written to it).
    Stored,
    /// The mailbox cannot take it.
    MailboxFull {
        /// The limit's name (a metrics label): `messages`, `bytes`, `total_bytes` or
        /// `mailboxes`.
        limit: &'static str,
        /// For the ERROR frame.
        reason: &'static str,
    },
    /// The client id is not known (never registered, or forgotten): no mailbox.
    Unknown,
}

/// Outcome of registering a client id.
#[derive(Debug)]
pub enum Register {
    /// Registered; this many stored frames will be written first, in order, as the
    /// connection drains (the writer takes them from the mailbox).
    Ok(usize),
    /// Another live connection holds the id.
    Duplicate,
}

/// Mailbox limits, from the relay's config.
#[derive(Debug, Clone, Copy)]
pub struct MailLimits {
    /// Messages per mailbox.
    pub messages: usize,
    /// Bytes per mailbox.
    pub bytes: usize,
    /// Bytes in all mailboxes.
    pub total_bytes: usize,
    /// Non-empty mailboxes.
    pub mailboxes: usize,
}

/// The client table, mailboxes, groups and key directory.
#[derive(Debug)]
pub struct Registry {
    clients: Vec<Mutex<HashMap<u64, Slot>>>,
    groups: Vec<Mutex<HashMap<u64, Members>>>,
    keys: Vec<Mutex<HashMap<u64, Bytes>>>,
    mailboxes: AtomicUsize,
    known_limit: AtomicUsize,
    mail_bytes: AtomicUsize,
    known: AtomicUsize,
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
            known_limit: AtomicUsize::new(usize::MAX),
            mail_bytes: AtomicUsize::new(0),
            known: AtomicUsize::new(0),
            keys_count: AtomicUsize::new(0),
            generation: AtomicU64::new(1),
        }
    }

    /// An empty registry that forgets disconnected ids with empty mailboxes once it
    /// knows more than `max_known` ids.
    pub fn with_known_limit(max_known: usize) -> Self {
        let r = Self::new();
        r.known_limit.store(max_known, Ordering::Relaxed);
        r
    }

    /// A fresh control block for a new connection whose queue holds at most `capacity`
    /// frames.
    pub fn new_ctl(&self, capacity: usize) -> Arc<ConnCtl> {
        Arc::new(ConnCtl {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            closed: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            id: AtomicU64::new(0),
            mail_pending: AtomicBool::new(false),
        })
    }

    /// Bytes charged to all mailboxes now.
    pub fn mailbox_bytes(&self) -> usize {
        self.mail_bytes.load(Ordering::Relaxed)
    }

    /// Registers `id` as online at `peer`. Its mailbox stays where it is: the peer's
    /// writer takes frames from it as the connection drains, and until it is empty new
    /// frames for `id` join it, so nothing sent meanwhile overtakes the stored ones.
    ///
    /// A connection of the same id that is still closing (not live) is replaced.
    /// `welcome(stored)` runs under the registry's lock before the id goes online: the
    /// connection queues its WELCOME there, so no DELIVER routed to it can come first.
    pub fn register(&self, id: u64, peer: Peer, welcome: impl FnOnce(usize)) -> Register {
        let mut map = shard(&self.clients, id);
        let known = &self.known;
        let slot = map.entry(id).or_insert_with(|| {
            known.fetch_add(1, Ordering::Relaxed);
            Slot::default()
        });
        if slot.online.as_ref().is_some_and(Peer::is_live) {
            return Register::Duplicate;
        }
        let stored = slot.mailbox.len();
        if stored > 0 {
            // The writer starts on it once the connection has queued WELCOME and set
            // `ctl.id` (see `connection`).
            peer.ctl.mail_pending.store(true, Ordering::Release);
        }
        // WELCOME goes into the connection's queue before the id is online: from the
        // moment it is, a sender may queue a DELIVER to it directly, which must come after.
        welcome(stored);
        slot.online = Some(peer);
        Register::Ok(stored)
    }

    /// Marks `id` offline if `generation` is still its connection, after putting back
    /// `leftovers` (direct DELIVER frames that were queued to that connection and not
    /// written) at the front of its mailbox, in order. They were acknowledged to their
    /// senders, so they are kept whatever the limits (at most `queue_bytes` per closing
    /// connection), up to `hard_cap` bytes in all mailboxes; past it they are dropped.
    /// Returns how many were put back and how many were dropped.
    pub fn unregister(
        &self,
        id: u64,
        generation: u64,
        leftovers: Vec<Bytes>,
        hard_cap: usize,
        metrics: &RelayMetrics,
    ) -> (usize, usize) {
        let mut map = shard(&self.clients, id);
        let Some(slot) = map.get_mut(&id) else { return (0, leftovers.len()) };
        let mut n = 0;
        let mut dropped = 0;
        if !leftovers.is_empty() {
            let was_empty = slot.mailbox.is_empty();
            // The oldest first within the cap: put back a prefix, drop the tail.
            let mut keep = Vec::with_capacity(leftovers.len());
            for f in leftovers {
                let charge = f.len() + STORED_OVERHEAD;
                if self.mail_bytes.fetch_add(charge, Ordering::Relaxed) + charge > hard_cap {
                    self.mail_bytes.fetch_sub(charge, Ordering::Relaxed);
                    dropped += 1;
                    continue;
                }
                slot.charged += charge;
                keep.push(mark_stored(&f));
            }
            n = keep.len();
            for f in keep.into_iter().rev() {
                slot.mailbox.push_front(f);
            }
            if was_empty && n > 0 {
                self.mailboxes.fetch_add(1, Ordering::Relaxed);
            }
            metrics.mailbox_depth.inc_by(n as i64);
            metrics.mailbox_bytes.set(self.mail_bytes.load(Ordering::Relaxed) as i64);
        }
        if slot.online.as_ref().is_some_and(|p| p.ctl.generation == generation) {
            slot.online = None;
        }
        match &slot.online {
            // A newer connection of this id: it takes the frames put back.
            Some(p) if n > 0 => p.wake_mail(),
            Some(_) => {}
            None if slot.mailbox.is_empty() && self.known.load(Ordering::Relaxed) > self.known_limit() => {
                map.remove(&id);
                self.known.fetch_sub(1, Ordering::Relaxed);
            }
            None => {}
        }
        (n, dropped)
    }

    fn known_limit(&self) -> usize {
        self.known_limit.load(Ordering::Relaxed)
    }

    /// Finds `id`. When it is online with nothing stored, returns its peer; otherwise
    /// stores `frame(stored)` in its mailbox (`stored`: the client is offline), within
    /// `limits`. Stored frames are copied to an allocation of their own, so the bytes
    /// charged are the bytes held.
    pub fn route(
        &self,
        id: u64,
        frame: impl FnOnce(bool) -> Bytes,
        limits: MailLimits,
        metrics: &RelayMetrics,
    ) -> Route {
        let mut map = shard(&self.clients, id);
        let Some(slot) = map.get_mut(&id) else { return Route::Unknown };
        let live = slot.online.as_ref().filter(|p| p.is_live());
        if let Some(peer) = live
            && slot.mailbox.is_empty()
            && !peer.ctl.mail_pending.load(Ordering::Acquire)
        {
            return Route::Online(peer.clone());
        }
        let online = live.is_some();
        if slot.mailbox.is_empty() && self.mailboxes.load(Ordering::Relaxed) >= limits.mailboxes {
            return Route::MailboxFull {
                limit: "mailboxes",
                reason: "the relay holds the maximum number of mailboxes",
            };
        }
        if slot.mailbox.len() >= limits.messages {
            return Route::MailboxFull {
                limit: "messages",
                reason: "the recipient's mailbox holds its maximum number of messages",
            };
        }
        let f = frame(!online);
        let f = Bytes::copy_from_slice(&f);
        let charge = f.len() + STORED_OVERHEAD;
        if slot.charged + charge > limits.bytes {
            return Route::MailboxFull {
                limit: "bytes",
                reason: "the recipient's mailbox holds its maximum number of bytes",
            };
        }
        if self.mail_bytes.fetch_add(charge, Ordering::Relaxed) + charge > limits.total_bytes {
            self.mail_bytes.fetch_sub(charge, Ordering::Relaxed);
            return Route::MailboxFull {
                limit: "total_bytes",
                reason: "the relay's mailboxes hold their maximum total bytes",
            };
        }
        if slot.mailbox.is_empty() {
            self.mailboxes.fetch_add(1, Ordering::Relaxed);
        }
        slot.charged += charge;
        slot.mailbox.push_back(f);
        metrics.mailbox_depth.inc();
        metrics.mailbox_bytes.set(self.mail_bytes.load(Ordering::Relaxed) as i64);
        metrics.stored.inc();
        if let Some(peer) = live {
            peer.wake_mail();
        }
        Route::Stored
    }

    /// Appends to `out` up to `max_frames` / `max_bytes` (at least one frame) from the
    /// front of `id`'s mailbox, left in place until [`Registry::written`] says they were
    /// written. When the mailbox is empty, clears `ctl.mail_pending` (under the lock, so
    /// no frame can slip in between) and appends nothing.
    pub fn peek_mail(&self, id: u64, ctl: &ConnCtl, out: &mut Vec<Bytes>, max_frames: usize, max_bytes: usize) {
        let map = shard(&self.clients, id);
        let mailbox = map.get(&id).map(|s| &s.mailbox);
        let start = out.len();
        let mut bytes = 0;
        for f in mailbox.into_iter().flatten() {
            let n = out.len() - start;
            if n >= max_frames || (n > 0 && bytes + f.len() > max_bytes) {
                break;
            }
            bytes += f.len();
            out.push(f.clone());
        }
        if out.len() == start {
            ctl.mail_pending.store(false, Ordering::Release);
        }
    }

    /// Removes from `id`'s mailbox the frames of `batch` ([`Registry::peek_mail`]'s, in
    /// order): they were written to its connection. They are found by identity, not taken
    /// from the front: between the peek and the write, a closing older connection of the
    /// same id may have put its unwritten frames back in front of them (they must stay).
    pub fn written(&self, id: u64, batch: &[Bytes], metrics: &RelayMetrics) {
        let mut map = shard(&self.clients, id);
        let Some(slot) = map.get_mut(&id) else { return };
        let same = |a: &Bytes, b: &Bytes| a.as_ptr() == b.as_ptr() && a.len() == b.len();
        let Some(first) = batch.first() else { return };
        let Some(at) = slot.mailbox.iter().position(|f| same(f, first)) else { return };
        let n = batch.iter().zip(slot.mailbox.iter().skip(at)).take_while(|(a, b)| same(a, b)).count();
        let mut freed = 0;
        for f in slot.mailbox.drain(at..at + n) {
            freed += f.len() + STORED_OVERHEAD;
        }
        slot.charged -= freed;
        self.mail_bytes.fetch_sub(freed, Ordering::Relaxed);
        if n > 0 && slot.mailbox.is_empty() {
            self.mailboxes.fetch_sub(1, Ordering::Relaxed);
        }
        metrics.mailbox_depth.dec_by(n as i64);
        metrics.mailbox_bytes.set(self.mail_bytes.load(Ordering::Relaxed) as i64);
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

/// A copy of a DELIVER frame with the "stored" flag set.
fn mark_stored(f: &[u8]) -> Bytes {
    let mut b = f.to_vec();
    if b.len() > 10 {
        b[10] |= sealcore::frame::FLAG_STORED;
    }
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::{ArcWake, waker};

    /// Counts how often the connection's task is woken.
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(w: &Arc<Self>) {
            w.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn enqueue_wakes_the_connection_only_for_the_first_frame_and_never_for_its_own() -> Result<(), EnqueueError> {
        let peer = Peer { ctl: Registry::new().new_ctl(3) };
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let w = waker(wakes.clone());
        let woken = || wakes.0.load(Ordering::SeqCst);
        let frame = || Bytes::from_static(b"frame");
        peer.ctl.waker.register(&w);
        peer.enqueue(frame(), 1 << 20)?;
        peer.ctl.waker.register(&w); // the woken task polls again before it drains
        peer.enqueue(frame(), 1 << 20)?;
        assert_eq!(woken(), 1, "a queue being drained needs no second wake-up");
        let mut out = Vec::new();
        assert_eq!(peer.ctl.take_queued(&mut out, 8), 2);
        peer.enqueue_own(frame(), 1 << 20)?;
        assert_eq!(woken(), 1, "the connection's own frames wake nothing");
        peer.enqueue(frame(), 1 << 20)?;
        peer.enqueue(frame(), 1 << 20)?;
        assert_eq!(peer.enqueue(frame(), 1 << 20), Err(EnqueueError::Overloaded));
        assert!(peer.ctl.killed.load(Ordering::SeqCst) && !peer.is_live());
        assert_eq!(peer.ctl.queued_bytes.load(Ordering::SeqCst), 5 * frame().len());
        out.clear();
        peer.ctl.close_queue(&mut out);
        assert_eq!(out.len(), 3);
        Ok(())
    }

    #[test]
    fn a_closed_queue_refuses_frames_as_gone() {
        let peer = Peer { ctl: Registry::new().new_ctl(8) };
        peer.ctl.close_queue(&mut Vec::new());
        assert_eq!(peer.enqueue(Bytes::from_static(b"x"), 1 << 20), Err(EnqueueError::Gone));
        assert!(!peer.is_live());
        assert_eq!(peer.ctl.queued_bytes.load(Ordering::SeqCst), 0);
    }
}
