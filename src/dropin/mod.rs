//! The drop-in types of the APIs seawall replaces, each keeping its original's contract: a single
//! token bucket ([`bucket::Bucket`]), a token bucket per client ([`client::ClientLimiter`]) and
//! a sliding log per client ([`log_service::LogService`]). seawall's own limiter is in
//! [`crate::limiter`].

pub mod bucket;
pub mod client;
pub mod log_service;

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
