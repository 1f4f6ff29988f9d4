//! What users configure: limits written as text ([`parse`]), a key's limits decided all or
//! nothing in memory ([`tiered::Limiter`]) or in Redis ([`shared::SharedLimiter`]), and the
//! drop-in types of the APIs seawall replaces: a single token bucket ([`bucket::Bucket`]), a
//! token bucket per client ([`client::ClientLimiter`]) and a sliding log per client
//! ([`log_service`]).

pub mod all_or_nothing;
pub mod bucket;
pub mod client;
pub mod hit_with;
pub mod log_service;
pub mod parse;
pub mod shared;
pub mod tiered;

use crate::algorithm::token_bucket::TokenBucket;
use crate::clock::Nanos;
use crate::error::Error;

/// A snapshot of one bucket, as the statistics APIs report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketStats {
    /// Tokens in the bucket at the time of the snapshot, fractions included.
    pub tokens: f64,
    /// The bucket's capacity.
    pub capacity: u64,
    /// Tokens refilled per second.
    pub refill_rate: f64,
    /// Decisions made.
    pub total: u64,
    /// Decisions that denied.
    pub rejected: u64,
    /// When the last denial happened, if ever.
    pub last_rejection: Option<Nanos>,
}

/// Checks a request's cost against the bucket that would serve it.
pub(crate) fn check_cost(bucket: &TokenBucket, cost: u64) -> Result<(), Error> {
    if cost == 0 || cost > bucket.capacity() {
        return Err(Error::invalid(
            "tokens",
            format!(
                "must be between 1 and the bucket's capacity ({}), got {cost}",
                bucket.capacity()
            ),
        ));
    }
    Ok(())
}
