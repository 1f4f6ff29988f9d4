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

pub mod budgets;
pub mod overrides;
pub mod shared;

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
use crate::limiter::spec::LimitSpec;
use crate::metrics::rule::{RuleMetrics, RuleMetricsSnapshot};
pub use budgets::{Budgets, RuleStore};
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

/// A list of strings that must be one: some sources (Python through pythonize) would read a
/// string as the list of its characters, so that `endpoints="/api"` became `["/", "a", "p", "i"]`.
pub(crate) fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Strings;
    impl<'de> serde::de::Visitor<'de> for Strings {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Strings)
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
    #[serde(default, deserialize_with = "string_list")]
    pub endpoints: Vec<String>,
    /// Identifiers it applies to (with or without a `user:` prefix).
    #[serde(default, deserialize_with = "string_list")]
    pub user_ids: Vec<String>,
    /// Client addresses it applies to (IPs or CIDRs).
    #[serde(default, deserialize_with = "string_list")]
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
    /// QUEUE's bound: refused requests that may be queued per window, per budget; default
    /// `rate`. Past it, a refusal is a 429.
    #[serde(default)]
    pub max_queued: Option<u64>,
}

/// A checked rule: its spec, limits and compiled filters.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    /// The name, shared by every decision that reports it (no copy per decision).
    name: std::sync::Arc<str>,
    limits: LimitSet,
    /// QUEUE's places: `max_queued` per window.
    queue_limits: LimitSet,
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
        if self.max_queued == Some(0) {
            return Err(Error::invalid(
                "max_queued",
                "must be at least 1 (a QUEUE rule that queues nothing is a HARD one)",
            ));
        }
        let queued = self.max_queued.unwrap_or(self.rate);
        let queue_limit = Limit::new(
            LimitSpec {
                count: queued,
                period: spec.period,
            },
            AlgorithmKind::TokenBucket,
            Some(queued),
        )?;
        Ok(Rule {
            name: std::sync::Arc::from(self.name.as_str()),
            queue_limits: LimitSet::new(vec![queue_limit])?,
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

    /// The facts a budget key is made of: a PER_ENDPOINT rule with endpoint filters keys by
    /// the filter the path matches, not by the path, so that a client varying the path under
    /// a glob (`/api/search/1`, `/api/search/2`, ...) neither gets a fresh budget each time nor
    /// makes the rule hold a key per path.
    #[inline]
    fn keyed<'a>(&'a self, req: &RequestFacts<'a>) -> RequestFacts<'a> {
        if self.spec.scope != Scope::PerEndpoint || self.endpoints.is_empty() {
            return *req;
        }
        let pattern = req.endpoint.and_then(|path| {
            self.endpoints
                .iter()
                .position(|e| e.matches(path))
                .map(|i| self.spec.endpoints[i].as_str())
        });
        match pattern {
            Some(p) => RequestFacts {
                endpoint: Some(p),
                ..*req
            },
            None => *req,
        }
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
    /// The user an override's user target is matched against, when it is not the identifier
    /// (seed 002's `check_limit(..., user_id=)`, A22).
    pub user_id: Option<&'a str>,
}

/// A rule's decision, and what its strategy makes of a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecision {
    /// The limiter's verdict (never changed by a strategy).
    pub decision: Decision,
    /// The rule that decided.
    pub rule: std::sync::Arc<str>,
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
    /// QUEUE: the request was refused, and took one of the rule's queue places (202); false:
    /// the queue is full too (429).
    pub queued: bool,
    /// Whether Redis's failure policy (`on_error`) made the decision.
    pub fallback: bool,
}

/// What a refusal still needs from the budgets, by strategy: THROTTLE books the slot at `at`;
/// QUEUE asks for a queue place. Made at once in memory and the host store; on Redis, a second
/// script call on the refused path only.
#[derive(Clone)]
pub struct FollowUp {
    /// The budgets to ask.
    pub budgets: std::sync::Arc<Budgets>,
    /// The key (the decision's).
    pub key: String,
    /// When to decide.
    pub at: Nanos,
    /// The cost.
    pub cost: u64,
    /// What for.
    pub kind: FollowKind,
}

/// Why a [`FollowUp`] is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowKind {
    /// THROTTLE: booking the slot this long from now.
    Book(Nanos),
    /// QUEUE: a queue place.
    Queue,
}

impl FollowKind {
    /// Applies the follow-up's verdict to `d`.
    pub fn apply(self, d: &mut RuleDecision, allowed: bool) {
        match self {
            FollowKind::Book(wait) if allowed => d.delay = wait.max(1),
            FollowKind::Book(_) => {}
            FollowKind::Queue => d.queued = allowed,
        }
    }
}

/// A decision that needs the budgets: which, the key, and what the rule makes of the verdict.
/// Owned (no borrow of the set), so it can wait for Redis.
pub struct Hit {
    /// The budgets to hit.
    pub budgets: std::sync::Arc<Budgets>,
    /// The budget key.
    pub key: String,
    /// The cost.
    pub cost: u64,
    /// When it was asked.
    pub now: Nanos,
    rule: std::sync::Arc<Rule>,
    queue: std::sync::Arc<Budgets>,
    metrics: std::sync::Arc<RuleMetrics>,
    override_id: Option<u64>,
    audit: Vec<AuditEntry>,
}

/// The first step of a decision: made at once (a disabled rule, an unlimited override), or a
/// [`Hit`] to make on the budgets.
pub enum Step {
    /// Made.
    Decided(RuleDecision),
    /// To make.
    Hit(Hit),
}

/// A rule and the budgets it keeps (replaced with the rule only when its limits change).
struct Entry {
    rule: std::sync::Arc<Rule>,
    budgets: std::sync::Arc<Budgets>,
    /// QUEUE's places.
    queue: std::sync::Arc<Budgets>,
    /// Budgets under multiplied limits (an override's), by the multiplier's bits.
    scaled: std::sync::Arc<parking_lot::Mutex<HashMap<u64, std::sync::Arc<Budgets>>>>,
    /// Its decisions and violations (kept when the rule is replaced). On a shared store, what
    /// this process recorded since its last flush to the store.
    metrics: std::sync::Arc<RuleMetrics>,
    /// Insertion order, for ties of priority.
    order: u64,
}

/// The rules by name (foldhash: names are the operator's, and the lookup is on every decision),
/// the next insertion number, and the rules selection tries, in order.
type Registry = (
    HashMap<String, Entry, foldhash::fast::RandomState>,
    u64,
    Vec<std::sync::Arc<Rule>>,
);

/// Rules by name, with their budgets, and the admin overrides.
pub struct Rules {
    /// The rules by name, the next insertion number, and the rules selection considers (enabled,
    /// with a filter) in the order it tries them: priority, highest first, then insertion.
    entries: RwLock<Registry>,
    algorithm: RuleAlgorithm,
    strategy: Strategy,
    max_keys: usize,
    store: RuleStore,
    /// Admin overrides and their audit log.
    pub overrides: Overrides,
}

thread_local! {
    /// The key of the decision being made on this thread, built in place (no allocation per
    /// decision once it has grown to the longest key).
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Rules {
    /// An empty set in memory whose rules default to `algorithm` and `strategy`, each rule
    /// holding at most `max_keys` budgets.
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
        Self::with_store(algorithm, strategy, max_keys, RuleStore::Memory)
    }

    /// An empty set keeping its budgets in `store`.
    pub fn with_store(
        algorithm: RuleAlgorithm,
        strategy: Strategy,
        max_keys: usize,
        store: RuleStore,
    ) -> Self {
        Rules {
            entries: RwLock::new((HashMap::default(), 0, Vec::new())),
            algorithm,
            strategy,
            max_keys: max_keys.max(1),
            store,
            overrides: Overrides::new(overrides::DEFAULT_MAX_DURATION),
        }
    }

    /// The strategy of rules that name none.
    pub fn default_strategy(&self) -> Strategy {
        self.strategy
    }

    /// Where the budgets are.
    pub fn store(&self) -> &RuleStore {
        &self.store
    }

    /// Checks `spec` as [`Rules::add`] would, changing nothing.
    pub fn validate(&self, spec: &RuleSpec) -> Result<(), Error> {
        spec.compile(self.algorithm, self.strategy).map(|_| ())
    }

    /// Adds `spec`, or replaces the rule of that name: its budgets are kept if its limits are
    /// the same, else they start afresh (A28). Errors name the field.
    pub fn add(&self, spec: RuleSpec) -> Result<(), Error> {
        self.add_at(spec, 0)
    }

    /// [`Rules::add`] at `now` (a Redis store's breakers start their clocks then).
    pub fn add_at(&self, spec: RuleSpec, now: Nanos) -> Result<(), Error> {
        self.add_ordered(spec, None, now)
    }

    /// [`Rules::add_at`] with the rule's place among equal priorities given (a shared store's,
    /// so that every engine breaks ties alike); `None`: after every rule added so far.
    pub fn add_ordered(&self, spec: RuleSpec, place: Option<u64>, now: Nanos) -> Result<(), Error> {
        let rule = std::sync::Arc::new(spec.compile(self.algorithm, self.strategy)?);
        let open = |role: &str, limits: &LimitSet| {
            self.store
                .open(role, limits.clone(), self.max_keys, now)
                .map(std::sync::Arc::new)
        };
        let mut guard = self.entries.write();
        let (entries, next, _) = &mut *guard;
        let old = entries.get(&spec.name);
        let same = old.is_some_and(|o| o.rule.limits == rule.limits);
        let budgets = match old {
            Some(o) if same => o.budgets.clone(),
            _ => open("b", &rule.limits)?,
        };
        let queue = match old {
            Some(o) if o.rule.queue_limits == rule.queue_limits => o.queue.clone(),
            _ => open("q", &rule.queue_limits)?,
        };
        let scaled = match old {
            Some(o) if same => o.scaled.clone(),
            _ => Default::default(),
        };
        let metrics = old.map(|o| o.metrics.clone()).unwrap_or_default();
        let order = match (place, old) {
            (Some(p), _) => {
                *next = (*next).max(p);
                p
            }
            (None, Some(o)) => o.order,
            (None, None) => {
                *next += 1;
                *next
            }
        };
        entries.insert(
            spec.name.clone(),
            Entry {
                rule,
                budgets,
                queue,
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

    /// Rule `name`'s place among equal priorities.
    pub fn place(&self, name: &str) -> Option<u64> {
        self.entries.read().0.get(name).map(|e| e.order)
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
        Ok(Self::select_in(&guard, req, default)?.map(|e| e.rule.spec.name.clone()))
    }

    fn select_in<'g>(
        guard: &'g Registry,
        req: &RequestFacts<'_>,
        default: Option<&str>,
    ) -> Result<Option<&'g Entry>, Error> {
        // The candidates are in selection order: the first that matches wins.
        if let Some(rule) = guard.2.iter().find(|r| r.matches(req)) {
            return Ok(guard.0.get(&rule.spec.name));
        }
        match default {
            Some(d) => guard.0.get(d).map(Some).ok_or_else(|| unknown(d)),
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
        let mut out = String::new();
        Self::write_key(&mut out, rule, scope, req);
        out
    }

    /// [`Rules::key`] into `out` (cleared first).
    fn write_key(out: &mut String, rule: &str, scope: Scope, req: &RequestFacts<'_>) {
        use std::fmt::Write;
        out.clear();
        let (tag, id): (&str, Option<&str>) = match scope {
            Scope::Global => ("|g", Some("")),
            Scope::PerUser => ("|u", Some(req.user.unwrap_or(""))),
            Scope::PerIp if req.ip.is_some() => ("|i", None),
            Scope::PerIp => ("|i", Some(req.user.unwrap_or(""))),
            Scope::PerEndpoint => ("|e", Some(req.endpoint.or(req.user).unwrap_or(""))),
        };
        let mut digits = [0u8; 20];
        out.push_str(decimal(rule.len(), &mut digits));
        out.push(':');
        out.push_str(rule);
        out.push_str(tag);
        match (id, req.ip) {
            // An identifier is the caller's (a client's, through it): one longer than
            // MAX_IDENTIFIER is kept as its SHA-256, marked apart (`#`) so that no identifier
            // written out can stand for a hashed one.
            (Some(id), _) if id.len() > MAX_IDENTIFIER => {
                use sha2::{Digest, Sha256};
                out.push_str("#|");
                for b in Sha256::digest(id.as_bytes()) {
                    let _ = write!(out, "{b:02x}");
                }
            }
            (Some(id), _) => {
                out.push('|');
                out.push_str(id);
            }
            (None, Some(ip)) => {
                let _ = write!(out, "|{ip}");
            }
            (None, None) => out.push('|'),
        }
    }

    /// The first step of a decision under `e`'s rule: made at once, or the budgets to hit.
    fn plan_in(&self, e: &Entry, req: &RequestFacts<'_>, now: Nanos) -> Result<Planned, Error> {
        let rule = &e.rule;
        if !rule.spec.enabled {
            return Ok(Planned::Decided(admit(rule, None, Vec::new())));
        }
        let (found, audit) = if self.overrides.any() {
            self.overrides.check(req.user_id.or(req.user), req.ip, now)
        } else {
            (None, Vec::new())
        };
        Ok(match found {
            // Let through without spending any budget.
            Some(o) if o.spec.unlimited => {
                Planned::Decided(admit(rule, Some(o.override_id), audit))
            }
            Some(o) => {
                let scaled = e.scaled.lock().get(&o.spec.multiplier.to_bits()).cloned();
                let budgets = match scaled {
                    Some(b) => b,
                    None => {
                        let mut bigger = rule.spec.clone();
                        bigger.rate = ((rule.spec.rate as f64) * o.spec.multiplier).floor() as u64;
                        bigger.burst = rule
                            .spec
                            .burst
                            .map(|b| ((b as f64) * o.spec.multiplier).floor() as u64);
                        let limits = bigger
                            .compile(self.algorithm, self.strategy)
                            .map(|r| r.limits)
                            .unwrap_or_else(|_| rule.limits.clone());
                        let role = format!("m{:x}", o.spec.multiplier.to_bits());
                        let b = std::sync::Arc::new(self.store.open(
                            &role,
                            limits,
                            self.max_keys,
                            now,
                        )?);
                        e.scaled
                            .lock()
                            .entry(o.spec.multiplier.to_bits())
                            .or_insert(b)
                            .clone()
                    }
                };
                Planned::Hit(Some(budgets), Some(o.override_id), audit)
            }
            None => Planned::Hit(None, None, audit),
        })
    }

    /// The first step of a decision under rule `name` (its filters are not consulted: a named
    /// rule applies, A4), or under the rule selected for `req` when `name` is `None` (then
    /// `Ok(None)`: no rule applies). For a caller that waits for Redis; in memory and the host
    /// store [`Rules::check`] and [`Rules::decide`] make the whole decision in one go.
    pub fn plan(
        &self,
        name: Option<&str>,
        default: Option<&str>,
        req: &RequestFacts<'_>,
        now: Nanos,
        cost: u64,
    ) -> Result<Option<Step>, Error> {
        let guard = self.entries.read();
        let e = match name {
            Some(n) => guard.0.get(n).ok_or_else(|| unknown(n))?,
            None => match Self::select_in(&guard, req, default)? {
                Some(e) => e,
                None => return Ok(None),
            },
        };
        Ok(Some(match self.plan_in(e, req, now)? {
            Planned::Decided(d) => {
                record(&e.metrics, &d.decision, req);
                Step::Decided(d)
            }
            Planned::Hit(scaled, override_id, audit) => Step::Hit(Hit {
                budgets: scaled.unwrap_or_else(|| e.budgets.clone()),
                key: Self::key(&e.rule.name, e.rule.spec.scope, &e.rule.keyed(req)),
                cost,
                now,
                rule: e.rule.clone(),
                queue: e.queue.clone(),
                metrics: e.metrics.clone(),
                override_id,
                audit,
            }),
        }))
    }

    /// Decides one request under the rule `name` (its filters are not consulted: a named rule
    /// applies, A4) at `now`; counted if admitted. A disabled rule admits (A18). An unknown name
    /// is an error naming it. Budgets in Redis: an error (the caller uses [`Rules::plan`]).
    pub fn check(
        &self,
        name: &str,
        req: &RequestFacts<'_>,
        now: Nanos,
        cost: u64,
    ) -> Result<RuleDecision, Error> {
        let guard = self.entries.read();
        let e = guard.0.get(name).ok_or_else(|| unknown(name))?;
        self.decide_here(e, req, now, cost)
    }

    /// Selection and decision in one go: the rule `req` falls under (else `default`), decided
    /// as [`Rules::check`] does; `None` when no rule applies.
    pub fn decide(
        &self,
        req: &RequestFacts<'_>,
        default: Option<&str>,
        now: Nanos,
        cost: u64,
    ) -> Result<Option<RuleDecision>, Error> {
        let guard = self.entries.read();
        match Self::select_in(&guard, req, default)? {
            Some(e) => self.decide_here(e, req, now, cost).map(Some),
            None => Ok(None),
        }
    }

    /// The whole decision under `e` where the budgets answer at once, the set's read lock held
    /// (no count of a shared pointer, the key built in this thread's buffer).
    fn decide_here(
        &self,
        e: &Entry,
        req: &RequestFacts<'_>,
        now: Nanos,
        cost: u64,
    ) -> Result<RuleDecision, Error> {
        let (scaled, override_id, audit) = match self.plan_in(e, req, now)? {
            Planned::Decided(d) => {
                record(&e.metrics, &d.decision, req);
                return Ok(d);
            }
            Planned::Hit(scaled, override_id, audit) => (scaled, override_id, audit),
        };
        let budgets = scaled.as_ref().unwrap_or(&e.budgets);
        KEY.with(|buf| {
            let mut key = buf.borrow_mut();
            Self::write_key(
                &mut key,
                &e.rule.name,
                e.rule.spec.scope,
                &e.rule.keyed(req),
            );
            let d = budgets
                .hit_here(&key, now, cost)
                .ok_or_else(|| Error::invalid("store", "keeps its budgets in Redis: await it"))??;
            let (mut out, follow) = finish(
                &e.rule,
                &e.metrics,
                req,
                d.decision,
                false,
                override_id,
                audit,
                now,
            );
            if let Some((kind, at)) = follow {
                let target = match kind {
                    FollowKind::Book(_) => budgets,
                    FollowKind::Queue => &e.queue,
                };
                if let Some(r) = target.hit_here(&key, at, cost) {
                    kind.apply(&mut out, r?.decision.allowed);
                }
            }
            Ok(out)
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

    /// Every rule's metrics recorded since the last call, zeroed as they are read (what a
    /// shared engine flushes to its store).
    pub fn take_metrics(&self) -> Vec<(String, RuleMetricsSnapshot)> {
        let guard = self.entries.read();
        guard
            .0
            .values()
            .map(|e| (e.rule.spec.name.clone(), e.metrics.take()))
            .filter(|(_, s)| s.total_requests > 0)
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

    /// Forgets the budget `req` has under rule `name` where that is done at once (memory, host):
    /// whether it was held. On Redis: the budgets and key, for the caller to reset there.
    pub fn reset(
        &self,
        name: &str,
        req: &RequestFacts<'_>,
        now: Nanos,
    ) -> Result<Result<bool, (std::sync::Arc<Budgets>, String)>, Error> {
        let guard = self.entries.read();
        let e = guard.0.get(name).ok_or_else(|| unknown(name))?;
        let key = Self::key(name, e.rule.spec.scope, &e.rule.keyed(req));
        Ok(match e.budgets.reset_here(&key, now) {
            Some(held) => Ok(held),
            None => Err((e.budgets.clone(), key)),
        })
    }
}

/// What [`Rules::plan_in`] found: a decision, or the budgets to hit (an override's multiplied
/// ones, else the rule's own), the override and the audit entries.
enum Planned {
    Decided(RuleDecision),
    Hit(
        Option<std::sync::Arc<Budgets>>,
        Option<u64>,
        Vec<AuditEntry>,
    ),
}

/// An admission that spends no budget (a disabled rule, an unlimited override).
fn admit(rule: &Rule, override_id: Option<u64>, audit: Vec<AuditEntry>) -> RuleDecision {
    let spec = &rule.spec;
    RuleDecision {
        decision: Decision {
            allowed: true,
            limit: spec.rate,
            remaining: spec.rate,
            reset_after: 0,
            retry_after: 0,
        },
        rule: rule.name.clone(),
        strategy: rule.strategy,
        override_id,
        audit,
        delay: 0,
        degraded: false,
        queued: false,
        fallback: false,
    }
}

#[inline]
fn record(metrics: &RuleMetrics, d: &Decision, req: &RequestFacts<'_>) {
    metrics.record_addr(
        d.allowed,
        d.remaining as f64,
        req.user.unwrap_or(""),
        req.ip,
        req.endpoint,
    );
}

/// The rule's decision from the limiter's verdict `d` (recorded in the metrics first: no
/// strategy changes what they count, defect 1), and the follow-up a refusal needs, if any: its
/// kind and when to make it.
#[allow(clippy::too_many_arguments)]
fn finish(
    rule: &Rule,
    metrics: &RuleMetrics,
    req: &RequestFacts<'_>,
    d: Decision,
    fallback: bool,
    override_id: Option<u64>,
    audit: Vec<AuditEntry>,
    now: Nanos,
) -> (RuleDecision, Option<(FollowKind, Nanos)>) {
    record(metrics, &d, req);
    let refused = !d.allowed;
    // A refusal by the failure policy is not the limit's: nothing is booked or queued on it.
    let follow = match rule.strategy {
        _ if !refused || fallback => None,
        // Book the next free slot once: decide as at the moment it frees, counting it there
        // (the budget then holds it, and later requests queue behind it). Past `max_delay`, or
        // a slot that never frees, the request is refused instead: never a sleep-and-retry
        // loop, never an unbounded wait.
        Strategy::Throttle if d.retry_after != Nanos::MAX && d.retry_after <= rule.max_delay() => {
            Some((
                FollowKind::Book(d.retry_after),
                now.saturating_add(d.retry_after),
            ))
        }
        Strategy::Queue => Some((FollowKind::Queue, now)),
        _ => None,
    };
    let out = RuleDecision {
        decision: d,
        rule: rule.name.clone(),
        strategy: rule.strategy,
        override_id,
        audit,
        delay: 0,
        degraded: refused && rule.strategy == Strategy::Graceful,
        queued: false,
        fallback,
    };
    (out, follow)
}

impl Hit {
    /// The audit entries written while planning it (overrides that expired).
    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    /// The rule's decision from the budgets' verdict `d` (made by the caller, on Redis), and
    /// the follow-up a refusal needs, if any. `req` is the request the hit was planned for.
    pub fn finish(
        self,
        req: &RequestFacts<'_>,
        d: Decision,
        fallback: bool,
    ) -> (RuleDecision, Option<FollowUp>) {
        let (out, follow) = finish(
            &self.rule,
            &self.metrics,
            req,
            d,
            fallback,
            self.override_id,
            self.audit,
            self.now,
        );
        let follow = follow.map(|(kind, at)| FollowUp {
            budgets: match kind {
                FollowKind::Book(_) => self.budgets,
                FollowKind::Queue => self.queue,
            },
            key: self.key,
            at,
            cost: self.cost,
            kind,
        });
        (out, follow)
    }
}

/// `n` in decimal, written into `buf` (no formatting machinery on the hot path).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Identifiers longer than this are kept as their SHA-256 (a budget key never grows with what a
/// client sends).
pub const MAX_IDENTIFIER: usize = 256;

/// The error for a rule name that is not in the set.
fn unknown(name: &str) -> Error {
    Error::invalid("rule_name", format!("names no rule: {name:?}"))
}
