//! What a [`RedisLimiter`](super::redis_limiter::RedisLimiter) does when Redis cannot answer:
//! the operator's policy ([`OnError`]), where a decision came from ([`Fallback`]), why a call
//! failed ([`StoreError`]), and the failure reports for the `seawall.redis` logger, each kind at
//! most once per interval.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::limit::LimitDecision;
use crate::clock::Nanos;
use crate::error::Error;

/// What a decision is when Redis cannot make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Admit (fail open): an outage never turns users away.
    Allow,
    /// Refuse (fail closed): an outage never lets more through than the limits.
    Deny,
    /// An in-memory limiter with the same limits decides, per process.
    Local,
}

impl OnError {
    /// The name users write.
    pub fn name(self) -> &'static str {
        match self {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
            OnError::Local => "local",
        }
    }
}

impl std::str::FromStr for OnError {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "allow" => Ok(OnError::Allow),
            "deny" => Ok(OnError::Deny),
            "local" => Ok(OnError::Local),
            _ => Err(Error::invalid(
                "on_error",
                format!("must be 'allow', 'deny' or 'local', got {s:?}"),
            )),
        }
    }
}

/// Why a decision was made without Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Redis answered.
    None,
    /// The call failed or timed out.
    Error,
    /// The breaker around Redis was open: no call was made.
    BreakerOpen,
}

/// A decision and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisDecision {
    /// The decision.
    pub decision: LimitDecision,
    /// Whether the failure policy made it.
    pub fallback: Fallback,
}

/// A message for the `seawall.redis` logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// ERROR (the store can never work as configured) rather than WARNING (an outage).
    pub error: bool,
    /// The message; never holds a password.
    pub message: String,
    /// Failures of this kind not reported since the last report.
    pub suppressed: u64,
    /// Structured fields for the record's `extra` (`limiter`, `url`, `on_error`); never a
    /// client key or a password.
    pub fields: Vec<(&'static str, String)>,
}

impl Report {
    /// The `event` field: `redis_refused` (a configuration error) or `redis_failed`.
    pub fn event(&self) -> &'static str {
        if self.error {
            "redis_refused"
        } else {
            "redis_failed"
        }
    }
}

/// Failures of one kind, reported at most once per interval.
pub(super) struct ErrorLog {
    interval: Nanos,
    error: bool,
    state: Mutex<(Option<Instant>, u64)>,
}

impl ErrorLog {
    pub(super) fn new(interval: Nanos, error: bool) -> Self {
        ErrorLog {
            interval,
            error,
            state: Mutex::new((None, 0)),
        }
    }

    /// The report due now for `what`, if any.
    pub(super) fn note(&self, what: &str) -> Option<Report> {
        let mut g = self.state.lock();
        let due =
            g.0.is_none_or(|t| t.elapsed() >= Duration::from_nanos(self.interval));
        if !due {
            g.1 += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut g.1);
        g.0 = Some(Instant::now());
        let mut message = what.to_owned();
        if suppressed > 0 {
            message.push_str(&format!(
                " ({suppressed} more failures since the last report)"
            ));
        }
        Some(Report {
            error: self.error,
            message,
            suppressed,
            fields: Vec::new(),
        })
    }
}

/// Why a call to Redis did not give an answer: [`StoreError::Configuration`] is raised to the
/// caller, [`StoreError::Unavailable`] is an outage (decisions follow `on_error`; a reset
/// raises it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store can never work as configured: Redis refused the credentials, its ACL forbids
    /// the script or the keys, or it has no such database. Waiting does not heal it.
    Configuration(String),
    /// Redis failed, timed out, or the breaker around it is open.
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Configuration(m) | StoreError::Unavailable(m) => f.write_str(m),
        }
    }
}
