//! The key directory's pools: what Olm and MLS need beyond a static key. Each client has
//! one pool per pool id (Olm one-time keys, MLS key packages): one-time items, each handed
//! out at most once, and a fallback handed out (again and again) only when the pool is
//! empty. A claim takes the pool's shard lock, pops the oldest item and releases the lock:
//! concurrent claims cannot both get the same item.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 64;

/// Limits of the pools (they bound the directory's memory).
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// One-time items one pool may hold.
    pub items_per_pool: usize,
    /// Bytes all pools may hold together (each item charged its length + 32).
    pub total_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { items_per_pool: 1000, total_bytes: 256 * 1024 * 1024 }
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
    /// An empty item, a pool id of 0, or a fallback publish without exactly one item.
    BadItem,
}

impl PublishError {
    /// For the ERROR frame.
    pub fn reason(self) -> &'static str {
        match self {
            PublishError::PoolFull => "the key pool holds its maximum number of items",
            PublishError::DirectoryFull => "the key directory holds its maximum number of bytes",
            PublishError::BadItem => "pool 0, an empty item, or a fallback publish without exactly one item",
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

/// All clients' key pools.
#[derive(Debug)]
pub struct KeyPools {
    shards: Vec<Mutex<HashMap<(u64, u8), Pool>>>,
    bytes: AtomicUsize,
}

impl Default for KeyPools {
    fn default() -> Self {
        KeyPools { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), bytes: AtomicUsize::new(0) }
    }
}

impl KeyPools {
    fn shard(&self, client: u64) -> MutexGuard<'_, HashMap<(u64, u8), Pool>> {
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
        let mut map = self.shard(client);
        let p = map.entry((client, pool)).or_default();
        if !fallback && p.items.len() + n > limits.items_per_pool {
            return Err(PublishError::PoolFull);
        }
        let freed = if fallback { p.fallback.as_ref().map_or(0, |f| f.len() + ITEM_OVERHEAD) } else { 0 };
        if self.bytes.fetch_add(charge, Ordering::Relaxed) + charge > limits.total_bytes + freed {
            self.bytes.fetch_sub(charge, Ordering::Relaxed);
            return Err(PublishError::DirectoryFull);
        }
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
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
        let mut map = self.shard(client);
        let p = map.get_mut(&(client, pool))?;
        if let Some(item) = p.items.pop_front() {
            self.bytes.fetch_sub(item.len() + ITEM_OVERHEAD, Ordering::Relaxed);
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
        let lim = PoolLimits { items_per_pool: 2, total_bytes: 1000 };
        assert_eq!(pools.publish(1, 1, false, items(&[b"a", b"b", b"c"]), lim), Err(PublishError::PoolFull));
        assert_eq!(pools.publish(1, 1, false, items(&[b""]), lim), Err(PublishError::BadItem));
        assert_eq!(pools.publish(1, 0, false, items(&[b"a"]), lim), Err(PublishError::BadItem));
        assert_eq!(pools.publish(1, 1, true, items(&[b"a", b"b"]), lim), Err(PublishError::BadItem));
        let big = [0u8; 990];
        assert_eq!(pools.publish(2, 1, false, vec![&big[..]].into_iter(), lim), Err(PublishError::DirectoryFull));
        assert_eq!(pools.bytes(), 0);
        assert_eq!(pools.claim(1, 1), None);
    }
}
