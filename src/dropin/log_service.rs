//! A sliding-log limiter whose limit and window are given per call, on one log per client: the
//! semantics of seed 004's `RateLimiterService.check_and_record`, which keeps a list of
//! timestamps per client and prunes it by the window of each call. Here the log is a ring of at
//! most the largest limit used, and each decision costs amortised O(1) whatever the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::algorithm::sliding_log::{LogState, SlidingLog};
use crate::algorithm::Decision;
use crate::clock::Nanos;
use crate::error::Error;
use crate::store::memory::{Keyed, MemoryStore, StoreTotals};

/// What the store needs to evict logs losslessly: the longest window any call has used, shared
/// by every shard.
#[derive(Debug, Clone)]
pub struct LogKeys {
    longest_window: Arc<AtomicU64>,
}

impl PartialEq for LogKeys {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.longest_window, &other.longest_window)
    }
}

impl Keyed for LogKeys {
    type State = LogState;

    fn fresh(&self, _now: Nanos) -> LogState {
        LogState::default()
    }

    fn is_fresh(&self, state: &LogState, now: Nanos) -> bool {
        let window = self.longest_window.load(Ordering::Relaxed);
        SlidingLog::new(1, window).is_fresh(state, now)
    }

    /// When the log is empty under the longest window used, then how many entries it holds.
    fn eviction_rank(&self, state: &LogState, now: Nanos) -> (Nanos, u128) {
        let window = self.longest_window.load(Ordering::Relaxed);
        (
            SlidingLog::new(1, window).fresh_at(state, now),
            state.len() as u128,
        )
    }

    fn state_heap_bytes(&self, state: &LogState) -> usize {
        state.heap_bytes()
    }

    fn rebase(&self, _old: &Self, state: &LogState, _now: Nanos) -> LogState {
        state.clone()
    }
}

/// Per-client logs decided with the limit and window of each call.
///
/// ```
/// use seawall::dropin::log_service::LogService;
///
/// let service = LogService::new(1000);
/// assert!(service.check_and_record("c", 0, 2, 10).unwrap().allowed);
/// assert!(service.check_and_record("c", 1, 2, 10).unwrap().allowed);
/// assert!(!service.check_and_record("c", 2, 2, 10).unwrap().allowed);
/// assert!(service.check_and_record("c", 2, 3, 10).unwrap().allowed); // a larger limit, same log
/// ```
pub struct LogService {
    store: MemoryStore<LogKeys>,
    longest_window: Arc<AtomicU64>,
}

impl LogService {
    /// At most `max_keys` clients held.
    pub fn new(max_keys: usize) -> Self {
        let longest_window = Arc::new(AtomicU64::new(1));
        LogService {
            store: MemoryStore::new(
                LogKeys {
                    longest_window: longest_window.clone(),
                },
                max_keys,
            ),
            longest_window,
        }
    }

    /// Admits one request for `client` if fewer than `limit` were admitted within the last
    /// `window` nanoseconds, and records it if so.
    #[inline]
    pub fn check_and_record(
        &self,
        client: &str,
        now: Nanos,
        limit: u64,
        window: Nanos,
    ) -> Result<Decision, Error> {
        if limit == 0 {
            return Err(Error::invalid("limit", "must be at least 1, got 0"));
        }
        if window == 0 {
            return Err(Error::invalid("window", "must be positive, got 0"));
        }
        self.longest_window.fetch_max(window, Ordering::Relaxed);
        let log = SlidingLog::new(limit, window);
        Ok(self.store.update(client, now, |_, state, stats| {
            let d = log.decide(state, now, 1, true);
            stats.record(d.allowed, now);
            d
        }))
    }

    /// Drops every client whose log is empty for the longest window used (lossless).
    pub fn cleanup(&self, now: Nanos) -> usize {
        self.store.cleanup(now)
    }

    /// Forgets `client`'s log; false if none was held.
    pub fn reset(&self, client: &str, now: Nanos) -> bool {
        self.store.reset(client, now)
    }

    /// Store-wide counters.
    pub fn totals(&self) -> StoreTotals {
        self.store.totals()
    }

    /// Clients held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no client is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Heap bytes held for the logs.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
    }
}
