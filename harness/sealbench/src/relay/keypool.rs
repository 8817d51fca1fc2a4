//! The key directory's pools: what Olm and MLS need beyond a static key. Each client has
//! one pool per pool id (Olm one-time keys, MLS key packages): one-time items, each handed
//! out at most once, and a fallback handed out (again and again) only when the pool is
//! empty. A claim takes the pool's shard lock, pops the oldest item and releases the lock:
//! concurrent claims cannot both get the same item.
//!
//! Two kinds of fairness bound what one client can do to the others:
//! - **a share per client** ([`PoolLimits::client_bytes`]): all of one client's pools
//!   together hold at most that many bytes, so one client cannot fill the directory's
//!   budget ([`PoolLimits::total_bytes`]) and starve every other client's publishes;
//! - **claim rates per claimer** ([`ClaimLimits`], kept by the claiming connection in a
//!   [`ClaimLimiter`]): a token bucket over all its claims, and a cap on the items it may
//!   take from any one peer's pool per window. This is the one-time-prekey exhaustion
//!   problem of Signal-like systems (a claimer drains a victim's one-time keys, then takes
//!   its fallback over and over); real servers limit claims per (requester, target) pair
//!   the same way.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

/// Limits of the pools (they bound the directory's memory).
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// One-time items one pool may hold.
    pub items_per_pool: usize,
    /// Bytes all pools may hold together (each item charged its length + 32).
    pub total_bytes: usize,
    /// Bytes all of one client's pools may hold together (same charge): its share of
    /// `total_bytes`. The default holds a full pool of 1,000 Olm one-time keys and one of
    /// 1,000 MLS key packages of up to ~480 bytes, and lets no fewer than 256 clients fill
    /// the directory.
    pub client_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { items_per_pool: 1000, total_bytes: 256 * 1024 * 1024, client_bytes: 1024 * 1024 }
    }
}

/// Limits on one claimer's KEY_CLAIMs (per connection).
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits {
    /// Claims a second, sustained (the bucket's refill).
    pub rate: f64,
    /// Claims at once (the bucket's size): enough for a device to set up sessions with every
    /// member of the largest group twice over.
    pub burst: u32,
    /// Items one claimer may take from one peer's pool within `peer_window` (one-time and
    /// fallback alike).
    pub per_peer: u32,
    /// The window of `per_peer`.
    pub peer_window: Duration,
}

impl Default for ClaimLimits {
    fn default() -> Self {
        ClaimLimits { rate: 100.0, burst: 2048, per_peer: 16, peer_window: Duration::from_secs(60) }
    }
}

/// Peers a [`ClaimLimiter`] remembers at once (past it the one seen longest ago is
/// forgotten: a claimer cycling through more peers than this is held back by the bucket
/// alone, `rate` a second).
pub const PEER_SLOTS: usize = 32;

/// Why a claim was refused before it reached the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// The claimer's bucket is empty ([`ClaimLimits::rate`], [`ClaimLimits::burst`]).
    Rate,
    /// The claimer took its `per_peer` items of this peer's pool in the window.
    Peer,
}

impl ClaimRefusal {
    /// For `/metrics` (`reason` label).
    pub fn label(self) -> &'static str {
        match self {
            ClaimRefusal::Rate => "claimer_rate",
            ClaimRefusal::Peer => "peer_rate",
        }
    }

    /// For the ERROR frame.
    pub fn reason(self) -> &'static str {
        match self {
            ClaimRefusal::Rate => "too many key claims from this connection: over its claim rate",
            ClaimRefusal::Peer => "too many key claims of this client's pool from this connection in the window",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PeerSlot {
    peer: u64,
    pool: u8,
    count: u32,
    since: Instant,
}

/// One claimer's rate state: made at its first claim (a connection that never claims pays
/// nothing), a fixed size after that.
#[derive(Debug)]
pub struct ClaimLimiter {
    tokens: f64,
    last: Instant,
    slots: Vec<PeerSlot>,
}

impl ClaimLimiter {
    /// A full bucket at `now`.
    pub fn new(limits: ClaimLimits, now: Instant) -> Self {
        ClaimLimiter { tokens: f64::from(limits.burst), last: now, slots: Vec::with_capacity(PEER_SLOTS) }
    }

    /// Takes one claim of `peer`'s pool `pool` at `now`, or says why not (a refused claim
    /// takes nothing).
    ///
    /// # Errors
    /// The [`ClaimRefusal`].
    pub fn take(&mut self, peer: u64, pool: u8, now: Instant, limits: ClaimLimits) -> Result<(), ClaimRefusal> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * limits.rate).min(f64::from(limits.burst));
        let slot = match self.slots.iter().position(|s| s.peer == peer && s.pool == pool) {
            Some(i) => i,
            None if self.slots.len() < PEER_SLOTS => {
                self.slots.push(PeerSlot { peer, pool, count: 0, since: now });
                self.slots.len() - 1
            }
            None => {
                let oldest = (0..self.slots.len()).min_by_key(|&i| self.slots[i].since).unwrap_or(0);
                self.slots[oldest] = PeerSlot { peer, pool, count: 0, since: now };
                oldest
            }
        };
        let s = &mut self.slots[slot];
        if now.saturating_duration_since(s.since) >= limits.peer_window {
            *s = PeerSlot { peer, pool, count: 0, since: now };
        }
        if s.count >= limits.per_peer {
            return Err(ClaimRefusal::Peer);
        }
        if self.tokens < 1.0 {
            return Err(ClaimRefusal::Rate);
        }
        self.tokens -= 1.0;
        s.count += 1;
        Ok(())
    }
}

/// Bytes charged per item on top of its length (its queue slot and allocation).
const ITEM_OVERHEAD: usize = 32;

#[derive(Debug, Default)]
struct Pool {
    items: VecDeque<Bytes>,
    fallback: Option<Bytes>,
}

/// Why a publish was refused (nothing of it was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// The pool would hold more than its limit of items.
    PoolFull,
    /// All pools together would pass their byte limit.
    DirectoryFull,
    /// The client's pools together would pass its share ([`PoolLimits::client_bytes`]).
    ClientShare,
    /// An empty item, a pool id of 0, or a fallback publish without exactly one item.
    BadItem,
}

impl PublishError {
    /// For the ERROR frame.
    pub fn reason(self) -> &'static str {
        match self {
            PublishError::PoolFull => "the key pool holds its maximum number of items",
            PublishError::DirectoryFull => "the key directory holds its maximum number of bytes",
            PublishError::ClientShare => "this client's key pools hold its share of the key directory's bytes",
            PublishError::BadItem => "pool 0, an empty item, or a fallback publish without exactly one item",
        }
    }

    /// For `/metrics` (`reason` label).
    pub fn label(self) -> &'static str {
        match self {
            PublishError::PoolFull => "pool_full",
            PublishError::DirectoryFull => "directory_full",
            PublishError::ClientShare => "client_share",
            PublishError::BadItem => "bad_item",
        }
    }
}

/// What a claim handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The item.
    pub item: Bytes,
    /// True when the pool was empty and this is its fallback.
    pub fallback: bool,
    /// One-time items left after this claim.
    pub remaining: u32,
}

/// One lock's share of the pools: the pools of the clients that hash to it, and what each
/// of those clients' pools hold together (bytes, the same charge as the total).
#[derive(Debug, Default)]
struct Shard {
    pools: HashMap<(u64, u8), Pool>,
    client_bytes: HashMap<u64, usize>,
}

/// All clients' key pools.
#[derive(Debug)]
pub struct KeyPools {
    shards: Vec<Mutex<Shard>>,
    bytes: AtomicUsize,
}

impl Default for KeyPools {
    fn default() -> Self {
        KeyPools { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(), bytes: AtomicUsize::new(0) }
    }
}

impl KeyPools {
    fn shard(&self, client: u64) -> MutexGuard<'_, Shard> {
        let h = client.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        self.shards[h as usize % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `items` to `client`'s pool `pool` (or, `fallback`, replaces its fallback with
    /// the single item), all or nothing. Returns what the pool then holds: (one-time
    /// items, has a fallback). With no items, only reports.
    ///
    /// # Errors
    /// A [`PublishError`]; nothing is stored then.
    pub fn publish<'a>(
        &self,
        client: u64,
        pool: u8,
        fallback: bool,
        items: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        limits: PoolLimits,
    ) -> Result<(u32, bool), PublishError> {
        let n = items.len();
        if pool == 0 || items.clone().any(<[u8]>::is_empty) || (fallback && n != 1) {
            return Err(PublishError::BadItem);
        }
        let charge: usize = items.clone().map(|i| i.len() + ITEM_OVERHEAD).sum();
        let mut guard = self.shard(client);
        let shard = &mut *guard;
        let p = shard.pools.entry((client, pool)).or_default();
        if !fallback && p.items.len() + n > limits.items_per_pool {
            return Err(PublishError::PoolFull);
        }
        let freed = if fallback { p.fallback.as_ref().map_or(0, |f| f.len() + ITEM_OVERHEAD) } else { 0 };
        let held = shard.client_bytes.get(&client).copied().unwrap_or(0);
        if held + charge > limits.client_bytes + freed {
            return Err(PublishError::ClientShare);
        }
        if self.bytes.fetch_add(charge, Ordering::Relaxed) + charge > limits.total_bytes + freed {
            self.bytes.fetch_sub(charge, Ordering::Relaxed);
            return Err(PublishError::DirectoryFull);
        }
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
        *shard.client_bytes.entry(client).or_default() = held + charge - freed;
        if fallback {
            p.fallback = items.map(Bytes::copy_from_slice).next();
        } else {
            p.items.extend(items.map(Bytes::copy_from_slice));
        }
        Ok((p.items.len() as u32, p.fallback.is_some()))
    }

    /// Hands out one item of `client`'s pool `pool`: the oldest one-time item (removed:
    /// no other claim can get it), or the fallback when none is left. None when the pool
    /// has neither.
    pub fn claim(&self, client: u64, pool: u8) -> Option<Claim> {
        let mut guard = self.shard(client);
        let shard = &mut *guard;
        let p = shard.pools.get_mut(&(client, pool))?;
        if let Some(item) = p.items.pop_front() {
            let charge = item.len() + ITEM_OVERHEAD;
            self.bytes.fetch_sub(charge, Ordering::Relaxed);
            if let Some(held) = shard.client_bytes.get_mut(&client) {
                *held = held.saturating_sub(charge);
            }
            return Some(Claim { item, fallback: false, remaining: p.items.len() as u32 });
        }
        p.fallback.as_ref().map(|f| Claim { item: f.clone(), fallback: true, remaining: 0 })
    }

    /// Bytes charged to all pools now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<'a>(v: &'a [&'static [u8]]) -> impl ExactSizeIterator<Item = &'static [u8]> + Clone + 'a {
        v.iter().copied()
    }

    #[test]
    fn claims_take_each_item_once_then_the_fallback() {
        let pools = KeyPools::default();
        let lim = PoolLimits::default();
        assert_eq!(pools.publish(7, 1, false, items(&[b"a", b"b"]), lim), Ok((2, false)));
        assert_eq!(
            pools.claim(7, 1).map(|c| (c.item, c.fallback, c.remaining)),
            Some((Bytes::from_static(b"a"), false, 1))
        );
        assert_eq!(pools.claim(7, 1).map(|c| c.item), Some(Bytes::from_static(b"b")));
        assert_eq!(pools.claim(7, 1), None, "empty, no fallback");
        assert_eq!(pools.publish(7, 1, true, items(&[b"fb"]), lim), Ok((0, true)));
        for _ in 0..2 {
            assert_eq!(pools.claim(7, 1).map(|c| (c.item, c.fallback)), Some((Bytes::from_static(b"fb"), true)));
        }
        assert_eq!(pools.claim(7, 2), None, "another pool");
        assert_eq!(pools.bytes(), 2 + ITEM_OVERHEAD, "only the fallback is held");
    }

    #[test]
    fn publishes_past_a_limit_store_nothing() {
        let pools = KeyPools::default();
        let lim = PoolLimits { items_per_pool: 2, total_bytes: 1000, client_bytes: 10_000 };
        assert_eq!(pools.publish(1, 1, false, items(&[b"a", b"b", b"c"]), lim), Err(PublishError::PoolFull));
        assert_eq!(pools.publish(1, 1, false, items(&[b""]), lim), Err(PublishError::BadItem));
        assert_eq!(pools.publish(1, 0, false, items(&[b"a"]), lim), Err(PublishError::BadItem));
        assert_eq!(pools.publish(1, 1, true, items(&[b"a", b"b"]), lim), Err(PublishError::BadItem));
        let big = [0u8; 990];
        assert_eq!(pools.publish(2, 1, false, vec![&big[..]].into_iter(), lim), Err(PublishError::DirectoryFull));
        assert_eq!(pools.bytes(), 0);
        assert_eq!(pools.claim(1, 1), None);
    }

    #[test]
    fn one_client_over_its_share_is_refused_while_another_still_publishes() {
        let pools = KeyPools::default();
        let lim = PoolLimits { items_per_pool: 1000, total_bytes: 10_000, client_bytes: 4 * (32 + ITEM_OVERHEAD) };
        let key = [7u8; 32];
        let four = vec![&key[..]; 4];
        assert_eq!(pools.publish(1, 1, false, four.clone().into_iter(), lim), Ok((4, false)));
        // Its share is full, in any pool, though the directory has room.
        assert_eq!(pools.publish(1, 1, false, items(&[b"x"]), lim), Err(PublishError::ClientShare));
        assert_eq!(pools.publish(1, 2, false, items(&[b"x"]), lim), Err(PublishError::ClientShare));
        // Another client publishes as much.
        assert_eq!(pools.publish(2, 1, false, four.into_iter(), lim), Ok((4, false)));
        // A claim gives the first client's share back.
        assert!(pools.claim(1, 1).is_some());
        assert_eq!(pools.publish(1, 2, false, vec![&key[..]].into_iter(), lim), Ok((1, false)));
        // A fallback replaced is charged once.
        let lim2 = PoolLimits { client_bytes: 2 * (2 + ITEM_OVERHEAD), ..lim };
        for _ in 0..3 {
            assert_eq!(pools.publish(3, 1, true, items(&[b"fb"]), lim2), Ok((0, true)));
        }
        assert_eq!(pools.bytes(), 8 * (32 + ITEM_OVERHEAD) + 2 + ITEM_OVERHEAD);
    }

    #[test]
    fn a_claimer_gets_its_burst_then_its_rate_and_per_peer_share() {
        let lim = ClaimLimits { rate: 10.0, burst: 20, per_peer: 4, peer_window: Duration::from_secs(60) };
        let t0 = Instant::now();
        let mut l = ClaimLimiter::new(lim, t0);
        // Four of one peer's pool, then that pair is refused (another pool of it is not).
        for _ in 0..4 {
            assert_eq!(l.take(1, 1, t0, lim), Ok(()));
        }
        assert_eq!(l.take(1, 1, t0, lim), Err(ClaimRefusal::Peer));
        assert_eq!(l.take(1, 2, t0, lim), Ok(()));
        // The rest of the burst across other peers, then the bucket is empty.
        for peer in 2..17 {
            assert_eq!(l.take(peer, 1, t0, lim), Ok(()), "peer {peer}");
        }
        assert_eq!(l.take(99, 1, t0, lim), Err(ClaimRefusal::Rate));
        // A tenth of a second refills one claim.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.take(99, 1, t1, lim), Ok(()));
        assert_eq!(l.take(98, 1, t1, lim), Err(ClaimRefusal::Rate));
        // After the window the pair may claim again.
        let t2 = t0 + Duration::from_secs(61);
        assert_eq!(l.take(1, 1, t2, lim), Ok(()));
    }

    #[test]
    fn a_claimer_cycling_through_more_peers_than_it_remembers_is_held_by_the_bucket() {
        let lim = ClaimLimits { rate: 100.0, burst: 2048, per_peer: 16, peer_window: Duration::from_secs(60) };
        let t0 = Instant::now();
        let mut l = ClaimLimiter::new(lim, t0);
        let mut taken = 0u32;
        for round in 0..100u64 {
            for peer in 0..(PEER_SLOTS as u64 + 1) {
                if l.take(peer, 1, t0 + Duration::from_micros(round * 100 + peer), lim).is_ok() {
                    taken += 1;
                }
            }
        }
        assert!(taken <= 2048 + 2, "the bucket bounds it: {taken}");
    }
}
