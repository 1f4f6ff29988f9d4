//! Rate-limiting algorithms as pure state transitions.
//!
//! Each algorithm is a set of parameters with functions of `(state, now, cost)`: no clock reads, no
//! locks, no I/O. Stores keep the state and call these functions atomically; proofs against simple
//! reference models live beside each algorithm.

pub mod fixed_window;
pub mod gcra;
pub mod rate;
pub mod sliding_counter;
pub mod sliding_log;
pub mod token_bucket;

use crate::clock::Nanos;

/// The outcome of one decision, as every algorithm reports it.
///
/// ```
/// use seawall::algorithm::token_bucket::TokenBucket;
///
/// let bucket = TokenBucket::new(5, 1.0, 5).unwrap();
/// let mut state = bucket.fresh(0);
/// let d = bucket.decide(&mut state, 0, 2);
/// assert!(d.allowed);
/// assert_eq!((d.limit, d.remaining, d.retry_after), (5, 3, 0));
/// assert_eq!(d.reset_after, 2_000_000_000); // two tokens back at one per second
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and its cost consumed).
    pub allowed: bool,
    /// The most a key can have at once (a bucket's capacity, a window's count).
    pub limit: u64,
    /// Whole units left after this decision.
    pub remaining: u64,
    /// Nanoseconds until the key is back to its fresh state.
    pub reset_after: Nanos,
    /// Nanoseconds until this request would be admitted; 0 when allowed. `Nanos::MAX` when it never
    /// will be (a bucket that does not refill).
    pub retry_after: Nanos,
}
