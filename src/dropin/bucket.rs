//! One token bucket with its counters, safe to share between threads.

use parking_lot::Mutex;

use super::{check_cost, BucketStats};
use crate::algorithm::token_bucket::{BucketState, TokenBucket};
use crate::clock::Nanos;
use crate::error::Error;
use crate::store::memory::KeyStats;

struct Inner {
    params: TokenBucket,
    state: BucketState,
    stats: KeyStats,
}

/// A token bucket behind a lock: every call is atomic.
///
/// ```
/// use seawall::algorithm::token_bucket::TokenBucket;
/// use seawall::dropin::bucket::Bucket;
///
/// let bucket = Bucket::new(TokenBucket::new(2, 1.0, 2).unwrap(), 0);
/// assert_eq!(bucket.consume(0, 2), Ok(true));
/// assert_eq!(bucket.consume(0, 1), Ok(false));
/// assert!(bucket.consume(0, 3).is_err()); // more than it can ever hold
/// assert_eq!(bucket.stats(0).rejected, 1);
/// ```
pub struct Bucket {
    inner: Mutex<Inner>,
}

impl Bucket {
    /// A bucket with `params`, created at `now`.
    pub fn new(params: TokenBucket, now: Nanos) -> Self {
        Bucket {
            inner: Mutex::new(Inner {
                state: params.fresh(now),
                params,
                stats: KeyStats::default(),
            }),
        }
    }

    /// Takes `cost` tokens if they are all there; counts the decision.
    #[inline]
    pub fn consume(&self, now: Nanos, cost: u64) -> Result<bool, Error> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        check_cost(&inner.params, cost)?;
        let ok = inner.params.try_acquire(&mut inner.state, now, cost);
        inner.stats.record(ok, now);
        Ok(ok)
    }

    /// Tokens there now.
    pub fn tokens(&self, now: Nanos) -> f64 {
        let g = self.inner.lock();
        g.params.tokens(&g.state, now)
    }

    /// Back to `initial` tokens, counters zeroed.
    pub fn reset(&self, now: Nanos) {
        let mut g = self.inner.lock();
        g.state = g.params.fresh(now);
        g.stats = KeyStats::default();
    }

    /// The parameters.
    pub fn params(&self) -> TokenBucket {
        self.inner.lock().params
    }

    /// New parameters; the tokens there now carry over, capped at the new capacity.
    pub fn set_params(&self, params: TokenBucket, now: Nanos) {
        let mut g = self.inner.lock();
        g.state = params.rebase(&g.params, &g.state, now);
        g.params = params;
    }

    /// A snapshot.
    pub fn stats(&self, now: Nanos) -> BucketStats {
        let g = self.inner.lock();
        snapshot(&g.params, &g.state, &g.stats, now)
    }
}

pub(crate) fn snapshot(
    params: &TokenBucket,
    state: &BucketState,
    stats: &KeyStats,
    now: Nanos,
) -> BucketStats {
    BucketStats {
        tokens: params.tokens(state, now),
        capacity: params.capacity(),
        refill_rate: params.rate().as_f64(),
        total: stats.total,
        rejected: stats.limited,
        last_rejection: (stats.limited > 0).then_some(stats.last_limited),
    }
}
