//! The in-process store: keyed algorithm state in a sharded map, bounded, with lossless eviction.
//!
//! Layout, chosen for bytes per key: each shard keeps its entries densely in a `Vec` (the slab)
//! and an index of `u32` slab positions in a `hashbrown::HashTable`, so the hash table costs about
//! five bytes per slot instead of a whole entry. A key is an `EcoString`: up to 15 bytes inline,
//! no heap allocation. Looking up a key that is already there allocates nothing.
//!
//! Eviction:
//! * [`MemoryStore::cleanup`] drops every entry that is back to its fresh state. Such an entry is
//!   identical to one that was never created, so nothing is lost (lossless).
//! * At the bound (`max_keys`, counted over the whole store; a shard with no entry to give up lets
//!   the store go one over, and threads inserting at once may each go one over: a few keys at most),
//!   a new key takes the place of one of 16 entries sampled at random from its shard: the first
//!   fresh one found (lossless), else the one whose eviction gives away least
//!   ([`Keyed::eviction_rank`]), which [`StoreTotals::evicted_early`] counts. What is guaranteed:
//!   the map never grows past the bound, no request is refused for lack of room, and a key that is
//!   not fresh goes only when every other sampled key would give away at least as much. What is
//!   not: under a flood of more new keys per refill time (or window) than the bound, keys are
//!   evicted before they are fresh and come back fresh.
//!
//! Per-key overrides are configuration, not state: they are bounded by `max_keys` too (an override
//! beyond it is refused), freed when cleared, and counted by [`MemoryStore::heap_bytes`].
//!
//! (Over 450 lines: ~650 of code, the slab, its index and eviction must change together; the
//! two-key locking is in `memory/pair.rs`, the packed per-key counters in `memory/counters.rs`.
//! The rest is its unit tests.)

use super::shard_lock::Mutex;
use ecow::EcoString;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::Nanos;

mod counters;
mod pair;
pub use counters::{KeyCounters, MAX_KEY_COUNT};
pub use pair::Pair;

/// What a store needs from an algorithm's parameters to keep its state.
pub trait Keyed: Clone + PartialEq {
    /// The per-key state.
    type State: Clone;
    /// The state of a key seen for the first time at `now`.
    fn fresh(&self, now: Nanos) -> Self::State;
    /// Whether `state` is, at `now`, the same as a fresh key's: dropping it loses nothing.
    fn is_fresh(&self, state: &Self::State, now: Nanos) -> bool;
    /// The eviction order at the bound among states that are not fresh (the store checks
    /// [`Keyed::is_fresh`] first), compared lexicographically: least loss first. The sampled key
    /// with the least goes.
    fn eviction_rank(&self, state: &Self::State, now: Nanos) -> (Nanos, u128);
    /// `state`, kept under `old` parameters, carried over to `self`.
    fn rebase(&self, old: &Self, state: &Self::State, now: Nanos) -> Self::State;
    /// Heap bytes `state` holds outside its record.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
    /// Heap bytes the parameters hold outside their own size.
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Per-key counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Decisions made for the key.
    pub total: u64,
    /// Decisions that refused ("limited", the one word for a refused decision).
    pub limited: u64,
    /// When the last refusal happened; 0 if never.
    pub last_limited: Nanos,
}

impl KeyStats {
    /// Counts one decision.
    #[inline]
    pub fn record(&mut self, allowed: bool, now: Nanos) {
        self.total += 1;
        if !allowed {
            self.limited += 1;
            self.last_limited = now;
        }
    }
}

/// Store-wide counters, including what evicted keys had counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Keys held now.
    pub keys: usize,
    /// Decisions made, over live and evicted keys.
    pub total: u64,
    /// Refusals, over live and evicted keys.
    pub limited: u64,
    /// Keys evicted (lossless or not).
    pub evicted: u64,
    /// Keys evicted at the bound before they were back to fresh.
    pub evicted_early: u64,
}

/// One key's record. Aligned to a cache line: with a 16-byte key (inline up to 15 bytes), a state
/// of up to 24 bytes (a token bucket's 16, a `Limiter`'s one-limit state 24), 20 bytes of counters
/// and the parameters' id it is exactly 64 bytes, so a decision touches one line of the slab.
#[repr(align(64))]
struct Entry<S> {
    key: EcoString,
    state: S,
    stats: KeyCounters,
    config: u32,
}

struct Shard<A: Keyed> {
    index: HashTable<u32>,
    slab: Vec<Entry<A::State>>,
    /// Parameters; 0 is the default, the rest are per-key overrides (interned). A slot no entry
    /// or override uses any more holds a copy of the default and is listed in `free_configs`.
    configs: Vec<A>,
    /// How many entries and overrides use each of `configs` (the default's count is not kept).
    config_refs: Vec<u32>,
    free_configs: Vec<u32>,
    /// Per-key overrides of the keys that hash to this shard.
    overrides: hashbrown::HashMap<EcoString, u32, RandomState>,
    rng: u64,
    evicted_total: u64,
    evicted_limited: u64,
    evicted: u64,
    evicted_early: u64,
}

/// [`MemoryStore::read`] in `shard`, locked by the caller.
#[inline]
fn read_in<A: Keyed, R>(
    shard: &Shard<A>,
    hash: u64,
    key: &str,
    now: Nanos,
    f: impl FnOnce(&A, &A::State, Option<&KeyStats>) -> R,
) -> R {
    match shard
        .index
        .find(hash, |&i| shard.slab[i as usize].key == key)
    {
        Some(&pos) => {
            let e = &shard.slab[pos as usize];
            f(
                &shard.configs[e.config as usize],
                &e.state,
                Some(&e.stats.get()),
            )
        }
        None => {
            let config = &shard.configs[shard.config_for(key) as usize];
            f(config, &config.fresh(now), None)
        }
    }
}

/// A bounded, sharded map from string keys to algorithm state.
///
/// ```
/// use seawall::algorithm::token_bucket::TokenBucket;
/// use seawall::store::memory::MemoryStore;
///
/// let store = MemoryStore::new(TokenBucket::new(2, 1.0, 2).unwrap(), 1000);
/// let take = |now| store.update("alice", now, |bucket, state, stats| {
///     let ok = bucket.try_acquire(state, now, 1);
///     stats.record(ok, now);
///     ok
/// });
/// assert!(take(0) && take(0) && !take(0));
/// assert_eq!(store.len(), 1);
/// assert_eq!(store.cleanup(10_000_000_000), 1); // full again: dropped, nothing lost
/// ```
pub struct MemoryStore<A: Keyed> {
    shards: Box<[Mutex<Shard<A>>]>,
    shard_mask: u64,
    hasher: RandomState,
    max_keys: usize,
    /// Keys held across all shards; the bound is checked against it, not per shard, so that an
    /// unevenly filled shard does not evict before the store is full.
    held: AtomicUsize,
    /// Overrides set across all shards, bounded by `max_keys` as well.
    overrides: AtomicUsize,
}

/// Entries sampled when the bound is reached.
const EVICTION_SAMPLE: usize = 16;
const MAX_SHARDS: usize = 16;
/// A shard is split off only when each would still hold this many keys, so that small bounds
/// are exact per store rather than per shard.
const MIN_KEYS_PER_SHARD: usize = 4096;

impl<A: Keyed> MemoryStore<A> {
    /// A store whose keys start with `default` parameters, holding at most `max_keys` keys
    /// (at least 1).
    pub fn new(default: A, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let shards = (max_keys / MIN_KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() {
            shards
        } else {
            shards.next_power_of_two() / 2
        };
        let hasher = RandomState::default();
        let seed = hasher.hash_one(0xfeed_u64) | 1;
        MemoryStore {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        index: HashTable::new(),
                        slab: Vec::new(),
                        configs: vec![default.clone()],
                        config_refs: vec![0],
                        free_configs: Vec::new(),
                        overrides: hashbrown::HashMap::with_hasher(hasher.clone()),
                        rng: seed.wrapping_add(i as u64).max(1),
                        evicted_total: 0,
                        evicted_limited: 0,
                        evicted: 0,
                        evicted_early: 0,
                    })
                })
                .collect(),
            shard_mask: shards as u64 - 1,
            hasher,
            max_keys,
            held: AtomicUsize::new(0),
            overrides: AtomicUsize::new(0),
        }
    }

    /// The bound on keys held.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The default parameters.
    pub fn default_config(&self) -> A {
        self.shards[0].lock().configs[0].clone()
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> &Mutex<Shard<A>> {
        // Bits 32.. pick the shard: hashbrown uses the low bits for the slot and the top 7 for
        // its tag, so the three stay independent.
        &self.shards[((hash >> 32) & self.shard_mask) as usize]
    }

    /// Runs `f` on `key`'s parameters, state and counters, creating a fresh entry first if the key
    /// is new. Holds the shard's lock for the duration of `f`, which makes `f` atomic.
    #[inline]
    pub fn update<R>(
        &self,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&A, &mut A::State, &mut KeyCounters) -> R,
    ) -> R {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard_of(hash).lock();
        let shard = &mut *guard;
        let pos = match shard
            .index
            .find(hash, |&i| shard.slab[i as usize].key == key)
        {
            Some(&pos) => pos as usize,
            None => {
                let at_bound = self.held.load(Ordering::Relaxed) >= self.max_keys;
                let (pos, evicted) = shard.insert(key, hash, now, &self.hasher, at_bound);
                if !evicted {
                    self.held.fetch_add(1, Ordering::Relaxed);
                }
                pos
            }
        };
        let entry = &mut shard.slab[pos];
        f(
            &shard.configs[entry.config as usize],
            &mut entry.state,
            &mut entry.stats,
        )
    }

    /// [`MemoryStore::update`] for an `f` that may refuse: a key created for the call is dropped
    /// again when `f` returns an error, so a refused call leaves no state behind.
    #[inline]
    pub fn try_update<R, E>(
        &self,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&A, &mut A::State, &mut KeyCounters) -> Result<R, E>,
    ) -> Result<R, E> {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard_of(hash).lock();
        self.try_update_in(&mut guard, hash, key, now, f)
    }

    /// [`MemoryStore::try_update`] in `shard`, locked by the caller.
    #[inline]
    fn try_update_in<R, E>(
        &self,
        shard: &mut Shard<A>,
        hash: u64,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&A, &mut A::State, &mut KeyCounters) -> Result<R, E>,
    ) -> Result<R, E> {
        let (pos, created) = match shard
            .index
            .find(hash, |&i| shard.slab[i as usize].key == key)
        {
            Some(&pos) => (pos as usize, false),
            None => {
                let at_bound = self.held.load(Ordering::Relaxed) >= self.max_keys;
                let (pos, evicted) = shard.insert(key, hash, now, &self.hasher, at_bound);
                if !evicted {
                    self.held.fetch_add(1, Ordering::Relaxed);
                }
                (pos, true)
            }
        };
        let entry = &mut shard.slab[pos];
        let r = f(
            &shard.configs[entry.config as usize],
            &mut entry.state,
            &mut entry.stats,
        );
        if r.is_err() && created {
            shard.unlink(pos, &self.hasher);
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }

    /// Runs `f` on `key`'s parameters, state and counters without creating it: a key not held is
    /// shown as fresh, with no counters.
    #[inline]
    pub fn read<R>(
        &self,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&A, &A::State, Option<&KeyStats>) -> R,
    ) -> R {
        let hash = self.hasher.hash_one(key);
        let guard = self.shard_of(hash).lock();
        read_in(&guard, hash, key, now, f)
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        let guard = self.shard_of(hash).lock();
        guard
            .index
            .find(hash, |&i| guard.slab[i as usize].key == key)
            .is_some()
    }

    /// Gives `key` its own parameters, now and for when it is next created. A held key keeps its
    /// state, carried over with [`Keyed::rebase`]. Parameters equal to the default clear the
    /// override. Returns false, changing nothing, when `max_keys` overrides are set already and
    /// `key` has none.
    pub fn set_override(&self, key: &str, config: A, now: Nanos) -> bool {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard_of(hash).lock();
        let shard = &mut *guard;
        if config == shard.configs[0] {
            drop(guard);
            self.clear_override(key, now);
            return true;
        }
        let previous = shard.overrides.get(key).copied();
        if previous.is_none() {
            let taken = self.overrides.fetch_add(1, Ordering::Relaxed);
            if taken >= self.max_keys {
                self.overrides.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
        }
        let id = shard.intern(config);
        shard.config_refs[id as usize] += 1;
        match previous {
            Some(old) => {
                shard.overrides.insert(EcoString::from(key), id);
                shard.release(old);
            }
            None => {
                shard.overrides.insert(EcoString::from(key), id);
            }
        }
        shard.apply(key, hash, id, now);
        true
    }

    /// Puts `key` back on the default parameters (a held key keeps its state, carried over) and
    /// frees its override. Returns whether it had one.
    pub fn clear_override(&self, key: &str, now: Nanos) -> bool {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard_of(hash).lock();
        let shard = &mut *guard;
        let Some(old) = shard.overrides.remove(key) else {
            return false;
        };
        self.overrides.fetch_sub(1, Ordering::Relaxed);
        shard.apply(key, hash, 0, now);
        shard.release(old);
        let map = &mut shard.overrides;
        if map.capacity() > 64 && map.len() < map.capacity() / 4 {
            map.shrink_to(map.len() * 2);
        }
        true
    }

    /// Keys with their own parameters.
    pub fn overrides(&self) -> usize {
        self.overrides.load(Ordering::Relaxed)
    }

    /// Puts `key` back to fresh and zeroes its counters. Returns whether it was held.
    pub fn reset(&self, key: &str, now: Nanos) -> bool {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard_of(hash).lock();
        let shard = &mut *guard;
        match shard
            .index
            .find(hash, |&i| shard.slab[i as usize].key == key)
        {
            Some(&pos) => {
                let entry = &mut shard.slab[pos as usize];
                entry.state = shard.configs[entry.config as usize].fresh(now);
                entry.stats = KeyCounters::default();
                true
            }
            None => false,
        }
    }

    /// Drops every key that is back to fresh at `now` (lossless) and returns how many.
    pub fn cleanup(&self, now: Nanos) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut guard = shard.lock();
            let shard = &mut *guard;
            let mut pos = 0;
            while pos < shard.slab.len() {
                let e = &shard.slab[pos];
                if shard.configs[e.config as usize].is_fresh(&e.state, now) {
                    shard.remove_at(pos, &self.hasher, false);
                    removed += 1;
                } else {
                    pos += 1;
                }
            }
            shard.shrink(&self.hasher);
        }
        self.held.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for every key held, one shard locked at a time.
    pub fn for_each(&self, mut f: impl FnMut(&str, &A, &A::State, &KeyStats)) {
        for shard in self.shards.iter() {
            let guard = shard.lock();
            for e in &guard.slab {
                f(
                    &e.key,
                    &guard.configs[e.config as usize],
                    &e.state,
                    &e.stats.get(),
                );
            }
        }
    }

    /// Store-wide counters.
    pub fn totals(&self) -> StoreTotals {
        let mut t = StoreTotals::default();
        for shard in self.shards.iter() {
            let g = shard.lock();
            t.keys += g.slab.len();
            t.total += g.evicted_total + g.slab.iter().map(|e| e.stats.get().total).sum::<u64>();
            t.limited +=
                g.evicted_limited + g.slab.iter().map(|e| e.stats.get().limited).sum::<u64>();
            t.evicted += g.evicted;
            t.evicted_early += g.evicted_early;
        }
        t
    }

    /// Heap bytes held by the store: slabs, indexes, out-of-line key bytes, what each key's state
    /// holds outside its record, and the overrides with their parameters. Allocator overhead is
    /// not included.
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock();
                let default = &g.configs[0];
                let entries: usize = g
                    .slab
                    .iter()
                    .map(|e| {
                        key_heap_bytes(&e.key)
                            + g.configs[e.config as usize].state_heap_bytes(&e.state)
                    })
                    .sum();
                let overrides: usize = g.overrides.keys().map(key_heap_bytes).sum::<usize>()
                    + g.overrides.allocation_size();
                let configs: usize = g.configs.capacity() * std::mem::size_of::<A>()
                    + g.configs[1..].iter().map(Keyed::heap_bytes).sum::<usize>()
                    + default.heap_bytes()
                    + g.config_refs.capacity() * 4
                    + g.free_configs.capacity() * 4;
                g.slab.capacity() * std::mem::size_of::<Entry<A::State>>()
                    + g.index.allocation_size()
                    + entries
                    + overrides
                    + configs
            })
            .sum()
    }
}

/// Heap bytes of a key: keys longer than the inline limit live in a shared heap buffer (16-byte
/// header).
fn key_heap_bytes(key: &EcoString) -> usize {
    if key.len() > EcoString::INLINE_LIMIT {
        key.capacity() + 16
    } else {
        0
    }
}

impl<A: Keyed> Shard<A> {
    /// The id of `config`, added if new (in a free slot if there is one). Not counted yet.
    fn intern(&mut self, config: A) -> u32 {
        if let Some(id) =
            (1..self.configs.len()).find(|&i| self.config_refs[i] > 0 && self.configs[i] == config)
        {
            return id as u32;
        }
        match self.free_configs.pop() {
            Some(id) => {
                self.configs[id as usize] = config;
                id
            }
            None => {
                self.configs.push(config);
                self.config_refs.push(0);
                (self.configs.len() - 1) as u32
            }
        }
    }

    /// One use fewer of config `id`; frees its slot when none is left.
    fn release(&mut self, id: u32) {
        if id == 0 {
            return;
        }
        let refs = &mut self.config_refs[id as usize];
        *refs -= 1;
        if *refs == 0 {
            self.configs[id as usize] = self.configs[0].clone();
            self.free_configs.push(id);
        }
    }

    /// Moves `key`'s entry, if held, onto config `id`, carrying its state over.
    fn apply(&mut self, key: &str, hash: u64, id: u32, now: Nanos) {
        let slab = &self.slab;
        if let Some(&pos) = self.index.find(hash, |&i| slab[i as usize].key == key) {
            let entry = &mut self.slab[pos as usize];
            let old = entry.config;
            if old == id {
                return;
            }
            entry.state =
                self.configs[id as usize].rebase(&self.configs[old as usize], &entry.state, now);
            entry.config = id;
            if id != 0 {
                self.config_refs[id as usize] += 1;
            }
            self.release(old);
        }
    }

    fn config_for(&self, key: &str) -> u32 {
        if self.overrides.is_empty() {
            return 0;
        }
        self.overrides.get(key).copied().unwrap_or(0)
    }

    /// Inserts a fresh entry for `key` (known to be absent), evicting one of this shard's first
    /// when the store is at its bound. Returns the position and whether it evicted.
    #[cold]
    #[inline(never)]
    fn insert(
        &mut self,
        key: &str,
        hash: u64,
        now: Nanos,
        hasher: &RandomState,
        at_bound: bool,
    ) -> (usize, bool) {
        // A shard with nothing to evict lets the store go one key over (see the module docs).
        let evicted = at_bound && !self.slab.is_empty();
        if evicted {
            self.evict_one(now, hasher);
        }
        let config = self.config_for(key);
        if config != 0 {
            self.config_refs[config as usize] += 1;
        }
        let pos = self.slab.len();
        self.slab.push(Entry {
            key: EcoString::from(key),
            state: self.configs[config as usize].fresh(now),
            stats: KeyCounters::default(),
            config,
        });
        let slab = &self.slab;
        self.index.insert_unique(hash, pos as u32, |&i| {
            hasher.hash_one(slab[i as usize].key.as_str())
        });
        (pos, evicted)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: cheap, and only picks eviction candidates.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn evict_one(&mut self, now: Nanos, hasher: &RandomState) {
        let len = self.slab.len();
        if len == 0 {
            return;
        }
        // The first fresh one sampled goes at once (lossless); else the one that ranks first.
        let mut best = ((Nanos::MAX, u128::MAX), 0usize);
        let mut early = true;
        for n in 0..EVICTION_SAMPLE.min(len) {
            let pos = if len <= EVICTION_SAMPLE {
                n
            } else {
                (self.next_random() % len as u64) as usize
            };
            let e = &self.slab[pos];
            let config = &self.configs[e.config as usize];
            if config.is_fresh(&e.state, now) {
                best.1 = pos;
                early = false;
                break;
            }
            let rank = config.eviction_rank(&e.state, now);
            if n == 0 || rank < best.0 {
                best = (rank, pos);
            }
        }
        self.remove_at(best.1, hasher, early);
    }

    fn remove_at(&mut self, pos: usize, hasher: &RandomState, early: bool) {
        let stats = self.unlink(pos, hasher).stats.get();
        self.evicted_total += stats.total;
        self.evicted_limited += stats.limited;
        self.evicted += 1;
        self.evicted_early += u64::from(early);
    }

    /// Takes the entry at `pos` out of the slab and the index.
    fn unlink(&mut self, pos: usize, hasher: &RandomState) -> Entry<A::State> {
        let removed_hash = hasher.hash_one(self.slab[pos].key.as_str());
        if let Ok(slot) = self.index.find_entry(removed_hash, |&i| i as usize == pos) {
            slot.remove();
        }
        self.release(self.slab[pos].config);
        let last = self.slab.len() - 1;
        if pos != last {
            let moved_hash = hasher.hash_one(self.slab[last].key.as_str());
            if let Some(slot) = self.index.find_mut(moved_hash, |&i| i as usize == last) {
                *slot = pos as u32;
            }
        }
        self.slab.swap_remove(pos)
    }

    fn shrink(&mut self, hasher: &RandomState) {
        // Give memory back after a flood has drained, but not on every small dip.
        if self.slab.capacity() > 64 && self.slab.len() < self.slab.capacity() / 4 {
            self.slab.shrink_to(self.slab.len() * 2);
            let slab = &self.slab;
            self.index.shrink_to(slab.len() * 2, |&i| {
                hasher.hash_one(slab[i as usize].key.as_str())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::token_bucket::TokenBucket;
    use crate::clock::NANOS_PER_SEC as S;

    fn take(store: &MemoryStore<TokenBucket>, key: &str, now: Nanos) -> bool {
        store.update(key, now, |b, s, st| {
            let ok = b.try_acquire(s, now, 1);
            st.record(ok, now);
            ok
        })
    }

    #[test]
    fn a_token_bucket_entry_is_one_cache_line() {
        assert_eq!(
            std::mem::size_of::<Entry<crate::algorithm::token_bucket::BucketState>>(),
            64
        );
    }

    #[test]
    fn a_limiter_entry_is_one_cache_line() {
        assert_eq!(
            std::mem::size_of::<Entry<crate::limiter::key_states::KeyStates>>(),
            64
        );
    }

    #[test]
    fn cleanup_drops_only_full_buckets() {
        let store = MemoryStore::new(TokenBucket::new(10, 1.0, 10).unwrap(), 100);
        assert!(take(&store, "busy", 0));
        assert!(take(&store, "idle", 0));
        // After 1 s "idle" is full again; "busy" took another token meanwhile.
        assert!(take(&store, "busy", S / 2));
        assert_eq!(store.cleanup(S), 1);
        assert!(store.contains("busy") && !store.contains("idle"));
        let t = store.totals();
        assert_eq!((t.keys, t.total, t.evicted, t.evicted_early), (1, 3, 1, 0));
    }

    #[test]
    fn bound_is_never_exceeded_and_prefers_fresh_victims() {
        let store = MemoryStore::new(TokenBucket::new(1, 1.0, 1).unwrap(), 50);
        for i in 0..1000 {
            assert!(take(&store, &format!("flood-{i}"), i * S));
            assert!(store.len() <= 50);
            assert_eq!(store.len(), store.totals().keys);
        }
        // Every victim had a second to refill: nothing was lost.
        assert_eq!(store.totals().evicted_early, 0);
        assert_eq!(store.totals().total, 1000);
    }

    #[test]
    fn at_the_bound_the_least_loss_is_taken() {
        let store = MemoryStore::new(TokenBucket::new(10, 1.0, 10).unwrap(), 3);
        for (key, cost) in [("a", 1), ("b", 9), ("c", 5)] {
            store.update(key, 0, |b, s, _| b.try_acquire(s, 0, cost));
        }
        take(&store, "d", 0);
        assert!(!store.contains("a"), "a is closest to full");
        assert_eq!(store.totals().evicted_early, 1);
    }

    #[test]
    fn buckets_that_never_refill_are_ranked_by_what_they_miss() {
        let store = MemoryStore::new(TokenBucket::new(5, 0.0, 5).unwrap(), 3);
        for (key, cost) in [("emptied", 5), ("b", 1), ("c", 2)] {
            store.update(key, 0, |b, s, _| b.try_acquire(s, 0, cost));
        }
        take(&store, "d", 0);
        assert!(store.contains("emptied") && !store.contains("b"));
    }

    #[test]
    fn overrides_apply_to_new_and_held_keys() {
        let store = MemoryStore::new(TokenBucket::new(1, 0.0, 1).unwrap(), 100);
        assert!(take(&store, "vip", 0));
        assert!(!take(&store, "vip", 0));
        store.set_override("vip", TokenBucket::new(5, 0.0, 5).unwrap(), 0);
        // Held: the 0 tokens it had carry over; the larger capacity does not refill by itself.
        assert!(!take(&store, "vip", 0));
        store.reset("vip", 0);
        for _ in 0..5 {
            assert!(take(&store, "vip", 0));
        }
        store.set_override("new", TokenBucket::new(3, 0.0, 3).unwrap(), 0);
        assert_eq!(
            store.read("new", 0, |b, _, stats| (b.capacity(), stats.is_none())),
            (3, true)
        );
    }

    #[test]
    fn many_keys_across_shards_stay_findable_through_removals() {
        let store = MemoryStore::new(TokenBucket::new(2, 1.0, 2).unwrap(), 100_000);
        for i in 0..20_000u64 {
            store.update(&format!("k{i}"), 0, |b, s, _| {
                b.try_acquire(s, 0, 1 + (i % 2))
            });
        }
        // Keys that took 1 token are full after 1 s; those that took 2 need 2 s.
        assert_eq!(store.len(), 20_000, "below the bound nothing is evicted");
        assert_eq!(store.cleanup(S), 10_000);
        assert_eq!(store.len(), 10_000);
        for i in 0..20_000u64 {
            assert_eq!(store.contains(&format!("k{i}")), i % 2 == 1, "k{i}");
        }
    }

    #[test]
    fn override_configs_are_counted_and_their_slots_reused() {
        // One shard, so that every key lands in the shard looked at.
        let store = MemoryStore::new(TokenBucket::new(1, 1.0, 1).unwrap(), 1000);
        let configs = |store: &MemoryStore<TokenBucket>| store.shards[0].lock().configs.len();
        for round in 0..3 {
            for i in 0..100u64 {
                let key = format!("k{i}");
                assert!(take(&store, &key, 0));
                let own = TokenBucket::new(2 + i, 1.0, 2 + i).unwrap();
                assert!(store.set_override(&key, own, 0));
            }
            assert_eq!(store.overrides(), 100);
            assert_eq!(configs(&store), 101, "round {round}: slots are reused");
            // Evicting the entries keeps the overrides' configs; clearing frees them.
            assert_eq!(store.cleanup(1000 * S), 100);
            for i in 0..100u64 {
                assert!(store.clear_override(&format!("k{i}"), 0));
            }
            let g = store.shards[0].lock();
            assert_eq!(g.free_configs.len(), 100);
            assert!(g.config_refs[1..].iter().all(|&r| r == 0));
            assert!(g.overrides.is_empty());
        }
        // A key whose override is the default has none.
        assert!(store.set_override("k0", TokenBucket::new(1, 1.0, 1).unwrap(), 0));
        assert_eq!(store.overrides(), 0);
    }
}
