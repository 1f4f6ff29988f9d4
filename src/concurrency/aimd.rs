//! AIMD: loss-based. Successful calls add `increase_by` to the limit per round trip (when the
//! limit is in use); a dropped call, or one slower than `timeout`, multiplies it by
//! `backoff_ratio`.
//!
//! As Netflix's `AIMDLimit`, with three changes:
//!
//! * **Additive increase per round trip**: each success adds `increase_by / limit`, so a limit's
//!   worth of successes, one round trip, adds `increase_by` (TCP's congestion avoidance,
//!   RFC 5681). Netflix adds `increase_by` per success, which doubles the limit every round trip
//!   (slow start for ever) and overshoots the capacity by as much as the limit itself.
//! * **No increase when app-limited**: a success raises the limit only if the call was admitted
//!   with at least half the limit in flight (`in_flight × 2 ≥ limit`). A service that never uses
//!   its limit learns nothing about the dependency's capacity from it, so the limit does not
//!   drift to `max_limit` in quiet hours and let the first burst through unchecked.
//! * **One decrease per congestion event**: a loss by a call admitted before the last decrease
//!   took effect does not decrease the limit again. When a dependency stalls, every call in flight
//!   times out together; TCP (RFC 5681) backs off once per window for the same reason. Netflix
//!   backs off once per dropped call, so 20 simultaneous timeouts take a limit of 100 to 12.
//!
//! ```
//! use seawall::concurrency::{AimdConfig, LimitConfig, Sample};
//!
//! let config = AimdConfig { initial: 10, ..AimdConfig::default() };
//! let mut limit = LimitConfig::Aimd(config).build().unwrap();
//! for i in 0..10 {
//!     limit.on_sample(Sample { start: i, rtt: 1_000, in_flight: 10, dropped: false });
//! }
//! assert_eq!(limit.limit(), 10); // 10 + 10 × 1/10, in floating point just under 11
//! limit.on_sample(Sample { start: 10, rtt: 1_000, in_flight: 10, dropped: false });
//! assert_eq!(limit.limit(), 11);
//! limit.on_sample(Sample { start: 5_000, rtt: 1_000, in_flight: 11, dropped: true });
//! assert_eq!(limit.limit(), 9); // 11.0… × 0.9
//! ```

use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;

use super::limit::Sample;

/// AIMD's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AimdConfig {
    /// The limit to start from.
    pub initial: u32,
    /// The limit never goes below this (at least 1).
    pub min_limit: u32,
    /// Nor above this.
    pub max_limit: u32,
    /// A loss multiplies the limit by this (0.5 ≤ r < 1).
    pub backoff_ratio: f64,
    /// Successes add this per round trip.
    pub increase_by: u32,
    /// A call slower than this counts as dropped.
    pub timeout: Nanos,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            initial: 20,
            min_limit: 1,
            max_limit: 200,
            backoff_ratio: 0.9,
            increase_by: 1,
            timeout: 5 * NANOS_PER_SEC,
        }
    }
}

/// Checks `min_limit ≤ initial ≤ max_limit`, with `min_limit ≥ 1`; shared by both algorithms.
pub(crate) fn check_bounds(initial: u32, min_limit: u32, max_limit: u32) -> Result<(), Error> {
    if min_limit == 0 {
        return Err(Error::invalid("min_limit", "must be at least 1, got 0"));
    }
    if max_limit < min_limit {
        return Err(Error::invalid(
            "max_limit",
            format!("must be at least min_limit ({min_limit}), got {max_limit}"),
        ));
    }
    if !(min_limit..=max_limit).contains(&initial) {
        return Err(Error::invalid(
            "initial",
            format!(
                "must be from min_limit ({min_limit}) to max_limit ({max_limit}), got {initial}"
            ),
        ));
    }
    Ok(())
}

impl AimdConfig {
    /// Checks every setting; the error names it.
    pub fn validate(self) -> Result<Self, Error> {
        check_bounds(self.initial, self.min_limit, self.max_limit)?;
        if !(self.backoff_ratio >= 0.5 && self.backoff_ratio < 1.0) {
            return Err(Error::invalid(
                "backoff_ratio",
                format!(
                    "must be from 0.5 up to (not including) 1, got {}",
                    self.backoff_ratio
                ),
            ));
        }
        if self.increase_by == 0 {
            return Err(Error::invalid("increase_by", "must be at least 1, got 0"));
        }
        if self.timeout == 0 {
            return Err(Error::invalid("timeout", "must be above 0 seconds, got 0"));
        }
        Ok(self)
    }
}

/// AIMD's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    config: AimdConfig,
    estimate: f64,
    /// When the last decrease happened (the end of the call that caused it).
    last_decrease: Option<Nanos>,
}

impl Aimd {
    /// Starts at `config.initial` (the config is assumed valid).
    pub fn new(config: AimdConfig) -> Self {
        Aimd {
            estimate: f64::from(config.initial),
            config,
            last_decrease: None,
        }
    }

    /// The current limit: the estimate rounded down.
    pub fn limit(&self) -> u32 {
        self.estimate as u32
    }

    /// The estimate before rounding.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// Feeds one outcome; returns the new limit.
    pub fn on_sample(&mut self, s: Sample) -> u32 {
        let c = &self.config;
        if s.dropped || s.rtt > c.timeout {
            if self.last_decrease.is_some_and(|t| s.start < t) {
                return self.limit(); // this congestion event was answered already
            }
            self.estimate = (self.estimate * c.backoff_ratio).max(f64::from(c.min_limit));
            self.last_decrease = Some(s.start.saturating_add(s.rtt));
        } else if u64::from(s.in_flight) * 2 >= u64::from(self.limit()) {
            let grown = self.estimate + f64::from(c.increase_by) / self.estimate;
            self.estimate = grown.min(f64::from(c.max_limit));
        }
        self.limit()
    }
}
