//! Where limiter state lives. A store never decides policy: it holds each key's state and runs an
//! algorithm's transition on it atomically.

pub mod host;
pub mod memory;
pub mod redis;
pub mod shard_lock;

use crate::algorithm::token_bucket::{BucketState, TokenBucket};
use crate::clock::Nanos;

impl memory::Keyed for TokenBucket {
    type State = BucketState;

    #[inline]
    fn fresh(&self, now: Nanos) -> BucketState {
        TokenBucket::fresh(self, now)
    }

    #[inline]
    fn is_fresh(&self, state: &BucketState, now: Nanos) -> bool {
        // A full bucket never grants more than a new one would: a new one starts with `initial`
        // tokens, at most `capacity`.
        self.is_full(state, now)
    }

    /// When the bucket is full again, then (for buckets that never refill) the tokens it misses:
    /// the earliest loses least.
    #[inline]
    fn eviction_rank(&self, state: &BucketState, now: Nanos) -> (Nanos, u128) {
        (self.full_at(state, now), self.deficit(state, now))
    }

    fn rebase(&self, old: &Self, state: &BucketState, now: Nanos) -> BucketState {
        TokenBucket::rebase(self, old, state, now)
    }
}
