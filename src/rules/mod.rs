//! Named rate-limit rules, chosen per request: seed 002's rules engine, native.
//!
//! A [`RuleSpec`] is what a user writes (a dict in Python, or a table read from a file): a name,
//! a scope, `rate` per `window_seconds`, a burst, an algorithm, a strategy, filters and a
//! priority. It is checked once ([`RuleSpec::compile`], every error naming its field) into a
//! [`Rule`]. A [`Rules`] set keeps rules in the order they were added and decides:
//!
//! * **which rule** a request falls under ([`Rules::select`]): among the enabled rules that have
//!   at least one filter and whose every given filter matches, the highest `priority` (ties: the
//!   first added); else the default rule. Filterless rules apply only when named. So a rule for
//!   `user_ids=["premium"]` can raise a premium user's limit above the general one, which "every
//!   matching rule applies" never could (SEEDS-002-003.md, A3).
//! * **the budget key** ([`Rules::key`]): rule name, scope and identifier, length-prefixed, so that
//!   no two rules or scopes share a budget (a PER_USER id `10.0.0.1` is not the PER_IP budget of
//!   that address; seed 002's defect 6).
//! * **the decision** ([`Rules::check`]): the rule's limits on its own budgets, in memory; an
//!   admin override ([`overrides`]) lets a user or address through without spending budget, or
//!   holds it to its limits times a multiplier (budgets of their own while it lasts).

pub mod overrides;

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::algorithm::Decision;
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;
use crate::http::client_ip::Proxies;
use crate::limiter::limit::{AlgorithmKind, Limit, LimitSet};
use crate::limiter::memory_limiter::Limiter;
use crate::limiter::spec::LimitSpec;
use crate::metrics::rule::{RuleMetrics, RuleMetricsSnapshot};
use overrides::{AuditEntry, Overrides};

/// Whose budget a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One budget for the rule.
    Global,
    /// One budget per identifier (a user).
    PerUser,
    /// One budget per client IP.
    PerIp,
    /// One budget per endpoint, shared by every client.
    PerEndpoint,
}

/// The algorithms a rule names (seed 002's spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAlgorithm {
    /// A bucket of `burst` tokens refilled `rate` per window.
    TokenBucket,
    /// A meter of depth one: requests spaced `window / rate` apart, no bursts.
    LeakyBucket,
    /// `rate` per epoch-aligned window (up to twice that across a boundary).
    FixedWindow,
    /// `rate` per sliding window, estimated from two counters.
    SlidingWindow,
}

/// What a refused request gets (the limiter's verdict is kept apart from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// 429, no `Retry-After`.
    Hard,
    /// 429 with `Retry-After`.
    RetryAfter,
    /// 202, queued (bounded), then 429.
    Queue,
    /// The app is called, marked degraded; counted as a denial.
    Graceful,
    /// The next slot is reserved and the request waits for it (bounded by `max_delay`).
    Throttle,
}

fn enabled_default() -> bool {
    true
}

/// A bool that must be one: some sources (Python through pythonize) would read any object as
/// its truth value, so that `"no"` turned into `true`.
pub(crate) fn strict_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Strict;
    impl serde::de::Visitor<'_> for Strict {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
    }
    d.deserialize_any(Strict)
}

/// A rule as written: every field of seed 002's `RateLimitRule`, plus `max_delay` (THROTTLE's
/// bound). Unknown fields are an error naming them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's name, unique in a set.
    pub name: String,
    /// Whose budget it counts.
    pub scope: Scope,
    /// Requests per window, at least 1.
    pub rate: u64,
    /// The window in seconds, more than 0.
    pub window_seconds: f64,
    /// The bucket size (token bucket; between 1 and twice `rate`); default `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// The algorithm; `None`: the set's default.
    #[serde(default)]
    pub algorithm: Option<RuleAlgorithm>,
    /// The strategy; `None`: the set's default.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Paths it applies to (exact, or a glob with `*`).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Identifiers it applies to (with or without a `user:` prefix).
    #[serde(default)]
    pub user_ids: Vec<String>,
    /// Client addresses it applies to (IPs or CIDRs).
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Among matching rules, the highest wins.
    #[serde(default)]
    pub priority: i64,
    /// A disabled rule admits everything when named and is never selected.
    #[serde(default = "enabled_default", deserialize_with = "strict_bool")]
    pub enabled: bool,
    /// THROTTLE's longest wait, seconds; default `min(window_seconds, 30)`.
    #[serde(default)]
    pub max_delay: Option<f64>,
}

/// A checked rule: its spec, limits and compiled filters.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    limits: LimitSet,
    algorithm: RuleAlgorithm,
    strategy: Strategy,
    endpoints: Vec<WildMatch>,
    ips: Proxies,
}

impl RuleSpec {
    /// Checks the rule (SEEDS-002-003.md A19) and builds its limits; `algorithm` and `strategy`
    /// fill what the rule leaves to the set's defaults.
    ///
    /// ```
    /// use seawall::rules::{RuleSpec, RuleAlgorithm, Scope, Strategy};
    ///
    /// let spec: RuleSpec = serde_json::from_str(
    ///     r#"{"name": "api", "scope": "per_user", "rate": 10, "window_seconds": 60, "burst": 30}"#,
    /// ).unwrap();
    /// let e = spec.compile(RuleAlgorithm::TokenBucket, Strategy::RetryAfter).unwrap_err();
    /// assert!(e.to_string().starts_with("burst must be between 1 and 20"));
    /// ```
    pub fn compile(&self, algorithm: RuleAlgorithm, strategy: Strategy) -> Result<Rule, Error> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if self.rate == 0 {
            return Err(Error::invalid("rate", "must be at least 1, got 0"));
        }
        if !(self.window_seconds.is_finite() && self.window_seconds > 0.0) {
            return Err(Error::invalid(
                "window_seconds",
                format!(
                    "must be a number of seconds above 0, got {}",
                    self.window_seconds
                ),
            ));
        }
        if let Some(b) = self.burst {
            if b == 0 || b > self.rate.saturating_mul(2) {
                return Err(Error::invalid(
                    "burst",
                    format!(
                        "must be between 1 and {} (twice rate), got {b}",
                        self.rate * 2
                    ),
                ));
            }
        }
        if let Some(d) = self.max_delay {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::invalid(
                    "max_delay",
                    format!("must be a number of seconds, 0 or more, got {d}"),
                ));
            }
        }
        let period = (self.window_seconds * NANOS_PER_SEC as f64).round();
        if period > u64::MAX as f64 / 4.0 {
            return Err(Error::invalid("window_seconds", "is too long"));
        }
        let spec = LimitSpec {
            count: self.rate,
            period: period as Nanos,
        };
        let algorithm = self.algorithm.unwrap_or(algorithm);
        let limit = match algorithm {
            RuleAlgorithm::TokenBucket => Limit::new(
                spec,
                AlgorithmKind::TokenBucket,
                Some(self.burst.unwrap_or(self.rate)),
            ),
            // A meter of depth one: no bursts (A1); `burst` is checked, not used.
            RuleAlgorithm::LeakyBucket => Limit::new(spec, AlgorithmKind::LeakyBucket, Some(1)),
            RuleAlgorithm::FixedWindow => Limit::new(spec, AlgorithmKind::FixedWindow, None),
            RuleAlgorithm::SlidingWindow => Limit::new(spec, AlgorithmKind::SlidingCounter, None),
        }?;
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| {
                if e.is_empty() {
                    Err(Error::invalid("endpoints", "must not hold an empty path"))
                } else {
                    Ok(WildMatch::new(e))
                }
            })
            .collect::<Result<_, _>>()?;
        let ips = Proxies::parse(&self.ip_addresses).map_err(|bad| {
            Error::invalid(
                "ip_addresses",
                format!("must hold IP addresses or CIDR networks, got '{bad}'"),
            )
        })?;
        Ok(Rule {
            limits: LimitSet::new(vec![limit])?,
            algorithm,
            strategy: self.strategy.unwrap_or(strategy),
            endpoints,
            ips,
            spec: self.clone(),
        })
    }
}

impl Rule {
    /// What it was made from.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// Its limits.
    pub fn limits(&self) -> &LimitSet {
        &self.limits
    }

    /// Its algorithm (the set's default filled in).
    pub fn algorithm(&self) -> RuleAlgorithm {
        self.algorithm
    }

    /// Its strategy (the set's default filled in).
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// THROTTLE's longest wait.
    pub fn max_delay(&self) -> Nanos {
        let secs = self
            .spec
            .max_delay
            .unwrap_or_else(|| self.spec.window_seconds.min(30.0));
        (secs * NANOS_PER_SEC as f64) as Nanos
    }

    fn has_filter(&self) -> bool {
        !(self.spec.endpoints.is_empty()
            && self.spec.user_ids.is_empty()
            && self.spec.ip_addresses.is_empty())
    }

    /// Whether every filter the rule has matches the request.
    fn matches(&self, req: &RequestFacts<'_>) -> bool {
        let endpoint = self.endpoints.is_empty()
            || req
                .endpoint
                .is_some_and(|path| self.endpoints.iter().any(|e| e.matches(path)));
        let user = self.spec.user_ids.is_empty()
            || req.user.is_some_and(|u| {
                let bare = u.strip_prefix("user:").unwrap_or(u);
                self.spec.user_ids.iter().any(|id| id == u || id == bare)
            });
        let ip =
            self.spec.ip_addresses.is_empty() || req.ip.is_some_and(|ip| self.ips.contains(ip));
        endpoint && user && ip
    }
}

/// What selection and keys read of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The identifier (a user, or `ip:<client>`).
    pub user: Option<&'a str>,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The endpoint (the path).
    pub endpoint: Option<&'a str>,
}

/// A rule's decision, and what its strategy makes of a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecision {
    /// The limiter's verdict (never changed by a strategy).
    pub decision: Decision,
    /// The rule that decided.
    pub rule: String,
    /// Its strategy.
    pub strategy: Strategy,
    /// The override that applied, if any.
    pub override_id: Option<u64>,
    /// Audit entries written while deciding (overrides that expired), for the caller's log.
    pub audit: Vec<AuditEntry>,
    /// THROTTLE: the request was refused now, and the next free slot, this long from now, is
    /// booked for it (at most the rule's `max_delay`): the caller waits that long, once, and
    /// serves it. 0 otherwise.
    pub delay: Nanos,
    /// GRACEFUL: the request was refused, and is to be served marked as degraded.
    pub degraded: bool,
}

/// A rule and the budgets it keeps (replaced with the rule only when its limits change).
struct Entry {
    rule: std::sync::Arc<Rule>,
    budgets: std::sync::Arc<Limiter>,
    /// Budgets under multiplied limits (an override's), by the multiplier's bits.
    scaled: std::sync::Arc<parking_lot::Mutex<HashMap<u64, std::sync::Arc<Limiter>>>>,
    /// Its decisions and violations (kept when the rule is replaced).
    metrics: std::sync::Arc<RuleMetrics>,
    /// Insertion order, for ties of priority.
    order: u64,
}

/// The rules by name, the next insertion number, and the rules selection tries, in order.
type Registry = (HashMap<String, Entry>, u64, Vec<std::sync::Arc<Rule>>);

/// Rules by name, with their budgets in memory, and the admin overrides.
pub struct Rules {
    /// The rules by name, the next insertion number, and the rules selection considers (enabled,
    /// with a filter) in the order it tries them: priority, highest first, then insertion.
    entries: RwLock<Registry>,
    algorithm: RuleAlgorithm,
    strategy: Strategy,
    max_keys: usize,
    /// Admin overrides and their audit log.
    pub overrides: Overrides,
}

impl Rules {
    /// An empty set whose rules default to `algorithm` and `strategy`, each rule holding at most
    /// `max_keys` budgets.
    ///
    /// ```
    /// use seawall::rules::{RequestFacts, RuleAlgorithm, Rules, RuleSpec, Strategy};
    ///
    /// let rules = Rules::new(RuleAlgorithm::TokenBucket, Strategy::RetryAfter, 1000);
    /// let spec = |json| serde_json::from_str::<RuleSpec>(json).unwrap();
    /// rules.add(spec(r#"{"name": "all", "scope": "per_user", "rate": 100, "window_seconds": 60}"#)).unwrap();
    /// rules.add(spec(r#"{"name": "vip", "scope": "per_user", "rate": 1000, "window_seconds": 60,
    ///                    "user_ids": ["alice"], "priority": 10}"#)).unwrap();
    /// let alice = RequestFacts { user: Some("user:alice"), ..Default::default() };
    /// assert_eq!(rules.select(&alice, Some("all")).unwrap().as_deref(), Some("vip"));
    /// let bob = RequestFacts { user: Some("bob"), ..Default::default() };
    /// assert_eq!(rules.select(&bob, Some("all")).unwrap().as_deref(), Some("all"));
    /// ```
    pub fn new(algorithm: RuleAlgorithm, strategy: Strategy, max_keys: usize) -> Self {
        Rules {
            entries: RwLock::new((HashMap::new(), 0, Vec::new())),
            algorithm,
            strategy,
            max_keys: max_keys.max(1),
            overrides: Overrides::new(overrides::DEFAULT_MAX_DURATION),
        }
    }

    /// Adds `spec`, or replaces the rule of that name: its budgets are kept if its limits are
    /// the same, else they start afresh (A28). Errors name the field.
    pub fn add(&self, spec: RuleSpec) -> Result<(), Error> {
        let rule = std::sync::Arc::new(spec.compile(self.algorithm, self.strategy)?);
        let mut guard = self.entries.write();
        let (entries, next, _) = &mut *guard;
        let (budgets, order) = match entries.get(&spec.name) {
            Some(old) if old.rule.limits == rule.limits => (old.budgets.clone(), old.order),
            Some(old) => (
                std::sync::Arc::new(Limiter::new(rule.limits.clone(), self.max_keys)),
                old.order,
            ),
            None => {
                *next += 1;
                (
                    std::sync::Arc::new(Limiter::new(rule.limits.clone(), self.max_keys)),
                    *next,
                )
            }
        };
        let scaled = match entries.get(&spec.name) {
            Some(old) if old.rule.limits == rule.limits => old.scaled.clone(),
            _ => Default::default(),
        };
        let metrics = entries
            .get(&spec.name)
            .map(|old| old.metrics.clone())
            .unwrap_or_default();
        entries.insert(
            spec.name.clone(),
            Entry {
                rule,
                budgets,
                scaled,
                metrics,
                order,
            },
        );
        Self::order_candidates(&mut guard);
        Ok(())
    }

    /// Recomputes the rules selection tries, in its order.
    fn order_candidates(state: &mut Registry) {
        let mut candidates: Vec<(&Entry, i64, u64)> = state
            .0
            .values()
            .filter(|e| e.rule.spec.enabled && e.rule.has_filter())
            .map(|e| (e, e.rule.spec.priority, e.order))
            .collect();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        state.2 = candidates
            .into_iter()
            .map(|(e, _, _)| e.rule.clone())
            .collect();
    }

    /// Removes the rule `name` and its budgets; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut guard = self.entries.write();
        let removed = guard.0.remove(name).is_some();
        Self::order_candidates(&mut guard);
        removed
    }

    /// Every rule, in the order added.
    pub fn list(&self) -> Vec<Rule> {
        let guard = self.entries.read();
        let mut all: Vec<&Entry> = guard.0.values().collect();
        all.sort_by_key(|e| e.order);
        all.into_iter().map(|e| (*e.rule).clone()).collect()
    }

    /// The rule `name`.
    pub fn get(&self, name: &str) -> Option<Rule> {
        self.entries.read().0.get(name).map(|e| (*e.rule).clone())
    }

    /// The rule a request falls under: the highest-priority enabled rule with filters that all
    /// match (ties: the first added), else `default` (which must exist, if given).
    pub fn select(
        &self,
        req: &RequestFacts<'_>,
        default: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let guard = self.entries.read();
        // The candidates are in selection order: the first that matches wins.
        if let Some(rule) = guard.2.iter().find(|r| r.matches(req)) {
            return Ok(Some(rule.spec.name.clone()));
        }
        match default {
            Some(d) if guard.0.contains_key(d) => Ok(Some(d.to_owned())),
            Some(d) => Err(unknown(d)),
            None => Ok(None),
        }
    }

    /// The budget key of `req` under a rule of `scope` named `rule`: the rule, the scope and
    /// the identifier, each length-prefixed so no two of them can run together.
    ///
    /// ```
    /// use seawall::rules::{RequestFacts, Rules, Scope};
    ///
    /// let user = RequestFacts { user: Some("10.0.0.1"), ..Default::default() };
    /// let ip = RequestFacts { ip: Some("10.0.0.1".parse().unwrap()), ..Default::default() };
    /// assert_ne!(Rules::key("r", Scope::PerUser, &user), Rules::key("r", Scope::PerIp, &ip));
    /// assert_ne!(Rules::key("a", Scope::Global, &user), Rules::key("b", Scope::Global, &user));
    /// let huge = "x".repeat(1 << 20);
    /// let long = RequestFacts { user: Some(&huge), ..Default::default() };
    /// assert!(Rules::key("r", Scope::PerUser, &long).len() < 100);
    /// ```
    pub fn key(rule: &str, scope: Scope, req: &RequestFacts<'_>) -> String {
        let id = match scope {
            Scope::Global => String::new(),
            Scope::PerUser => req.user.unwrap_or("").to_owned(),
            Scope::PerIp => req
                .ip
                .map(|ip| ip.to_string())
                .or_else(|| req.user.map(str::to_owned))
                .unwrap_or_default(),
            Scope::PerEndpoint => req.endpoint.or(req.user).unwrap_or("").to_owned(),
        };
        let scope = match scope {
            Scope::Global => "g",
            Scope::PerUser => "u",
            Scope::PerIp => "i",
            Scope::PerEndpoint => "e",
        };
        // An identifier is the caller's (a client's, through it): one longer than
        // MAX_IDENTIFIER is kept as its SHA-256, marked apart (`#`) so that no identifier
        // written out can stand for a hashed one.
        if id.len() > MAX_IDENTIFIER {
            use sha2::{Digest, Sha256};
            let hex: String = Sha256::digest(id.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            return format!("{}:{rule}|{scope}#|{hex}", rule.len());
        }
        format!("{}:{rule}|{scope}|{id}", rule.len())
    }

    /// Decides one request under the rule `name` (its filters are not consulted: a named rule
    /// applies, A4) at `now`; counted if admitted. A disabled rule admits (A18). An unknown name
    /// is an error naming it.
    pub fn check(
        &self,
        name: &str,
        req: &RequestFacts<'_>,
        now: Nanos,
        cost: u64,
    ) -> Result<RuleDecision, Error> {
        let (budgets, scaled, rule, metrics) = {
            let guard = self.entries.read();
            let e = guard.0.get(name).ok_or_else(|| unknown(name))?;
            (
                e.budgets.clone(),
                e.scaled.clone(),
                e.rule.clone(),
                e.metrics.clone(),
            )
        };
        let ip = req.ip.map(|ip| ip.to_string());
        let count = |d: &Decision| {
            metrics.record(
                d.allowed,
                d.remaining as f64,
                req.user.unwrap_or(""),
                ip.as_deref(),
                req.endpoint,
            )
        };
        let spec = &rule.spec;
        let admit = |override_id, audit| RuleDecision {
            decision: Decision {
                allowed: true,
                limit: spec.rate,
                remaining: spec.rate,
                reset_after: 0,
                retry_after: 0,
            },
            rule: name.to_owned(),
            strategy: rule.strategy,
            override_id,
            audit,
            delay: 0,
            degraded: false,
        };
        if !spec.enabled {
            let d = admit(None, Vec::new());
            count(&d.decision);
            return Ok(d);
        }
        let (found, audit) = if self.overrides.any() {
            self.overrides.check(req.user, req.ip, now)
        } else {
            (None, Vec::new())
        };
        let key = Self::key(name, spec.scope, req);
        let (limiter, override_id) = match found {
            // Let through without spending any budget.
            Some(o) if o.spec.unlimited => {
                let d = admit(Some(o.override_id), audit);
                count(&d.decision);
                return Ok(d);
            }
            Some(o) => {
                let limiter = scaled
                    .lock()
                    .entry(o.spec.multiplier.to_bits())
                    .or_insert_with(|| {
                        let mut bigger = spec.clone();
                        bigger.rate = ((spec.rate as f64) * o.spec.multiplier).floor() as u64;
                        bigger.burst = spec
                            .burst
                            .map(|b| ((b as f64) * o.spec.multiplier).floor() as u64);
                        let limits = bigger
                            .compile(self.algorithm, self.strategy)
                            .map(|r| r.limits)
                            .unwrap_or_else(|_| rule.limits.clone());
                        std::sync::Arc::new(Limiter::new(limits, self.max_keys))
                    })
                    .clone();
                (limiter, Some(o.override_id))
            }
            None => (budgets, None),
        };
        let d = limiter.hit(&key, now, cost)?;
        // The limiter's verdict, before anything a strategy makes of it (defect 1).
        count(&d.decision);
        let refused = !d.decision.allowed;
        let mut delay = 0;
        if refused && rule.strategy == Strategy::Throttle {
            // Book the next free slot once: decide as at the moment it frees, counting it there
            // (the budget then holds it, and later requests queue behind it). Past `max_delay`,
            // or a slot that never frees, the request is refused instead: never a
            // sleep-and-retry loop, never an unbounded wait.
            let wait = d.decision.retry_after;
            if wait != Nanos::MAX && wait <= rule.max_delay() {
                let booked = limiter.hit(&key, now.saturating_add(wait), cost)?;
                if booked.decision.allowed {
                    delay = wait.max(1);
                }
            }
        }
        Ok(RuleDecision {
            decision: d.decision,
            rule: name.to_owned(),
            strategy: rule.strategy,
            override_id,
            audit,
            delay,
            degraded: refused && rule.strategy == Strategy::Graceful,
        })
    }

    /// Rule `name`'s metrics: decisions, hit rate, mean remaining and the bounded top violators
    /// by user, address and endpoint.
    pub fn metrics(&self, name: &str) -> Result<RuleMetricsSnapshot, Error> {
        let guard = self.entries.read();
        let e = guard.0.get(name).ok_or_else(|| unknown(name))?;
        Ok(e.metrics.snapshot())
    }

    /// Every rule's metrics, in the order the rules were added.
    pub fn all_metrics(&self) -> Vec<(String, RuleMetricsSnapshot)> {
        let guard = self.entries.read();
        let mut all: Vec<&Entry> = guard.0.values().collect();
        all.sort_by_key(|e| e.order);
        all.into_iter()
            .map(|e| (e.rule.spec.name.clone(), e.metrics.snapshot()))
            .collect()
    }

    /// Zeroes rule `name`'s metrics (every rule's with `None`); its budgets stay as they are.
    pub fn reset_metrics(&self, name: Option<&str>) -> Result<(), Error> {
        let guard = self.entries.read();
        match name {
            Some(n) => guard.0.get(n).ok_or_else(|| unknown(n))?.metrics.reset(),
            None => guard.0.values().for_each(|e| e.metrics.reset()),
        }
        Ok(())
    }

    /// Forgets the budget `req` has under rule `name`; whether it was held.
    pub fn reset(&self, name: &str, req: &RequestFacts<'_>, now: Nanos) -> Result<bool, Error> {
        let guard = self.entries.read();
        let e = guard.0.get(name).ok_or_else(|| unknown(name))?;
        Ok(e.budgets
            .reset(&Self::key(name, e.rule.spec.scope, req), now))
    }
}

/// Identifiers longer than this are kept as their SHA-256 (a budget key never grows with what a
/// client sends).
pub const MAX_IDENTIFIER: usize = 256;

/// The error for a rule name that is not in the set.
fn unknown(name: &str) -> Error {
    Error::invalid("rule_name", format!("names no rule: {name:?}"))
}
