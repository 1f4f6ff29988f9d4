//! A token bucket per client, in a bounded in-memory store.

use ecow::EcoString;
use std::sync::atomic::{AtomicU64, Ordering};

use super::bucket::snapshot;
use super::{check_cost, BucketStats};
use crate::algorithm::token_bucket::TokenBucket;
use crate::clock::Nanos;
use crate::error::Error;
use crate::store::memory::{MemoryStore, StoreTotals};

/// Per-client token buckets: a default configuration, per-client overrides, lossless cleanup and a
/// bound on clients held (see [`MemoryStore`] for what happens at the bound).
///
/// ```
/// use seawall::algorithm::token_bucket::TokenBucket;
/// use seawall::dropin::client::ClientLimiter;
///
/// let limiter = ClientLimiter::new(TokenBucket::new(1, 1.0, 1).unwrap(), 1_000_000);
/// assert_eq!(limiter.consume("a", 0, 1), Ok(true));
/// assert_eq!(limiter.consume("a", 0, 1), Ok(false));
/// assert_eq!(limiter.consume("b", 0, 1), Ok(true)); // clients do not share a bucket
/// assert_eq!(limiter.check("a", 1_000_000_000, 1), Ok(true)); // refilled; nothing consumed
/// ```
pub struct ClientLimiter {
    store: MemoryStore<TokenBucket>,
    /// The smallest capacity of any configuration: costs up to it need no per-key check.
    min_capacity: AtomicU64,
}

impl ClientLimiter {
    /// A limiter giving each client a bucket with `default` parameters, holding at most
    /// `max_clients` buckets.
    pub fn new(default: TokenBucket, max_clients: usize) -> Self {
        ClientLimiter {
            min_capacity: AtomicU64::new(default.capacity()),
            store: MemoryStore::new(default, max_clients),
        }
    }

    /// The parameters new clients get.
    pub fn default_config(&self) -> TokenBucket {
        self.store.default_config()
    }

    /// The bound on clients held.
    pub fn max_clients(&self) -> usize {
        self.store.max_keys()
    }

    fn check_cost_for(&self, client: &str, now: Nanos, cost: u64) -> Result<(), Error> {
        if cost >= 1 && cost <= self.min_capacity.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.store.read(client, now, |b, _, _| check_cost(b, cost))
    }

    /// Takes `cost` tokens from `client`'s bucket if they are all there; counts the decision.
    #[inline]
    pub fn consume(&self, client: &str, now: Nanos, cost: u64) -> Result<bool, Error> {
        self.check_cost_for(client, now, cost)?;
        Ok(self.store.update(client, now, |b, s, stats| {
            let ok = b.try_acquire(s, now, cost);
            stats.record(ok, now);
            ok
        }))
    }

    /// Whether `client` could take `cost` tokens now; takes none and creates no bucket.
    pub fn check(&self, client: &str, now: Nanos, cost: u64) -> Result<bool, Error> {
        self.check_cost_for(client, now, cost)?;
        Ok(self
            .store
            .read(client, now, |b, s, _| b.can_acquire(s, now, cost)))
    }

    /// Tokens in `client`'s bucket now (a new client's `initial` when none is held).
    pub fn tokens(&self, client: &str, now: Nanos) -> f64 {
        self.store.read(client, now, |b, s, _| b.tokens(s, now))
    }

    /// Gives `client` its own parameters; a held bucket keeps its tokens, capped at the new
    /// capacity. The default parameters clear the client's own (freeing them). Refused when
    /// `max_clients` clients have their own parameters already.
    pub fn set_config(&self, client: &str, params: TokenBucket, now: Nanos) -> Result<(), Error> {
        self.min_capacity
            .fetch_min(params.capacity(), Ordering::Relaxed);
        if self.store.set_override(client, params, now) {
            Ok(())
        } else {
            Err(Error::invalid(
                "max_clients",
                format!(
                    "reached: {} clients have their own configuration already; set some back to \
                     the default configuration first or raise max_clients",
                    self.store.max_keys()
                ),
            ))
        }
    }

    /// Clients with their own parameters.
    pub fn configured_clients(&self) -> usize {
        self.store.overrides()
    }

    /// Puts `client`'s bucket back to `initial` tokens with zeroed counters; false if none is held.
    pub fn reset(&self, client: &str, now: Nanos) -> bool {
        self.store.reset(client, now)
    }

    /// Drops every bucket that is full (lossless); returns how many.
    pub fn cleanup(&self, now: Nanos) -> usize {
        self.store.cleanup(now)
    }

    /// A snapshot of `client`'s bucket, if one is held.
    pub fn stats(&self, client: &str, now: Nanos) -> Option<BucketStats> {
        self.store
            .read(client, now, |b, s, st| st.map(|st| snapshot(b, s, st, now)))
    }

    /// Snapshots of every bucket held, and store-wide totals (which include evicted buckets'
    /// counts).
    pub fn all_stats(&self, now: Nanos) -> (Vec<(EcoString, BucketStats)>, StoreTotals) {
        let mut out = Vec::with_capacity(self.store.len());
        self.store.for_each(|k, b, s, st| {
            out.push((EcoString::from(k), snapshot(b, s, st, now)));
        });
        (out, self.store.totals())
    }

    /// Store-wide totals.
    pub fn totals(&self) -> StoreTotals {
        self.store.totals()
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Heap bytes held for the buckets and the per-client parameters.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
    }
}
