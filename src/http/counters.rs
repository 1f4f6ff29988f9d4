//! The middleware's decisions counted per route budget: allowed and denied, and on a Redis
//! store whether Redis answered, the failure policy did (`fallback`), or the call failed with a
//! configuration error (`error`, raised to the caller). Relaxed atomics, one or two adds per
//! request; read with [`HttpPolicy::route_stats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use super::{HttpPolicy, Outcome, Plan};

/// One route budget's counters.
#[derive(Debug, Default)]
pub struct RouteCounters {
    allowed: AtomicU64,
    denied: AtomicU64,
    store_ok: AtomicU64,
    store_fallback: AtomicU64,
    store_error: AtomicU64,
}

/// What a store call became, for [`RouteCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOutcome {
    /// Redis answered.
    Ok,
    /// `on_error` decided (Redis failed, or its breaker was open).
    Fallback,
    /// A configuration error, raised to the caller.
    Error,
}

impl RouteCounters {
    /// Counts a decision.
    #[inline]
    pub(crate) fn decided(&self, allowed: bool) {
        if allowed {
            self.allowed.fetch_add(1, Relaxed);
        } else {
            self.denied.fetch_add(1, Relaxed);
        }
    }

    /// Counts a decision by its outcome (`Pass` and `Allowed` admit).
    #[inline]
    pub(crate) fn decided_as(&self, outcome: &Outcome) {
        self.decided(matches!(outcome, Outcome::Pass | Outcome::Allowed(_)));
    }

    /// Counts what a store call became.
    #[inline]
    pub(crate) fn store(&self, outcome: StoreOutcome) {
        match outcome {
            StoreOutcome::Ok => &self.store_ok,
            StoreOutcome::Fallback => &self.store_fallback,
            StoreOutcome::Error => &self.store_error,
        }
        .fetch_add(1, Relaxed);
    }
}

/// One route budget's counts, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    /// The rule's path pattern as written, `default` for the default limits, or `global` for
    /// the requests only the global limits applied to.
    pub route: String,
    /// Requests admitted.
    pub allowed: u64,
    /// Requests refused (429, or 503 from `on_error="deny"`).
    pub denied: u64,
    /// On a Redis store: decisions Redis made.
    pub store_ok: u64,
    /// On a Redis store: decisions `on_error` made.
    pub store_fallback: u64,
    /// On a Redis store: calls that failed with a configuration error.
    pub store_error: u64,
}

impl HttpPolicy {
    /// The counters of the budget `plan` spends (its route's; the global-only slot if none).
    #[inline]
    pub(crate) fn counters(&self, plan: &Plan) -> &RouteCounters {
        let c = &self.routes.counters;
        &c[plan.route.unwrap_or(c.len() - 1)]
    }

    /// Each route budget's counts: the rules in order, then `default` (if there are default
    /// limits), then `global` (if there are global limits).
    ///
    /// ```
    /// use seawall::http::{HttpPolicy, RequestView, Routes, Rule};
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    ///
    /// let set = |t| LimitSet::parse(t, AlgorithmKind::Gcra).unwrap();
    /// let rules = vec![Rule::new("/login", set("1/minute"), None, None).unwrap()];
    /// let policy = HttpPolicy::new(Routes::new(rules, Some(set("5/minute")), 100));
    /// let req = |path| RequestView { peer: Some("192.0.2.1"), headers: &[], path, method: "POST", query: b"" };
    /// for _ in 0..2 {
    ///     policy.decide(&req("/login"), 0, None, None).unwrap();
    /// }
    /// policy.decide(&req("/"), 0, None, None).unwrap();
    /// let s = policy.route_stats();
    /// assert_eq!((s[0].route.as_str(), s[0].allowed, s[0].denied), ("/login", 1, 1));
    /// assert_eq!((s[1].route.as_str(), s[1].allowed, s[1].denied), ("default", 1, 0));
    /// assert_eq!(s.len(), 2);
    /// ```
    pub fn route_stats(&self) -> Vec<RouteStats> {
        let routes = &self.routes;
        let names = routes
            .rules
            .iter()
            .map(|r| r.source.as_str())
            .chain(routes.default.map(|_| "default"))
            .chain(self.global.is_some().then_some("global"));
        let slots =
            (0..routes.budgets()).chain(self.global.is_some().then_some(routes.counters.len() - 1));
        names
            .zip(slots)
            .map(|(name, i)| {
                let c = &routes.counters[i];
                RouteStats {
                    route: name.to_string(),
                    allowed: c.allowed.load(Relaxed),
                    denied: c.denied.load(Relaxed),
                    store_ok: c.store_ok.load(Relaxed),
                    store_fallback: c.store_fallback.load(Relaxed),
                    store_error: c.store_error.load(Relaxed),
                }
            })
            .collect()
    }
}
