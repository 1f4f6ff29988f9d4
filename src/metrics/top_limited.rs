//! Who is being limited: [`TopLimited`], the keys a limiter refused most, in bounded memory.
//!
//! Each limiter (the in-memory, Redis and host limiters, the HTTP middleware's policy) holds one
//! and records a key on the **denied** path only: an admitted decision never touches it. It is a
//! [`SharedTopK`] (space-saving), so its memory is bounded by its capacity whatever the keys
//! (long keys are stored hashed, [`super::top_k::bounded_key`]), and its counts are estimates
//! with the space-saving bound: a key's true count is between `count - error` and `count`, and
//! `error ≤ total / capacity`. A capacity of 0 turns it off: nothing is allocated or locked.
//! Its keys are client keys: they are read from Python (`top_limited()`), never exported as
//! metric labels.

use super::top_k::{Entry, SharedTopK, TopKSnapshot};

/// The capacity a limiter's [`TopLimited`] has unless told otherwise.
pub const DEFAULT_TOP_LIMITED: usize = 100;

/// The most keys a [`TopLimited`] may be asked to hold (about 34 MB with the longest keys).
pub const MAX_TOP_LIMITED: usize = 100_000;

/// A limiter's bounded count of the keys it refused most; off (the [`Default`]) with capacity 0.
///
/// ```
/// use seawall::metrics::top_limited::TopLimited;
///
/// let top = TopLimited::new(2);
/// for _ in 0..3 {
///     top.record("ip:203.0.113.7");
/// }
/// top.record("ip:198.51.100.1");
/// top.record("ip:192.0.2.9"); // full: takes the place (and count) of the smallest
/// let first = &top.top(10)[0];
/// assert_eq!((first.key.as_str(), first.count, first.error), ("ip:203.0.113.7", 3, 0));
/// assert_eq!(top.summary().total, 5);
///
/// let off = TopLimited::new(0);
/// off.record("k");
/// assert!(off.top(10).is_empty());
/// ```
#[derive(Debug, Default)]
pub struct TopLimited {
    top: Option<SharedTopK<String>>,
}

impl TopLimited {
    /// Holds at most `capacity` keys (0: off, nothing recorded).
    pub fn new(capacity: usize) -> Self {
        TopLimited {
            top: (capacity > 0).then(|| SharedTopK::new(capacity)),
        }
    }

    /// Counts one refusal of `key` (nothing when off).
    #[inline]
    pub fn record(&self, key: &str) {
        if let Some(top) = &self.top {
            top.record(key, 1);
        }
    }

    /// The most keys held (0 when off).
    pub fn capacity(&self) -> usize {
        self.top.as_ref().map_or(0, SharedTopK::capacity)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.top.as_ref().map_or(0, SharedTopK::len)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `n` keys refused most, most first (see [`super::top_k::TopK::snapshot`]).
    pub fn top(&self, n: usize) -> Vec<Entry<String>> {
        let mut entries = self
            .top
            .as_ref()
            .map(SharedTopK::snapshot)
            .unwrap_or_default();
        entries.truncate(n);
        entries
    }

    /// Every key held with the total and `other` of the same instant (an empty summary of
    /// capacity 0 when off).
    ///
    /// ```
    /// use seawall::metrics::top_limited::TopLimited;
    ///
    /// let top = TopLimited::new(1);
    /// top.record("a");
    /// top.record("b"); // evicts a: b's count 2 holds a's 1 as its error
    /// let s = top.summary();
    /// assert_eq!((s.entries[0].count, s.entries[0].error, s.total, s.other), (2, 1, 2, 1));
    /// ```
    pub fn summary(&self) -> TopKSnapshot<String> {
        match &self.top {
            Some(top) => top.summary(),
            None => TopKSnapshot {
                entries: Vec::new(),
                total: 0,
                other: 0,
                capacity: 0,
            },
        }
    }

    /// Forgets every key and count.
    pub fn reset(&self) {
        if let Some(top) = &self.top {
            top.reset();
        }
    }
}
