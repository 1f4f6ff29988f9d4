//! Limits shared by every process that names the same Redis: [`SharedLimiter`].
//!
//! The decisions are the in-memory [`Limiter`]'s (the same algorithms, all or nothing across a
//! key's limits), made by one script in Redis. What happens when Redis cannot answer is the
//! operator's choice ([`OnError`]), applied within `command_timeout`; a circuit breaker around
//! Redis turns an outage into one timeout per recovery probe, not one per request, and a failure
//! is reported once per `log_interval`, with the number of failures in between.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::tiered::{LimitSet, Limiter, Params, TieredDecision};
use crate::algorithm::Decision;
use crate::breaker::{Breaker, BreakerConfig, Outcome, REJECTED};
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;
use crate::store::redis::{process::ProcessStore, RedisConfig, RedisStore};

/// Lua numbers are doubles: integers are exact below 2^53.
const LUA_EXACT: u128 = 1 << 53;
const MICROS_PER_SEC: u64 = 1_000_000;
const NEVER: i64 = -1;

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
pub struct SharedDecision {
    /// The decision.
    pub decision: TieredDecision,
    /// Whether the failure policy made it.
    pub fallback: Fallback,
}

/// One limit as the script takes it.
struct Tier {
    kind: &'static str,
    params: [u64; 3],
    /// The key suffix: the algorithm and limit, so that a changed configuration starts afresh.
    suffix: String,
    /// A sliding log keeps its running total in a second key.
    log: bool,
}

fn tiers(limits: &LimitSet) -> Result<Vec<Tier>, Error> {
    let mut tiers: Vec<Tier> = limits
        .limits()
        .iter()
        .map(|l| {
            let spec = l.spec();
            let mut suffix = format!(
                "{}:{}/{}s",
                l.kind().name(),
                spec.count,
                spec.period / NANOS_PER_SEC
            );
            if let Some(b) = l.burst() {
                suffix.push_str(&format!(":b{b}"));
            }
            let too_fine = |why: String| {
                Error::invalid(
                    "limits",
                    format!("{l} cannot be kept exactly in Redis ({why}); use a coarser limit"),
                )
            };
            if spec.period % 1000 != 0 {
                return Err(too_fine("its period is not a whole number of µs".into()));
            }
            let window_us = spec.period / 1000;
            let (kind, params) = match l.params() {
                Params::Bucket { capacity, num, den } => {
                    let unit = u128::from(den) * u128::from(MICROS_PER_SEC);
                    if num == 0 || u128::from(capacity) * unit >= LUA_EXACT {
                        return Err(too_fine(format!(
                            "capacity {capacity} × {unit} units per token reaches 2^53"
                        )));
                    }
                    ("b", [capacity, num, unit as u64])
                }
                Params::Window { limit, .. } => {
                    let kind = match l.kind() {
                        super::tiered::AlgorithmKind::FixedWindow => "f",
                        super::tiered::AlgorithmKind::SlidingLog => "l",
                        _ => "c",
                    };
                    // limit × window and its neighbours must stay exact.
                    if u128::from(limit + 1) * u128::from(window_us) * 2 >= LUA_EXACT {
                        return Err(too_fine(format!("{limit} × {window_us} µs reaches 2^53")));
                    }
                    (kind, [limit, window_us, 0])
                }
            };
            Ok(Tier {
                kind,
                params,
                log: kind == "l",
                suffix,
            })
        })
        .collect::<Result<_, Error>>()?;
    // A limit written twice is two limits in memory (each counts every request); here each
    // needs its own key too, or one key would count every request twice.
    for i in 1..tiers.len() {
        let same = tiers[..i]
            .iter()
            .filter(|t| t.suffix.split('#').next() == Some(tiers[i].suffix.as_str()))
            .count();
        if same > 0 {
            tiers[i].suffix = format!("{}#{same}", tiers[i].suffix);
        }
    }
    Ok(tiers)
}

/// The start of every Redis key of client key `key`: `prefix{key}`, or `prefix{<escaped>}%` for
/// a key that could not stand in a Cluster hash tag as it is.
///
/// Redis Cluster hashes only the bytes between the first `{` and the first `}` after it, if
/// there are any (the prefix holds no brace). A key that is empty or holds a `}` would leave
/// that tag empty or cut it short, so one decision's keys would land in different slots (and
/// the script be refused with CROSSSLOT). Such a key is written percent-escaped inside the tag
/// (`%` → `%25`, `{` → `%7B`, `}` → `%7D`; the empty key as a lone `%`, which escaping never
/// produces) and marked by a `%` right after the tag. Every other key is written as it is, so
/// keys that always worked keep their layout (and their state across an upgrade), and a
/// percent-encoded key is not escaped twice. The form is injective: the tag holds no `}`, so
/// the tag ends at the first `}`, the byte after it (`%` or `:`) says which form the tag is in,
/// and each form is injective on its own.
fn key_head(prefix: &str, key: &str) -> String {
    let mut head = String::with_capacity(prefix.len() + key.len() + 4);
    head.push_str(prefix);
    head.push('{');
    if !key.is_empty() && !key.contains('}') {
        head.push_str(key);
        head.push('}');
        return head;
    }
    if key.is_empty() {
        head.push('%');
    }
    for c in key.chars() {
        match c {
            '%' => head.push_str("%25"),
            '{' => head.push_str("%7B"),
            '}' => head.push_str("%7D"),
            c => head.push(c),
        }
    }
    head.push_str("}%");
    head
}

/// A message for the `seawall.redis` logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// ERROR (the store can never work as configured) rather than WARNING (an outage).
    pub error: bool,
    /// The message; never holds a password.
    pub message: String,
}

/// Failures of one kind, reported at most once per interval.
struct ErrorLog {
    interval: Nanos,
    error: bool,
    state: Mutex<(Option<Instant>, u64)>,
}

impl ErrorLog {
    fn new(interval: Nanos, error: bool) -> Self {
        ErrorLog {
            interval,
            error,
            state: Mutex::new((None, 0)),
        }
    }

    /// The report due now for `what`, if any.
    fn note(&self, what: &str) -> Option<Report> {
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

/// Counters of what a shared limiter did.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Decisions asked for.
    pub decisions: AtomicU64,
    /// Decisions that denied.
    pub denied: AtomicU64,
    /// Calls to Redis that failed or timed out.
    pub errors: AtomicU64,
    /// Decisions the failure policy made (failures and open-breaker short cuts).
    pub fallbacks: AtomicU64,
}

/// The settings of a [`SharedLimiter`] besides its limits.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// Where and how to reach Redis.
    pub redis: RedisConfig,
    /// Prepended to every key; must not hold `{` or `}` (the key's hash tag follows it).
    pub prefix: String,
    /// The failure policy.
    pub on_error: OnError,
    /// Keys the `Local` policy's in-memory limiter holds at most.
    pub max_local_keys: usize,
    /// Least time between two failure reports.
    pub log_interval: Nanos,
    /// The breaker around Redis.
    pub breaker: BreakerConfig,
}

/// Limits per key, with state in Redis.
pub struct SharedLimiter {
    limits: LimitSet,
    tiers: Vec<Tier>,
    config: SharedConfig,
    store: ProcessStore,
    local: Limiter,
    breaker: Breaker,
    /// Outages (WARNING) and configuration errors (ERROR), each at most once per interval.
    log: ErrorLog,
    config_log: ErrorLog,
    reports: Mutex<Vec<Report>>,
    has_report: AtomicBool,
    /// When a connection last broke: failures of calls already in flight then are the same
    /// failure, not more of them in a row.
    last_broken: Mutex<Option<Instant>>,
    /// What it did.
    pub stats: SharedStats,
}

/// A decision that needs Redis: the script's keys and arguments, and the breaker's permit.
///
/// Decisions at one time can share a script call ([`SharedLimiter::packed_batch`]).
pub struct Pending {
    key: String,
    keys: Vec<String>,
    /// This decision's part of ARGV (see `decide.lua`).
    args: Vec<String>,
    /// The time to send, in µs (None: Redis's TIME).
    now_us: Option<u64>,
    cost: u64,
    commit: bool,
    permit: crate::breaker::Permit,
    local_now: Nanos,
}

impl Pending {
    /// Whether `self` and `other` are decided at the same time (both on Redis's clock, or at the
    /// same caller-given time), so that one script call can make both.
    pub fn same_time(&self, other: &Pending) -> bool {
        self.now_us == other.now_us
    }
}

impl SharedLimiter {
    /// Checks the limits and the settings; connects on first use.
    pub fn new(limits: LimitSet, config: SharedConfig, now: Nanos) -> Result<Self, Error> {
        if config.prefix.contains(['{', '}']) {
            return Err(Error::invalid(
                "key_prefix",
                format!("must not contain '{{' or '}}', got {:?}", config.prefix),
            ));
        }
        let tiers = tiers(&limits)?;
        let store = ProcessStore::new(config.redis.clone())?;
        Ok(SharedLimiter {
            local: Limiter::new(limits.clone(), config.max_local_keys),
            breaker: Breaker::new(config.breaker.clone(), now)?,
            log: ErrorLog::new(config.log_interval, false),
            config_log: ErrorLog::new(config.log_interval, true),
            reports: Mutex::new(Vec::new()),
            has_report: AtomicBool::new(false),
            last_broken: Mutex::new(None),
            store,
            limits,
            tiers,
            config,
            stats: SharedStats::default(),
        })
    }

    /// This process's store (see [`ProcessStore`]).
    fn store(&self) -> Arc<RedisStore> {
        self.store.get()
    }

    /// The limits.
    pub fn limits(&self) -> &LimitSet {
        &self.limits
    }

    /// The settings.
    pub fn config(&self) -> &SharedConfig {
        &self.config
    }

    /// The breaker around Redis.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Every Redis key that holds `key`'s state, in the order the script takes them:
    /// `{prefix}{<tag>}:<limit>` per limit (see [`key_head`] for the tag), and a sliding log's
    /// running total at `…:<limit>:total` right after it.
    ///
    /// All of them share one Cluster hash tag, and two distinct client keys never share one of
    /// them (tests/redis_keys.rs).
    pub fn keys(&self, key: &str) -> Vec<String> {
        let head = key_head(&self.config.prefix, key);
        let mut keys = Vec::with_capacity(self.tiers.len() + 1);
        for t in &self.tiers {
            let mut k = String::with_capacity(head.len() + 1 + t.suffix.len() + 6);
            k.push_str(&head);
            k.push(':');
            k.push_str(&t.suffix);
            if t.log {
                let total = format!("{k}:total");
                keys.push(k);
                keys.push(total);
            } else {
                keys.push(k);
            }
        }
        keys
    }

    /// Starts a decision: either it is known at once (the breaker is open, so the policy
    /// decides) or it needs Redis, and [`SharedLimiter::finish`] makes it. `now`: the caller's
    /// clock if it is not the server's (a manual clock in tests); `local_now`: the time the
    /// breaker and the local policy use.
    pub fn begin(
        &self,
        key: &str,
        cost: u64,
        commit: bool,
        now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Result<Pending, SharedDecision>, Error> {
        self.limits.check_cost(cost)?;
        self.stats.decisions.fetch_add(1, Ordering::Relaxed);
        let permit = self.breaker.try_acquire(local_now);
        if permit == REJECTED {
            return Ok(Err(self.fallback(
                key,
                cost,
                commit,
                local_now,
                Fallback::BreakerOpen,
            )));
        }
        let mut args = Vec::with_capacity(4 + 4 * self.tiers.len());
        args.push(if commit { "1" } else { "0" }.to_owned());
        args.push(cost.to_string());
        args.push(self.tiers.len().to_string());
        for t in &self.tiers {
            args.push(t.kind.to_owned());
            args.extend(t.params.iter().map(u64::to_string));
        }
        Ok(Ok(Pending {
            key: key.to_owned(),
            keys: self.keys(key),
            args,
            now_us: now.map(|n| n / 1000),
            cost,
            commit,
            permit,
            local_now,
        }))
    }

    /// Makes a decision [`SharedLimiter::begin`] could not, within `command_timeout`.
    pub async fn finish(&self, p: Pending) -> Result<SharedDecision, StoreError> {
        let store = self.store();
        let started = Instant::now();
        let (keys, args) = Self::script_input(&[&p]);
        let r = tokio::time::timeout(
            self.config.redis.command_timeout,
            store.decide(&keys, &args),
        )
        .await;
        let took = started.elapsed().as_nanos() as Nanos;
        if r.is_err() {
            // Its reply may still come, and be taken for the next request's.
            store.forget().await;
        }
        let r = r.unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no reply within command_timeout ({:?})",
                    self.config.redis.command_timeout
                ),
            )
            .into())
        });
        self.settle(p, r, took)
    }

    /// The script call for `p` as bytes on the wire: `EVALSHA` (or `EVAL` with the source, after
    /// a `NOSCRIPT` reply).
    pub fn packed(&self, p: &Pending, by_hash: bool) -> Vec<u8> {
        self.packed_batch(&[p], by_hash)
    }

    /// One script call making every decision of `batch`, in order. They must share one time
    /// ([`Pending::same_time`]).
    pub fn packed_batch(&self, batch: &[&Pending], by_hash: bool) -> Vec<u8> {
        let mut cmd = if by_hash {
            let mut c = redis::cmd("EVALSHA");
            c.arg(crate::store::redis::decide_hash());
            c
        } else {
            let mut c = redis::cmd("EVAL");
            c.arg(crate::store::redis::DECIDE_LUA);
            c
        };
        let (keys, args) = Self::script_input(batch);
        cmd.arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in &args {
            cmd.arg(a.as_str());
        }
        cmd.get_packed_command()
    }

    /// The script's KEYS and ARGV for `batch`.
    fn script_input<'a>(batch: &[&'a Pending]) -> (Vec<&'a str>, Vec<String>) {
        let keys = batch
            .iter()
            .flat_map(|p| p.keys.iter().map(String::as_str))
            .collect();
        let mut args = Vec::with_capacity(2 + batch.iter().map(|p| p.args.len()).sum::<usize>());
        args.push(batch.len().to_string());
        args.push(
            batch
                .first()
                .and_then(|p| p.now_us)
                .map_or_else(String::new, |n| n.to_string()),
        );
        for p in batch {
            args.extend(p.args.iter().cloned());
        }
        (keys, args)
    }

    /// Turns the script's reply (or the failure) into the decision, reporting to the breaker;
    /// `took` is how long the call took. A configuration error ([`StoreError::Configuration`])
    /// is returned instead of a decision: `on_error` is for faults that can heal.
    pub fn settle(
        &self,
        p: Pending,
        reply: redis::RedisResult<[i64; 8]>,
        took: Nanos,
    ) -> Result<SharedDecision, StoreError> {
        let done_at = p.local_now.saturating_add(took);
        match reply {
            Ok(raw) => {
                self.breaker
                    .record(p.permit, Outcome::Success, took, done_at);
                let decision = self.decision_of(raw);
                if !decision.decision.allowed {
                    self.stats.denied.fetch_add(1, Ordering::Relaxed);
                }
                Ok(SharedDecision {
                    decision,
                    fallback: Fallback::None,
                })
            }
            Err(e) => {
                self.failed(p.permit, &e, took, done_at)?;
                Ok(self.fallback(&p.key, p.cost, p.commit, done_at, Fallback::Error))
            }
        }
    }

    /// Gives up on a decision sent by another process (the parent of this forked child, which
    /// gets its reply): `on_error` decides, and the breaker does not count it.
    pub fn abandon(&self, p: Pending, took: Nanos) -> SharedDecision {
        let done_at = p.local_now.saturating_add(took);
        self.breaker
            .record(p.permit, Outcome::Ignored, took, done_at);
        self.fallback(&p.key, p.cost, p.commit, done_at, Fallback::Error)
    }

    /// Reports a failed call to the breaker, the counters and the log. A configuration error
    /// is returned (the breaker ignores it: Redis is up); an outage is `Ok` (the policy then
    /// decides).
    fn failed(
        &self,
        permit: crate::breaker::Permit,
        e: &redis::RedisError,
        took: Nanos,
        now: Nanos,
    ) -> Result<(), StoreError> {
        let url = crate::store::redis::url::redact(&self.config.redis.url);
        if crate::store::redis::direct::is_configuration_error(e) {
            self.breaker.record(permit, Outcome::Ignored, took, now);
            let msg = format!(
                "Redis at {url} refuses seawall: {e}. This is a configuration error (the \
                 credentials, the ACL or the database in the store URL), not an outage: \
                 on_error does not apply"
            );
            self.report(self.config_log.note(&msg));
            return Err(StoreError::Configuration(msg));
        }
        let outcome = if self.same_breakage(e, took) {
            Outcome::Ignored
        } else {
            Outcome::Failure
        };
        self.breaker.record(permit, outcome, took, now);
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.report(self.log.note(&format!(
            "Redis at {url} failed: {e}; decisions follow on_error={} until it recovers",
            self.config.on_error.name()
        )));
        Ok(())
    }

    /// Whether a failed call was already in flight when a connection last broke: then it is
    /// part of that one failure, and does not count as one more in a row for the breaker
    /// (`CLIENT KILL` under 40 decisions in flight is one failure, not 40). Error replies from
    /// the server are each their own failure.
    fn same_breakage(&self, e: &redis::RedisError, took: Nanos) -> bool {
        if matches!(
            e.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        ) {
            return false;
        }
        let now = Instant::now();
        let started = now.checked_sub(Duration::from_nanos(took)).unwrap_or(now);
        let mut last = self.last_broken.lock();
        if last.is_some_and(|t| started < t) {
            return true;
        }
        *last = Some(now);
        false
    }

    fn report(&self, r: Option<Report>) {
        if let Some(r) = r {
            self.reports.lock().push(r);
            self.has_report.store(true, Ordering::Release);
        }
    }

    fn fallback(
        &self,
        key: &str,
        cost: u64,
        commit: bool,
        now: Nanos,
        why: Fallback,
    ) -> SharedDecision {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        let first = self.limits.limits()[0].spec();
        let decision = match self.config.on_error {
            OnError::Local => {
                let r = if commit {
                    self.local.hit(key, now, cost)
                } else {
                    self.local.test(key, now, cost)
                };
                // The cost was checked in `begin`: the local limiter has the same limits.
                r.unwrap_or_else(|_| self.synthetic(false, 0))
            }
            OnError::Allow => self.synthetic(true, first.count),
            OnError::Deny => {
                // Retry once the breaker would let a probe through (at least a second).
                let wait = self.breaker.retry_after(now).max(NANOS_PER_SEC);
                let mut d = self.synthetic(false, 0);
                d.decision.retry_after = wait;
                d.decision.reset_after = wait;
                d
            }
        };
        if !decision.decision.allowed {
            self.stats.denied.fetch_add(1, Ordering::Relaxed);
        }
        SharedDecision {
            decision,
            fallback: why,
        }
    }

    fn synthetic(&self, allowed: bool, remaining: u64) -> TieredDecision {
        let first = self.limits.limits()[0].spec();
        TieredDecision {
            decision: Decision {
                allowed,
                limit: first.count,
                remaining,
                reset_after: 0,
                retry_after: 0,
            },
            binding: first,
            binding_reset_after: 0,
        }
    }

    fn decision_of(&self, r: [i64; 8]) -> TieredDecision {
        let us = |v: i64| -> Nanos {
            if v == NEVER {
                Nanos::MAX
            } else {
                (v.max(0) as u64).saturating_mul(1000)
            }
        };
        let index = usize::try_from(r[5])
            .ok()
            .filter(|&i| i < self.limits.limits().len())
            .unwrap_or(0);
        TieredDecision {
            decision: Decision {
                allowed: r[0] == 1,
                limit: r[1].max(0) as u64,
                remaining: r[2].max(0) as u64,
                reset_after: us(r[3]),
                retry_after: us(r[4]),
            },
            binding: self.limits.limits()[index].spec(),
            binding_reset_after: us(r[6]),
        }
    }

    /// Forgets `key`'s state in Redis (and in the local fallback); whether Redis held any.
    ///
    /// Through the breaker, as decisions are: while it is open no call is made, and a failure
    /// counts towards opening it and is logged at most once per `log_interval`. Either way the
    /// caller learns that Redis still holds the state ([`StoreError`]).
    pub async fn reset(&self, key: &str, local_now: Nanos) -> Result<bool, StoreError> {
        self.local.reset(key, local_now);
        let permit = self.breaker.try_acquire(local_now);
        if permit == REJECTED {
            let wait = self.breaker.retry_after(local_now) as f64 / NANOS_PER_SEC as f64;
            return Err(StoreError::Unavailable(format!(
                "Redis reset failed: Redis at {} is unavailable (the breaker around it is \
                 open; the next try in {wait:.3} s)",
                crate::store::redis::url::redact(&self.config.redis.url),
            )));
        }
        let store = self.store();
        let keys = self.keys(key);
        let started = Instant::now();
        let timeout = self.config.redis.command_timeout;
        let r = tokio::time::timeout(timeout, store.delete(&keys)).await;
        if r.is_err() {
            store.forget().await;
        }
        let r = r.unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply within command_timeout ({timeout:?})"),
            )
            .into())
        });
        let took = started.elapsed().as_nanos() as Nanos;
        let done_at = local_now.saturating_add(took);
        match r {
            Ok(existed) => {
                self.breaker.record(permit, Outcome::Success, took, done_at);
                Ok(existed)
            }
            Err(e) => {
                self.failed(permit, &e, took, done_at)?;
                Err(StoreError::Unavailable(format!("Redis reset failed: {e}")))
            }
        }
    }

    /// The reports due now for the `seawall.redis` logger (each kind at most once per
    /// `log_interval`). One atomic load when there are none.
    pub fn take_reports(&self) -> Vec<Report> {
        if !self.has_report.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.reports.lock())
    }
}
