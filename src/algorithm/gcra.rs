//! GCRA and the leaky bucket, as constructors of the exact [`TokenBucket`].
//!
//! The generic cell rate algorithm keeps one timestamp per key, the "theoretical arrival time",
//! and admits a request if it does not push that time more than the burst tolerance ahead of
//! now. That is exactly the state [`TokenBucket`] keeps (the moment the bucket is full again), and
//! the two decide identically: a GCRA of `count` per `period` with burst `b` is a bucket of `b`
//! tokens refilled at `count / period`, starting full. The leaky bucket as a meter is the same
//! again, seen from the other side: its level is the bucket's missing tokens, it drains at the
//! refill rate, and a request that would overflow its depth is refused. One implementation, proven
//! once, serves all three; they differ only in how they are written down.

use super::rate::Rate;
use super::token_bucket::TokenBucket;
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;

fn per_period(count: u64, period: Nanos) -> Result<Rate, Error> {
    // Periods are whole seconds in limit strings; sub-second ones are kept exact too.
    let (num, den) = if period.is_multiple_of(NANOS_PER_SEC) {
        (count, period / NANOS_PER_SEC)
    } else {
        (count.saturating_mul(NANOS_PER_SEC), period)
    };
    Rate::new(num, den).ok_or_else(|| {
        Error::invalid(
            "limit",
            format!(
                "{count} per {period} ns is outside the supported rates (1e-9 to 1e9 per second)"
            ),
        )
    })
}

/// GCRA: `count` per `period`, with bursts of up to `burst` (default: `count`).
///
/// ```
/// use seawall::algorithm::gcra::gcra;
/// use seawall::clock::NANOS_PER_SEC as S;
///
/// let g = gcra(3, 3 * S, None).unwrap(); // 3 per 3 s: one per second, bursts of 3
/// let mut s = g.fresh(0);
/// assert!(g.decide(&mut s, 0, 3).allowed);
/// let d = g.decide(&mut s, 0, 1);
/// assert_eq!(d.retry_after, S);
/// ```
pub fn gcra(count: u64, period: Nanos, burst: Option<u64>) -> Result<TokenBucket, Error> {
    let capacity = burst.unwrap_or(count);
    TokenBucket::with_rate(capacity, per_period(count, period)?, capacity)
}

/// A leaky bucket of `depth`, draining `drain` units per `period`.
///
/// ```
/// use seawall::algorithm::gcra::leaky_bucket;
/// use seawall::clock::NANOS_PER_SEC as S;
///
/// let b = leaky_bucket(2, 1, S).unwrap();
/// let mut s = b.fresh(0);
/// assert!(b.decide(&mut s, 0, 2).allowed);
/// assert!(!b.decide(&mut s, S / 2, 1).allowed);
/// assert!(b.decide(&mut s, S, 1).allowed);
/// ```
pub fn leaky_bucket(depth: u64, drain: u64, period: Nanos) -> Result<TokenBucket, Error> {
    TokenBucket::with_rate(depth, per_period(drain, period)?, depth)
}
