//! A bounded "who is being limited" counter: space-saving top-K.
//!
//! [`TopK`] is the space-saving algorithm of Metwally, Agrawal and El Abbadi ("Efficient
//! computation of frequent and top-k elements in data streams", ICDT 2005), with weighted
//! increments. It holds at most `capacity` keys whatever the stream: when a key it does not hold
//! arrives and it is full, the key with the smallest count is evicted and the newcomer takes over
//! that count (plus its own increment), remembering the inherited part as its `error`.
//!
//! # What the numbers mean
//!
//! For every key held, with `c` its [`Entry::count`] and `e` its [`Entry::error`]:
//!
//! * `c - e ≤ true count ≤ c`: `count` is an **upper bound** (it may include counts of keys that
//!   were evicted before this key arrived), [`Entry::guaranteed`] (`c - e`) a **lower bound**
//!   (counted since this key was last admitted, so certainly its own).
//! * `e ≤ total / capacity`, and every key whose true count exceeds `total / capacity` is held.
//! * The counts of the held keys add up to [`TopK::total`] (the space-saving invariant; exact
//!   until a count saturates at `u64::MAX`).
//!
//! [`TopK::other`] is the part of the total **not attributed with certainty to any key held**:
//! `total - Σ (count - error)`, which is also `Σ error`. So the held keys' guaranteed counts plus
//! `other` add up to `total` exactly, and the true total of the keys *not* held is between 0 and
//! `other`. A consumer that shows "a mapping plus an `other` total" (SEEDS-002-003.md A14) and
//! wants the numbers to add up shows each key's [`Entry::guaranteed`] and `other`; one that wants
//! the best estimate of each key shows [`Entry::count`] (then `other` overlaps the counts). While
//! fewer than `capacity` distinct keys have been seen, every count is exact, every error 0 and
//! `other` 0. With a capacity of 0 nothing is held and everything is `other`.
//!
//! # Structure and cost
//!
//! The keys live once, in a slab of at most `capacity` slots; a min-heap of slot indices ordered
//! by count finds the key to evict, and a `hashbrown::HashTable` of slot indices (keyed by a
//! per-instance random `foldhash` seed, so a client cannot aim keys at one bucket) finds a key's
//! slot. A record is one hash lookup plus an O(log K) sift; it allocates only when a new key is
//! admitted into a free slot (an evicted `String` key's buffer is reused, `clone_into`). A binary heap with an index was chosen over the paper's
//! "stream summary" bucket list because increments are weighted (`n` may be more than 1): the
//! bucket list is O(1) only for increments of 1 and walks buckets otherwise, and it needs a
//! doubly linked list of buckets, where the heap is two flat `Vec`s. No crate offers an indexed
//! heap that keeps the key once and is already in the tree (`priority-queue` would add `indexmap`
//! and its own copy of every key); the heap here is ~40 lines.
//!
//! Memory is bounded by the capacity: the slab, the heap and the table never hold more than
//! `capacity` entries (the slab and heap grow by doubling up to exactly `capacity`; the table
//! grows only while keys are admitted into free slots, or when evictions' tombstones fill it, and
//! then to a bounded size: hashbrown rehashes in place once the table is at most half full). String keys longer than [`MAX_KEY_BYTES`] are replaced by
//! `sha256:<64 hex digits>` ([`bounded_key`]), so no client can make one entry large. For
//! `capacity = 1000` and short keys a full `TopK<String>` takes about 100 KB
//! ([`TopK::heap_bytes`]: 99,616 bytes after a flood of 2M distinct IPv4 addresses, 91,947 for
//! 5,000 skewed user ids; the ignored test `bench_record_and_bytes` in `src/metrics/tests.rs`):
//! 56 bytes a slot, 4 a heap index, ~20 a key's share of the table, and the key's buffer. A
//! reused key buffer holds at most `2 × MAX_KEY_BYTES`, so whatever the keys the bound is about
//! 340 bytes a key (340 KB for 1,000).

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// String keys longer than this many bytes are stored as `sha256:<64 hex digits>` (71 bytes).
///
/// 128 bytes holds any IP address, route template or user id seen in practice verbatim.
pub const MAX_KEY_BYTES: usize = 128;

/// The key a [`TopK<String>`] stores for `key`: `key` itself when it is at most
/// [`MAX_KEY_BYTES`] long, else `sha256:` and the hex SHA-256 of its bytes.
///
/// ```
/// use seawall::metrics::top_k::{bounded_key, MAX_KEY_BYTES};
///
/// assert_eq!(bounded_key("203.0.113.7"), "203.0.113.7");
/// let long = "x".repeat(MAX_KEY_BYTES + 1);
/// let stored = bounded_key(&long);
/// assert!(stored.starts_with("sha256:"));
/// assert_eq!(stored.len(), 7 + 64);
/// ```
pub fn bounded_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        return Cow::Borrowed(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    Cow::Owned(out)
}

/// One key of a [`TopK`] and its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry<K> {
    /// The key (for string keys, as [`bounded_key`] stores it).
    pub key: K,
    /// An upper bound of the key's true count: its own count since it was last admitted, plus the
    /// count it inherited then.
    pub count: u64,
    /// How much of `count` may belong to other keys (the count inherited when this key took an
    /// evicted key's place); 0 when the key was admitted into a free slot.
    pub error: u64,
}

impl<K> Entry<K> {
    /// `count - error`: a lower bound of the key's true count, counted since it was last
    /// admitted.
    ///
    /// ```
    /// use seawall::metrics::top_k::Entry;
    ///
    /// let e = Entry { key: "alice", count: 10, error: 3 };
    /// assert_eq!(e.guaranteed(), 7);
    /// ```
    pub fn guaranteed(&self) -> u64 {
        self.count - self.error
    }
}

/// A consistent read of a [`TopK`]: its entries, total and `other` at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopKSnapshot<K> {
    /// The keys held, by count (highest first), then by error (lowest first), then by key.
    pub entries: Vec<Entry<K>>,
    /// Everything recorded since the last reset ([`TopK::total`]).
    pub total: u64,
    /// The part of `total` not attributed with certainty to a key held ([`TopK::other`]).
    pub other: u64,
    /// The most keys held at once.
    pub capacity: usize,
}

struct Slot<K> {
    key: K,
    count: u64,
    error: u64,
    hash: u64,
    /// Where this slot's index sits in the heap.
    pos: u32,
}

/// A space-saving top-K counter holding at most `capacity` keys (see the [module](self) docs
/// for what its counts guarantee).
///
/// ```
/// use seawall::metrics::top_k::TopK;
///
/// let mut top = TopK::new(2);
/// top.record("alice", 5);
/// top.record("bob", 1);
/// top.record("carol", 1); // full: evicts bob (count 1), carol inherits it
///
/// let snap = top.snapshot();
/// assert_eq!(snap[0].key, "alice");
/// assert_eq!((snap[0].count, snap[0].error), (5, 0));
/// assert_eq!(snap[1].key, "carol");
/// assert_eq!((snap[1].count, snap[1].error), (2, 1)); // 1 ≤ carol's true count ≤ 2
/// assert_eq!(top.len(), 2);
/// assert_eq!(top.total(), 7);
/// assert_eq!(top.other(), 1); // bob's 1 is no longer attributed to anyone
/// ```
pub struct TopK<K> {
    capacity: usize,
    slots: Vec<Slot<K>>,
    /// A min-heap of slot indices, ordered by the slots' counts.
    heap: Vec<u32>,
    index: HashTable<u32>,
    hasher: RandomState,
    total: u64,
    other: u64,
}

impl<K> fmt::Debug for TopK<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopK")
            .field("capacity", &self.capacity)
            .field("len", &self.slots.len())
            .field("total", &self.total)
            .field("other", &self.other)
            .finish()
    }
}

impl<K> TopK<K> {
    /// An empty counter that holds at most `capacity` keys (at most `u32::MAX`; larger is
    /// clamped). Nothing is allocated until keys arrive.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let top: TopK<String> = TopK::new(1000);
    /// assert_eq!(top.capacity(), 1000);
    /// assert!(top.is_empty());
    /// ```
    pub fn new(capacity: usize) -> Self {
        TopK {
            capacity: capacity.min(u32::MAX as usize),
            slots: Vec::new(),
            heap: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::default(),
            total: 0,
            other: 0,
        }
    }

    /// The most keys held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many keys are held (at most [`capacity`](Self::capacity)).
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(3);
    /// for i in 0..10 {
    ///     top.record(&format!("client-{i}"), 1);
    /// }
    /// assert_eq!(top.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The sum of every `n` recorded since the last reset (saturating at `u64::MAX`).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The part of [`total`](Self::total) not attributed with certainty to any key held:
    /// `total - Σ (count - error)` over the held keys, equal to `Σ error` (with a capacity of 0,
    /// the whole total). An upper bound of the true total of the keys not held.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(1);
    /// top.record("a", 3);
    /// assert_eq!(top.other(), 0);
    /// top.record("b", 1); // evicts a: b holds count 4, error 3
    /// assert_eq!(top.other(), 3);
    /// let held: u64 = top.snapshot().iter().map(|e| e.guaranteed()).sum();
    /// assert_eq!(held + top.other(), top.total());
    /// ```
    pub fn other(&self) -> u64 {
        self.other
    }

    /// Forgets every key and count, and gives the memory back.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(10);
    /// top.record("a", 1);
    /// top.reset();
    /// assert!(top.is_empty());
    /// assert_eq!((top.total(), top.other()), (0, 0));
    /// ```
    pub fn reset(&mut self) {
        self.slots = Vec::new();
        self.heap = Vec::new();
        self.index = HashTable::new();
        self.total = 0;
        self.other = 0;
    }

    /// Records `n` occurrences of `key` (any borrowed form of the key type: `&str` for
    /// `String`). For `TopK<String>`, prefer [`record`](TopK::record), which also bounds the
    /// key's length. `n = 0` records nothing.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top: TopK<u32> = TopK::new(4);
    /// top.record_key(&7, 2);
    /// top.record_key(&7, 1);
    /// assert_eq!(top.get(&7), Some((3, 0)));
    /// ```
    pub fn record_key<Q>(&mut self, key: &Q, n: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        if self.capacity == 0 {
            self.other = self.other.saturating_add(n);
            return;
        }
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        if let Some(&i) = self
            .index
            .find(hash, |&i| slots[i as usize].key.borrow() == key)
        {
            let slot = &mut self.slots[i as usize];
            slot.count = slot.count.saturating_add(n);
            let pos = slot.pos as usize;
            self.sift_down(pos);
            return;
        }
        if self.slots.len() < self.capacity {
            self.admit(key.to_owned(), hash, n);
            return;
        }
        // Full: the key with the smallest count gives its slot to the newcomer.
        let i = self.heap[0];
        let old_hash = self.slots[i as usize].hash;
        if let Ok(entry) = self.index.find_entry(old_hash, |&j| j == i) {
            entry.remove();
        }
        let slot = &mut self.slots[i as usize];
        let min = slot.count;
        self.other = self.other.saturating_sub(slot.error).saturating_add(min);
        // Reuses the evicted key's allocation (a `String`'s buffer) where it can.
        key.clone_into(&mut slot.key);
        slot.count = min.saturating_add(n);
        slot.error = min;
        slot.hash = hash;
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i, |&j| slots[j as usize].hash);
        self.sift_down(0);
    }

    /// The bounds of `key`'s count as `(count, error)` when it is held (for string keys, look up
    /// [`bounded_key`] of a long key).
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(4);
    /// top.record("alice", 2);
    /// assert_eq!(top.get("alice"), Some((2, 0)));
    /// assert_eq!(top.get("bob"), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<(u64, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key.borrow() == key)
            .map(|&i| (slots[i as usize].count, slots[i as usize].error))
    }

    /// The keys held, by count (highest first), then by error (lowest first), then by key.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(10);
    /// top.record("b", 1);
    /// top.record("a", 1);
    /// top.record("c", 5);
    /// let keys: Vec<_> = top.snapshot().into_iter().map(|e| e.key).collect();
    /// assert_eq!(keys, ["c", "a", "b"]);
    /// ```
    pub fn snapshot(&self) -> Vec<Entry<K>>
    where
        K: Ord + Clone,
    {
        let mut out: Vec<Entry<K>> = self
            .slots
            .iter()
            .map(|s| Entry {
                key: s.key.clone(),
                count: s.count,
                error: s.error,
            })
            .collect();
        out.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.error.cmp(&b.error))
                .then_with(|| a.key.cmp(&b.key))
        });
        out
    }

    /// [`snapshot`](Self::snapshot) with the total, `other` and capacity of the same instant.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(10);
    /// top.record("a", 2);
    /// let s = top.summary();
    /// assert_eq!((s.entries.len(), s.total, s.other, s.capacity), (1, 2, 0, 10));
    /// ```
    pub fn summary(&self) -> TopKSnapshot<K>
    where
        K: Ord + Clone,
    {
        TopKSnapshot {
            entries: self.snapshot(),
            total: self.total,
            other: self.other,
            capacity: self.capacity,
        }
    }

    /// Puts a new key into a free slot.
    fn admit(&mut self, key: K, hash: u64, n: u64) {
        // Grow by doubling, but never past the capacity (a `Vec`'s own doubling would overshoot).
        let len = self.slots.len();
        if len == self.slots.capacity() {
            let want = (len * 2).max(8).min(self.capacity);
            self.slots.reserve_exact(want - len);
            self.heap.reserve_exact(want - self.heap.len());
        }
        let i = len as u32;
        self.slots.push(Slot {
            key,
            count: n,
            error: 0,
            hash,
            pos: i,
        });
        self.heap.push(i);
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i, |&j| slots[j as usize].hash);
        self.sift_up(len);
    }

    fn count_at(&self, pos: usize) -> u64 {
        self.slots[self.heap[pos] as usize].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots[self.heap[a] as usize].pos = a as u32;
        self.slots[self.heap[b] as usize].pos = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.count_at(parent) <= self.count_at(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.count_at(right) < self.count_at(left) {
                right
            } else {
                left
            };
            if self.count_at(pos) <= self.count_at(child) {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }
}

impl TopK<String> {
    /// Records `n` occurrences of `key`, stored as [`bounded_key`] (verbatim up to
    /// [`MAX_KEY_BYTES`], hashed beyond). Allocates only when the key is admitted.
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(1000);
    /// top.record("user:42", 1);
    /// top.record("user:42", 2);
    /// assert_eq!(top.get("user:42"), Some((3, 0)));
    /// ```
    pub fn record(&mut self, key: &str, n: u64) {
        self.record_key(bounded_key(key).as_ref(), n);
    }

    /// The bytes this counter has allocated: its slots, heap and table, and its keys' strings
    /// (their capacities; the allocator's own overhead per string is not counted).
    ///
    /// ```
    /// use seawall::metrics::top_k::TopK;
    ///
    /// let mut top = TopK::new(1000);
    /// for i in 0..100_000 {
    ///     top.record(&format!("10.0.{}.{}", i / 256, i % 256), 1);
    /// }
    /// assert!(top.heap_bytes() < 100_000);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<String>>()
            + self.heap.capacity() * std::mem::size_of::<u32>()
            + self.index.allocation_size()
            + self.slots.iter().map(|s| s.key.capacity()).sum::<usize>()
    }
}

/// A [`TopK`] behind a mutex, to record from several threads through `&self`.
///
/// ```
/// use std::sync::Arc;
/// use seawall::metrics::top_k::SharedTopK;
///
/// let top = Arc::new(SharedTopK::new(100));
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let top = Arc::clone(&top);
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 top.record(&format!("ip-{t}"), 1);
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(top.total(), 4000);
/// assert_eq!(top.snapshot()[0].count, 1000);
/// ```
pub struct SharedTopK<K = String> {
    inner: Mutex<TopK<K>>,
}

impl<K> fmt::Debug for SharedTopK<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedTopK")
            .field(&*self.inner.lock())
            .finish()
    }
}

impl<K> SharedTopK<K> {
    /// An empty shared counter holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        SharedTopK {
            inner: Mutex::new(TopK::new(capacity)),
        }
    }

    /// [`TopK::record_key`] under the lock.
    pub fn record_key<Q>(&self, key: &Q, n: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.inner.lock().record_key(key, n);
    }

    /// [`TopK::snapshot`] under the lock.
    pub fn snapshot(&self) -> Vec<Entry<K>>
    where
        K: Ord + Clone,
    {
        self.inner.lock().snapshot()
    }

    /// [`TopK::summary`]: entries, total and `other` read under one lock.
    ///
    /// ```
    /// use seawall::metrics::top_k::SharedTopK;
    ///
    /// let top = SharedTopK::new(1);
    /// top.record("a", 1);
    /// top.record("b", 1);
    /// let s = top.summary();
    /// assert_eq!((s.entries.len(), s.total, s.other), (1, 2, 1));
    /// ```
    pub fn summary(&self) -> TopKSnapshot<K>
    where
        K: Ord + Clone,
    {
        self.inner.lock().summary()
    }

    /// [`TopK::get`] under the lock.
    pub fn get<Q>(&self, key: &Q) -> Option<(u64, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.lock().get(key)
    }

    /// [`TopK::other`].
    pub fn other(&self) -> u64 {
        self.inner.lock().other()
    }

    /// [`TopK::total`].
    pub fn total(&self) -> u64 {
        self.inner.lock().total()
    }

    /// [`TopK::len`].
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// [`TopK::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.inner.lock().is_empty()
    }

    /// [`TopK::capacity`].
    pub fn capacity(&self) -> usize {
        self.inner.lock().capacity()
    }

    /// [`TopK::summary`] and [`TopK::reset`] under one lock.
    pub fn take(&self) -> TopKSnapshot<K>
    where
        K: Ord + Clone,
    {
        let mut inner = self.inner.lock();
        let s = inner.summary();
        inner.reset();
        s
    }

    /// [`TopK::reset`] under the lock.
    pub fn reset(&self) {
        self.inner.lock().reset();
    }
}

impl SharedTopK<String> {
    /// [`TopK::record`] under the lock: the key is bounded (hashed when long) before the lock is
    /// taken.
    pub fn record(&self, key: &str, n: u64) {
        let key = bounded_key(key);
        self.inner.lock().record_key(key.as_ref(), n);
    }

    /// [`TopK::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.inner.lock().heap_bytes()
    }
}
