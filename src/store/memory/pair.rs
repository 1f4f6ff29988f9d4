//! Two keys decided together: each in its own store (or the same one), both shards locked at
//! once, so that a decision spanning them is atomic.

use std::hash::BuildHasher;

use crate::store::shard_lock::MutexGuard;

use super::{read_in, KeyCounters, KeyStats, Keyed, MemoryStore, Shard};
use crate::clock::Nanos;

/// Two keys with their shards locked ([`MemoryStore::with_pair`]); key `0` is the first, `1`
/// the second.
pub struct Pair<'a, A: Keyed> {
    stores: [&'a MemoryStore<A>; 2],
    keys: [&'a str; 2],
    hashes: [u64; 2],
    first: MutexGuard<'a, Shard<A>>,
    /// The second lock, when the keys live in different shards.
    second: Option<MutexGuard<'a, Shard<A>>>,
    /// Which lock guards each key's shard: 0 `first`, 1 `second`.
    guard_of: [usize; 2],
}

impl<A: Keyed> MemoryStore<A> {
    /// Runs `f` with the shard of `key` (in this store) and the shard of `other_key` (in
    /// `other`) locked: each lock taken once, in address order, so that two calls naming the same
    /// shards in opposite orders never deadlock, and no other call sees either key in between.
    ///
    /// ```
    /// use seawall::algorithm::token_bucket::TokenBucket;
    /// use seawall::store::memory::MemoryStore;
    ///
    /// let a = MemoryStore::new(TokenBucket::new(1, 1.0, 1).unwrap(), 100);
    /// let b = MemoryStore::new(TokenBucket::new(1, 1.0, 1).unwrap(), 100);
    /// let both = a.with_pair("x", &b, "y", |pair| {
    ///     let mut ok = |i| pair.read(i, 0, |bucket, state, _| bucket.tokens(state, 0) >= 1.0);
    ///     ok(0) && ok(1)
    /// });
    /// assert!(both);
    /// ```
    pub fn with_pair<'a, R>(
        &'a self,
        key: &'a str,
        other: &'a MemoryStore<A>,
        other_key: &'a str,
        f: impl FnOnce(&mut Pair<'a, A>) -> R,
    ) -> R {
        let hashes = [self.hasher.hash_one(key), other.hasher.hash_one(other_key)];
        let shards = [self.shard_of(hashes[0]), other.shard_of(hashes[1])];
        let (first, second, guard_of) = if std::ptr::eq(shards[0], shards[1]) {
            (shards[0].lock(), None, [0, 0])
        } else if (shards[0] as *const _ as usize) < (shards[1] as *const _ as usize) {
            let first = shards[0].lock();
            (first, Some(shards[1].lock()), [0, 1])
        } else {
            let first = shards[1].lock();
            (first, Some(shards[0].lock()), [1, 0])
        };
        let mut pair = Pair {
            stores: [self, other],
            keys: [key, other_key],
            hashes,
            first,
            second,
            guard_of,
        };
        f(&mut pair)
    }
}

impl<A: Keyed> Pair<'_, A> {
    fn shard(&mut self, i: usize) -> &mut Shard<A> {
        match (self.guard_of[i], &mut self.second) {
            (1, Some(second)) => second,
            _ => &mut self.first,
        }
    }

    /// [`MemoryStore::read`] of key `i` (0 or 1).
    pub fn read<R>(
        &mut self,
        i: usize,
        now: Nanos,
        f: impl FnOnce(&A, &A::State, Option<&KeyStats>) -> R,
    ) -> R {
        let (hash, key) = (self.hashes[i], self.keys[i]);
        read_in(self.shard(i), hash, key, now, f)
    }

    /// [`MemoryStore::try_update`] of key `i` (0 or 1).
    pub fn try_update<R, E>(
        &mut self,
        i: usize,
        now: Nanos,
        f: impl FnOnce(&A, &mut A::State, &mut KeyCounters) -> Result<R, E>,
    ) -> Result<R, E> {
        let (store, hash, key) = (self.stores[i], self.hashes[i], self.keys[i]);
        store.try_update_in(self.shard(i), hash, key, now, f)
    }
}
