//! A limit algorithm: what the concurrency limit is, and how one outcome moves it.
//!
//! The algorithm is separate from the limiter that enforces it (Netflix's split): the limiter
//! counts permits, the algorithm only sees [`Sample`]s and answers with a new limit. Each
//! algorithm is plain state plus a pure update, with no clock and no lock, so that it is tested
//! sample by sample against a model.

use crate::clock::Nanos;
use crate::error::Error;

use super::aimd::{Aimd, AimdConfig};
use super::gradient::{Gradient, GradientConfig};

/// One finished call, as the limiter reports it to the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the call was admitted.
    pub start: Nanos,
    /// How long it took, admission to outcome.
    pub rtt: Nanos,
    /// Calls in flight when it was admitted, itself included.
    pub in_flight: u32,
    /// Whether it was dropped (timed out, shed downstream, refused by a dependency): the loss
    /// signal. A dropped call's RTT says nothing about the dependency's speed.
    pub dropped: bool,
}

/// The settings of an algorithm, checked; [`LimitConfig::build`] starts one with fresh state.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitConfig {
    /// A limit that never moves.
    Fixed(u32),
    /// Loss-based: additive increase, multiplicative decrease.
    Aimd(AimdConfig),
    /// Delay-based: Netflix's Gradient2, with guards.
    Gradient(GradientConfig),
}

impl LimitConfig {
    /// Checks the settings; the error names the parameter.
    ///
    /// ```
    /// use seawall::concurrency::{AimdConfig, LimitConfig};
    ///
    /// assert!(LimitConfig::Fixed(0).validate().is_err());
    /// let bad = AimdConfig { backoff_ratio: 1.0, ..AimdConfig::default() };
    /// let e = LimitConfig::Aimd(bad).validate().unwrap_err();
    /// assert!(e.to_string().starts_with("backoff_ratio"));
    /// ```
    pub fn validate(self) -> Result<Self, Error> {
        match self {
            LimitConfig::Fixed(0) => Err(Error::invalid("limit", "must be at least 1, got 0")),
            LimitConfig::Fixed(n) => Ok(LimitConfig::Fixed(n)),
            LimitConfig::Aimd(c) => Ok(LimitConfig::Aimd(c.validate()?)),
            LimitConfig::Gradient(c) => Ok(LimitConfig::Gradient(c.validate()?)),
        }
    }

    /// A fresh algorithm with these settings (validated first).
    ///
    /// ```
    /// use seawall::concurrency::{GradientConfig, LimitConfig};
    ///
    /// let limit = LimitConfig::Gradient(GradientConfig::default()).build().unwrap();
    /// assert_eq!(limit.limit(), 20);
    /// ```
    pub fn build(self) -> Result<LimitAlgorithm, Error> {
        Ok(match self.validate()? {
            LimitConfig::Fixed(n) => LimitAlgorithm::Fixed(n),
            LimitConfig::Aimd(c) => LimitAlgorithm::Aimd(Aimd::new(c)),
            LimitConfig::Gradient(c) => LimitAlgorithm::Gradient(Gradient::new(c)),
        })
    }

    /// The algorithm's name, as `stats()` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            LimitConfig::Fixed(_) => "fixed",
            LimitConfig::Aimd(_) => "aimd",
            LimitConfig::Gradient(_) => "gradient",
        }
    }
}

/// An algorithm with its state.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitAlgorithm {
    /// A limit that never moves.
    Fixed(u32),
    /// See [`Aimd`].
    Aimd(Aimd),
    /// See [`Gradient`].
    Gradient(Gradient),
}

impl LimitAlgorithm {
    /// The current limit, at least 1.
    ///
    /// ```
    /// use seawall::concurrency::{LimitConfig, Sample};
    ///
    /// let mut fixed = LimitConfig::Fixed(8).build().unwrap();
    /// fixed.on_sample(Sample { start: 0, rtt: 5, in_flight: 8, dropped: true });
    /// assert_eq!(fixed.limit(), 8);
    /// ```
    pub fn limit(&self) -> u32 {
        match self {
            LimitAlgorithm::Fixed(n) => *n,
            LimitAlgorithm::Aimd(a) => a.limit(),
            LimitAlgorithm::Gradient(g) => g.limit(),
        }
    }

    /// Feeds one outcome; returns the new limit.
    pub fn on_sample(&mut self, sample: Sample) -> u32 {
        match self {
            LimitAlgorithm::Fixed(n) => *n,
            LimitAlgorithm::Aimd(a) => a.on_sample(sample),
            LimitAlgorithm::Gradient(g) => g.on_sample(sample),
        }
    }

    /// The algorithm's name.
    pub fn name(&self) -> &'static str {
        match self {
            LimitAlgorithm::Fixed(_) => "fixed",
            LimitAlgorithm::Aimd(_) => "aimd",
            LimitAlgorithm::Gradient(_) => "gradient",
        }
    }
}
