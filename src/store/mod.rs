//! Where limiter state lives. A store never decides policy: it holds each key's state and runs an
//! algorithm's transition on it atomically.

pub mod memory;
pub mod redis;

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

    /// How long until the bucket is full again, in nanoseconds; a bucket that never refills ranks
    /// after every one that does, by the tokens it misses.
    #[inline]
    fn eviction_loss(&self, state: &BucketState, now: Nanos) -> u128 {
        let deficit = self.deficit(state, now);
        if deficit == 0 {
            0
        } else if self.rate().num() == 0 {
            u128::from(Nanos::MAX) + deficit
        } else {
            u128::from(self.fresh_in(state, now)).max(1)
        }
    }

    fn rebase(&self, old: &Self, state: &BucketState, now: Nanos) -> BucketState {
        TokenBucket::rebase(self, old, state, now)
    }
}
