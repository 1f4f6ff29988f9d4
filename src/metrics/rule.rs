//! Per-rule metrics (SEEDS-002-003.md A13, A14): decisions, hit rate, mean remaining, and the
//! violations by user, IP and endpoint as bounded top-Ks.
//!
//! Allowed requests touch only atomics (two relaxed adds); a denied request also takes the lock
//! of each violation counter it has a key for (up to three short critical sections, one hash
//! lookup and an O(log K) sift each).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use super::top_k::{SharedTopK, TopKSnapshot};

/// How many keys each violation counter holds unless told otherwise (A14: "the top 1,000").
pub const DEFAULT_VIOLATIONS_CAPACITY: usize = 1000;

/// The counters of one rule. Thread-safe: every method takes `&self`.
///
/// ```
/// use seawall::metrics::rule::RuleMetrics;
///
/// let m = RuleMetrics::new();
/// m.record(true, 9.0, "user:1", Some("203.0.113.7"), Some("/api/items"));
/// m.record(false, 0.0, "user:2", Some("203.0.113.8"), Some("/api/items"));
/// assert_eq!((m.total(), m.allowed(), m.denied()), (2, 1, 1));
/// assert_eq!(m.hit_rate(), 0.5);
///
/// let s = m.snapshot();
/// assert_eq!(s.avg_tokens_remaining, 4.5);
/// assert_eq!(s.violations_by_user.entries[0].key, "user:2");
/// assert_eq!(s.violations_by_endpoint.entries[0].count, 1);
/// ```
#[derive(Debug)]
pub struct RuleMetrics {
    allowed: AtomicU64,
    denied: AtomicU64,
    /// The sum of `remaining` over the decisions recorded, as `f64` bits.
    remaining_sum: AtomicU64,
    by_user: SharedTopK<String>,
    by_ip: SharedTopK<String>,
    by_endpoint: SharedTopK<String>,
}

/// One read of a [`RuleMetrics`], named as the seed's metrics fields (pythonize-ready).
///
/// The counters are read one after the other without a lock: under concurrent recording,
/// `total_requests` is always `allowed_requests + denied_requests`, but the violation counters
/// may already include (or not yet include) a denial made while the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMetricsSnapshot {
    /// Decisions recorded since the last reset: `allowed_requests + denied_requests`.
    pub total_requests: u64,
    /// Decisions that allowed the request.
    pub allowed_requests: u64,
    /// Decisions that denied it.
    pub denied_requests: u64,
    /// `denied_requests / total_requests`, 0.0 when nothing was recorded (A13).
    pub hit_rate: f64,
    /// The mean of `remaining` over all decisions recorded, 0.0 when nothing was recorded.
    pub avg_tokens_remaining: f64,
    /// Denials by the identifier as passed (long identifiers hashed, see
    /// [`bounded_key`](super::top_k::bounded_key)).
    pub violations_by_user: TopKSnapshot<String>,
    /// Denials by client IP.
    pub violations_by_ip: TopKSnapshot<String>,
    /// Denials by endpoint (route template or path).
    pub violations_by_endpoint: TopKSnapshot<String>,
}

impl Default for RuleMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleMetrics {
    /// Zeroed metrics whose violation counters hold [`DEFAULT_VIOLATIONS_CAPACITY`] keys each.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_VIOLATIONS_CAPACITY)
    }

    /// Zeroed metrics whose violation counters hold at most `capacity` keys each.
    ///
    /// ```
    /// use seawall::metrics::rule::RuleMetrics;
    ///
    /// let m = RuleMetrics::with_capacity(2);
    /// for user in ["a", "b", "c", "d"] {
    ///     m.record(false, 0.0, user, None, None);
    /// }
    /// let s = m.snapshot();
    /// assert_eq!(s.violations_by_user.entries.len(), 2);
    /// assert_eq!(s.violations_by_user.total, 4);
    /// assert!(s.violations_by_ip.entries.is_empty());
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        RuleMetrics {
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            remaining_sum: AtomicU64::new(0f64.to_bits()),
            by_user: SharedTopK::new(capacity),
            by_ip: SharedTopK::new(capacity),
            by_endpoint: SharedTopK::new(capacity),
        }
    }

    /// Records one decision. `remaining` is what the limiter left (tokens or requests; a value
    /// that is negative, NaN or infinite counts as 0). A denial counts one violation for
    /// `identifier`, and for `ip` and `endpoint` when given; an allowed request counts none.
    ///
    /// ```
    /// use seawall::metrics::rule::RuleMetrics;
    ///
    /// let m = RuleMetrics::new();
    /// m.record(true, 3.0, "user:1", Some("10.0.0.1"), None);
    /// assert!(m.snapshot().violations_by_user.entries.is_empty());
    /// m.record(false, 0.0, "user:1", Some("10.0.0.1"), None);
    /// assert_eq!(m.snapshot().violations_by_ip.entries[0].key, "10.0.0.1");
    /// ```
    pub fn record(
        &self,
        allowed: bool,
        remaining: f64,
        identifier: &str,
        ip: Option<&str>,
        endpoint: Option<&str>,
    ) {
        if remaining.is_finite() && remaining > 0.0 {
            // A compare-and-swap loop: there is no atomic f64 add. Skipped for 0 (most denials).
            let _ = self.remaining_sum.fetch_update(Relaxed, Relaxed, |bits| {
                Some((f64::from_bits(bits) + remaining).to_bits())
            });
        }
        if allowed {
            self.allowed.fetch_add(1, Relaxed);
            return;
        }
        self.denied.fetch_add(1, Relaxed);
        self.by_user.record(identifier, 1);
        if let Some(ip) = ip {
            self.by_ip.record(ip, 1);
        }
        if let Some(endpoint) = endpoint {
            self.by_endpoint.record(endpoint, 1);
        }
    }

    /// [`RuleMetrics::record`] with the client address as it was read: written out only for a
    /// denial (an allowed request formats nothing).
    #[inline]
    pub fn record_addr(
        &self,
        allowed: bool,
        remaining: f64,
        identifier: &str,
        ip: Option<std::net::IpAddr>,
        endpoint: Option<&str>,
    ) {
        if allowed {
            self.record(true, remaining, identifier, None, None);
        } else {
            let ip = ip.map(|ip| ip.to_string());
            self.record(false, remaining, identifier, ip.as_deref(), endpoint);
        }
    }

    /// Reads and zeroes the counts and violations in one go (each counter swapped, each top-K
    /// taken under its lock): what a shared engine adds to the store's totals. A decision
    /// recorded meanwhile is in this delta or in the next, never in both or neither.
    ///
    /// ```
    /// use seawall::metrics::rule::RuleMetrics;
    ///
    /// let m = RuleMetrics::new();
    /// m.record(false, 2.0, "u", None, Some("/x"));
    /// let delta = m.take();
    /// assert_eq!((delta.denied_requests, delta.violations_by_endpoint.total), (1, 1));
    /// assert_eq!(m.take().total_requests, 0);
    /// ```
    pub fn take(&self) -> RuleMetricsSnapshot {
        let allowed = self.allowed.swap(0, Relaxed);
        let denied = self.denied.swap(0, Relaxed);
        let sum = f64::from_bits(self.remaining_sum.swap(0f64.to_bits(), Relaxed));
        let total = allowed + denied;
        RuleMetricsSnapshot {
            total_requests: total,
            allowed_requests: allowed,
            denied_requests: denied,
            hit_rate: ratio(denied, total),
            avg_tokens_remaining: if total == 0 { 0.0 } else { sum / total as f64 },
            violations_by_user: self.by_user.take(),
            violations_by_ip: self.by_ip.take(),
            violations_by_endpoint: self.by_endpoint.take(),
        }
    }

    /// Decisions recorded since the last reset (`allowed() + denied()`).
    pub fn total(&self) -> u64 {
        let (allowed, denied) = self.read_counts();
        allowed + denied
    }

    /// Decisions that allowed the request.
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Relaxed)
    }

    /// Decisions that denied the request.
    pub fn denied(&self) -> u64 {
        self.denied.load(Relaxed)
    }

    /// `denied / total`, in [0, 1]; 0.0 when nothing was recorded (A13).
    ///
    /// ```
    /// use seawall::metrics::rule::RuleMetrics;
    ///
    /// let m = RuleMetrics::new();
    /// assert_eq!(m.hit_rate(), 0.0);
    /// m.record(false, 0.0, "u", None, None);
    /// assert_eq!(m.hit_rate(), 1.0);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        let (allowed, denied) = self.read_counts();
        ratio(denied, allowed + denied)
    }

    /// Zeroes the counts and the violations (the rule's budgets are not here, so they stay as
    /// they are, A13). A decision recorded while the reset runs may be kept in part.
    ///
    /// ```
    /// use seawall::metrics::rule::RuleMetrics;
    ///
    /// let m = RuleMetrics::new();
    /// m.record(false, 1.0, "u", Some("10.0.0.1"), Some("/x"));
    /// m.reset();
    /// let s = m.snapshot();
    /// assert_eq!((s.total_requests, s.avg_tokens_remaining), (0, 0.0));
    /// assert!(s.violations_by_user.entries.is_empty());
    /// assert_eq!(s.violations_by_user.other, 0);
    /// ```
    pub fn reset(&self) {
        self.allowed.store(0, Relaxed);
        self.denied.store(0, Relaxed);
        self.remaining_sum.store(0f64.to_bits(), Relaxed);
        self.by_user.reset();
        self.by_ip.reset();
        self.by_endpoint.reset();
    }

    /// Reads every counter (see [`RuleMetricsSnapshot`] for what is consistent with what).
    pub fn snapshot(&self) -> RuleMetricsSnapshot {
        let (allowed, denied) = self.read_counts();
        let total = allowed + denied;
        let sum = f64::from_bits(self.remaining_sum.load(Relaxed));
        RuleMetricsSnapshot {
            total_requests: total,
            allowed_requests: allowed,
            denied_requests: denied,
            hit_rate: ratio(denied, total),
            avg_tokens_remaining: if total == 0 { 0.0 } else { sum / total as f64 },
            violations_by_user: self.by_user.summary(),
            violations_by_ip: self.by_ip.summary(),
            violations_by_endpoint: self.by_endpoint.summary(),
        }
    }

    /// The violations by identifier, read under its lock.
    pub fn violations_by_user(&self) -> TopKSnapshot<String> {
        self.by_user.summary()
    }

    /// The violations by client IP, read under its lock.
    pub fn violations_by_ip(&self) -> TopKSnapshot<String> {
        self.by_ip.summary()
    }

    /// The violations by endpoint, read under its lock.
    pub fn violations_by_endpoint(&self) -> TopKSnapshot<String> {
        self.by_endpoint.summary()
    }

    /// The bytes the three violation counters have allocated
    /// ([`TopK::heap_bytes`](super::top_k::TopK::heap_bytes)).
    pub fn heap_bytes(&self) -> usize {
        self.by_user.heap_bytes() + self.by_ip.heap_bytes() + self.by_endpoint.heap_bytes()
    }

    fn read_counts(&self) -> (u64, u64) {
        (self.allowed.load(Relaxed), self.denied.load(Relaxed))
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
