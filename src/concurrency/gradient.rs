//! Gradient: delay-based, Netflix's `Gradient2Limit` with the guards its users asked for.
//!
//! It compares each call's RTT (the short RTT) with a long-term baseline (an exponential average
//! over `long_window` samples) and moves the limit by the ratio, the *gradient*:
//!
//! ```text
//! gradient  = clamp(rtt_tolerance × long_rtt / rtt, 0.5, 1)
//! target    = limit × gradient  (+ queue_size when gradient = 1: no queueing seen)
//! weight    = smoothing / limit
//! limit     = limit × (1 − weight) + target × weight, within [min_limit, max_limit]
//! ```
//!
//! So while calls are no slower than `rtt_tolerance` times the baseline the limit grows by about
//! `queue_size × smoothing` per round trip, and once they are, it shrinks in proportion, by at
//! most `smoothing / 2` per round trip. It settles where calls take about `rtt_tolerance` times
//! the unloaded RTT. Where it differs from Netflix, and why:
//!
//! * **Smoothing per round trip, not per call.** Netflix moves the limit `smoothing` of the way
//!   on every sample, so in one round trip a limit of `L` grows by `0.8 L` (it doubles, like TCP's
//!   slow start, for ever) and a batch of `L` slow calls cuts it by `0.9^L`: driven by a
//!   dependency whose latency rises with load, its limit swings between a tenth and three times
//!   the capacity (`tests/test_concurrency_properties.py` simulates it). Weighting each sample
//!   by `1 / limit` makes a limit's worth of samples, one round trip, count as one step: additive
//!   increase and proportional decrease per round trip, and the limit holds within a few percent.
//! * **Load-induced latency never becomes the baseline** (the ratchet of concurrency-limits
//!   issue #137 and PR #134). Netflix feeds every RTT into the long average, so under sustained
//!   overload the baseline climbs to the overloaded RTT within a few hundred calls, the gradient
//!   returns to 1, and the limit grows again, to settle `rtt_tolerance` times higher each round.
//!   Here a call slower than the baseline updates it only if it was admitted at low load (at most
//!   `min_limit` in flight, or app-limited: fewer than half the limit): at low load a slower RTT
//!   is the dependency's own pace, under load it may be queueing we caused. A dependency that
//!   really got slower is accepted once the limit has come down to where its calls are admitted
//!   at low load. Faster calls always update it, and Netflix's decay stays: when the baseline is
//!   over twice the current RTT it is cut by 5 % per call, so it follows a recovery quickly.
//! * **`queue_size` is added only when the gradient is 1** (PR #134): Netflix adds it always,
//!   which under mild queueing pins the limit at `queue_size / (1 − gradient)` whatever the
//!   dependency can take (a gradient of 0.8 holds it at 20 even when 5 calls saturate it).
//! * **Drops count**: Netflix's Gradient2 ignores them (issue #176); here a dropped call moves
//!   the limit as a gradient of 0.5 would (smoothed), at most once per congestion event (see
//!   [`super::aimd`]), and its RTT is not a sample.
//! * **No increase when app-limited**, as Netflix (`in_flight × 2 < limit`: no change).
//! * `min_limit` defaults to 1, not 20: Python servers run far fewer concurrent calls than the JVM
//!   services Netflix chose 20 for.
//!
//! ```
//! use seawall::concurrency::{GradientConfig, LimitConfig, Sample};
//!
//! let mut limit = LimitConfig::Gradient(GradientConfig::default()).build().unwrap();
//! let ms = 1_000_000;
//! // Ten round trips of calls at the baseline, the limit in use: + queue_size × smoothing each.
//! for i in 0..220 {
//!     limit.on_sample(Sample { start: i * ms, rtt: 10 * ms, in_flight: 20, dropped: false });
//! }
//! assert_eq!(limit.limit(), 27);
//! // Calls three times slower: the gradient is 0.5 and the limit comes down.
//! for i in 220..500 {
//!     limit.on_sample(Sample { start: i * ms, rtt: 30 * ms, in_flight: 27, dropped: false });
//! }
//! assert!(limit.limit() < 20);
//! ```

use crate::error::Error;

use super::aimd::check_bounds;
use super::limit::Sample;
use crate::clock::Nanos;

/// Samples averaged plainly before the long RTT becomes an exponential average (Netflix's 10).
pub const WARMUP_SAMPLES: u32 = 10;

/// Gradient's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientConfig {
    /// The limit to start from.
    pub initial: u32,
    /// The limit never goes below this (at least 1).
    pub min_limit: u32,
    /// Nor above this.
    pub max_limit: u32,
    /// How much of each new estimate is taken (0 < s ≤ 1).
    pub smoothing: f64,
    /// RTTs up to this multiple of the baseline are not queueing (≥ 1).
    pub rtt_tolerance: f64,
    /// Samples in the baseline's exponential average.
    pub long_window: u32,
    /// What the limit may grow by while no queueing is seen (before smoothing).
    pub queue_size: u32,
}

impl Default for GradientConfig {
    fn default() -> Self {
        GradientConfig {
            initial: 20,
            min_limit: 1,
            max_limit: 200,
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

impl GradientConfig {
    /// Checks every setting; the error names it.
    pub fn validate(self) -> Result<Self, Error> {
        check_bounds(self.initial, self.min_limit, self.max_limit)?;
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(Error::invalid(
                "smoothing",
                format!("must be above 0 and at most 1, got {}", self.smoothing),
            ));
        }
        if !(self.rtt_tolerance.is_finite() && self.rtt_tolerance >= 1.0) {
            return Err(Error::invalid(
                "rtt_tolerance",
                format!(
                    "must be a finite number of at least 1, got {}",
                    self.rtt_tolerance
                ),
            ));
        }
        if self.long_window == 0 {
            return Err(Error::invalid("long_window", "must be at least 1, got 0"));
        }
        if self.queue_size == 0 {
            return Err(Error::invalid("queue_size", "must be at least 1, got 0"));
        }
        Ok(self)
    }
}

/// Gradient's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    config: GradientConfig,
    estimate: f64,
    long_rtt: f64,
    long_sum: f64,
    long_count: u32,
    last_rtt: Nanos,
    last_decrease: Option<Nanos>,
}

impl Gradient {
    /// Starts at `config.initial` (the config is assumed valid).
    pub fn new(config: GradientConfig) -> Self {
        Gradient {
            estimate: f64::from(config.initial),
            config,
            long_rtt: 0.0,
            long_sum: 0.0,
            long_count: 0,
            last_rtt: 0,
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

    /// The baseline RTT in nanoseconds (0 before the first sample).
    pub fn long_rtt(&self) -> f64 {
        self.long_rtt
    }

    /// The last sample's RTT in nanoseconds.
    pub fn last_rtt(&self) -> Nanos {
        self.last_rtt
    }

    fn add_long(&mut self, rtt: f64) {
        if self.long_count < WARMUP_SAMPLES {
            self.long_count += 1;
            self.long_sum += rtt;
            self.long_rtt = self.long_sum / f64::from(self.long_count);
        } else {
            let factor = 2.0 / (f64::from(self.config.long_window) + 1.0);
            self.long_rtt = self.long_rtt * (1.0 - factor) + rtt * factor;
        }
    }

    /// Moves the estimate `weight` of the way to `target`, within the bounds.
    fn set_estimate(&mut self, target: f64, weight: f64) {
        let c = &self.config;
        let smoothed = self.estimate * (1.0 - weight) + target * weight;
        self.estimate = smoothed.clamp(f64::from(c.min_limit), f64::from(c.max_limit));
    }

    /// Feeds one outcome; returns the new limit.
    pub fn on_sample(&mut self, s: Sample) -> u32 {
        if s.dropped {
            if self.last_decrease.is_some_and(|t| s.start < t) {
                return self.limit(); // this congestion event was answered already
            }
            self.set_estimate(self.estimate * 0.5, self.config.smoothing);
            self.last_decrease = Some(s.start.saturating_add(s.rtt));
            return self.limit();
        }
        self.last_rtt = s.rtt;
        let rtt = s.rtt.max(1) as f64;
        let in_flight = f64::from(s.in_flight);
        let app_limited = in_flight * 2.0 < self.estimate;
        let low_load = s.in_flight <= self.config.min_limit || app_limited;
        if self.long_count < WARMUP_SAMPLES || rtt <= self.long_rtt || low_load {
            self.add_long(rtt);
        }
        let long = self.long_rtt;
        if long > 2.0 * rtt {
            self.long_rtt = long * 0.95;
        }
        if app_limited {
            return self.limit();
        }
        let gradient = (self.config.rtt_tolerance * long / rtt).clamp(0.5, 1.0);
        let mut target = self.estimate * gradient;
        if gradient >= 1.0 {
            target += f64::from(self.config.queue_size);
        }
        // Smoothing per round trip: a limit's worth of samples moves it `smoothing` of the way.
        let weight = self.config.smoothing / self.estimate.max(1.0);
        self.set_estimate(target, weight);
        self.limit()
    }
}
