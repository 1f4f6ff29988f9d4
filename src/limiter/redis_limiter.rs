//! Limits shared by every process that names the same Redis: [`RedisLimiter`].
//!
//! The decisions are the in-memory [`Limiter`]'s (the same algorithms, all or nothing across a
//! key's limits), made by one script in Redis. What happens when Redis cannot answer is the
//! operator's choice ([`OnError`]), applied within `command_timeout`; a circuit breaker around
//! Redis turns an outage into one timeout per recovery probe, not one per request, and a failure
//! is reported once per `log_interval`, with the number of failures in between.
//! The failure side (the policy, the errors, the reports) is in [`super::redis_failure`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::limit::{LimitDecision, LimitSet};
use super::memory_limiter::Limiter;
use super::redis_failure::{ErrorLog, Fallback, OnError, RedisDecision, Report, StoreError};
use crate::algorithm::Decision;
use crate::breaker::{Breaker, BreakerConfig, Outcome, REJECTED};
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::script::{packed_batch, parse_reply, LimitScript, Reply, Request};
use crate::store::redis::{process::ProcessStore, RedisConfig, RedisStore};

/// Counters of what a shared limiter did.
#[derive(Debug, Default)]
pub struct RedisLimiterStats {
    /// Decisions asked for.
    pub decisions: AtomicU64,
    /// Decisions refused (the `limited` stats key).
    pub limited: AtomicU64,
    /// Calls to Redis that failed or timed out.
    pub errors: AtomicU64,
    /// Decisions the failure policy made (failures and open-breaker short cuts).
    pub fallbacks: AtomicU64,
}

/// The settings of a [`RedisLimiter`] besides its limits.
#[derive(Debug, Clone)]
pub struct RedisLimiterConfig {
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
pub struct RedisLimiter {
    limits: LimitSet,
    script: LimitScript,
    config: RedisLimiterConfig,
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
    pub stats: RedisLimiterStats,
}

/// A decision that needs Redis: the script call and the breaker's permit.
///
/// Decisions at one time can share a script call ([`crate::store::redis::script::packed_batch`]).
pub struct Pending {
    key: String,
    request: Request,
    cost: u64,
    commit: bool,
    permit: crate::breaker::Permit,
    local_now: Nanos,
    /// Whether `local_now` is the real clock's (no caller's clock was given): only then does
    /// the real time the call took move it on. A manual clock stands still while Redis is asked.
    real_clock: bool,
}

impl Pending {
    /// The time, on the caller's clock, at which a call that took `took` (real time) ended.
    fn done_at(&self, took: Nanos) -> Nanos {
        if self.real_clock {
            self.local_now.saturating_add(took)
        } else {
            self.local_now
        }
    }

    /// The script call that makes this decision.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl RedisLimiter {
    /// Checks the limits and the settings; connects on first use.
    pub fn new(limits: LimitSet, config: RedisLimiterConfig, now: Nanos) -> Result<Self, Error> {
        let script = LimitScript::new(&limits, &config.prefix)?;
        let store = ProcessStore::new(config.redis.clone())?;
        Ok(RedisLimiter {
            local: Limiter::new(limits.clone(), config.max_local_keys),
            breaker: Breaker::new(config.breaker.clone(), now)?,
            log: ErrorLog::new(config.log_interval, false),
            config_log: ErrorLog::new(config.log_interval, true),
            reports: Mutex::new(Vec::new()),
            has_report: AtomicBool::new(false),
            last_broken: Mutex::new(None),
            store,
            limits,
            script,
            config,
            stats: RedisLimiterStats::default(),
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
    pub fn config(&self) -> &RedisLimiterConfig {
        &self.config
    }

    /// The breaker around Redis.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Every Redis key that holds `key`'s state, in the order the script takes them (see
    /// [`LimitScript::keys`]).
    ///
    /// All of them share one Cluster hash tag, and two distinct client keys never share one of
    /// them (tests/redis_keys.rs).
    pub fn keys(&self, key: &str) -> Vec<String> {
        self.script.keys(key)
    }

    /// Starts a decision: either it is known at once (the breaker is open, so the policy
    /// decides) or it needs Redis, and [`RedisLimiter::finish`] makes it. `now`: the caller's
    /// clock if it is not the server's (a manual clock in tests); `local_now`: the time the
    /// breaker and the local policy use.
    pub fn begin(
        &self,
        key: &str,
        cost: u64,
        commit: bool,
        now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Result<Pending, RedisDecision>, Error> {
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
        Ok(Ok(Pending {
            key: key.to_owned(),
            request: self
                .script
                .request(key, cost, commit, now.map(|n| n / 1000)),
            cost,
            commit,
            permit,
            local_now,
            real_clock: now.is_none(),
        }))
    }

    /// [`RedisLimiter::finish`] on the caller's thread, over a blocking connection from `pool`
    /// (one write and one read; no thread hop). Only for a store [`BlockingPool`] can reach
    /// (one server over plain TCP or a Unix socket).
    pub fn finish_blocking(
        &self,
        pool: &BlockingPool,
        p: Pending,
    ) -> Result<RedisDecision, StoreError> {
        let started = Instant::now();
        let request = [&p.request];
        let reply = pool
            .call(&self.config.redis, |by_hash| {
                packed_batch(&request, by_hash)
            })
            .and_then(parse_reply)
            .and_then(|mut v| {
                v.pop()
                    .ok_or_else(|| std::io::Error::other("no decision").into())
            });
        self.settle(p, reply, started.elapsed().as_nanos() as Nanos)
    }

    /// Makes a decision [`RedisLimiter::begin`] could not, within `command_timeout`.
    pub async fn finish(&self, p: Pending) -> Result<RedisDecision, StoreError> {
        let store = self.store();
        let started = Instant::now();
        let r =
            tokio::time::timeout(self.config.redis.command_timeout, store.decide(&p.request)).await;
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

    /// Turns the script's reply (or the failure) into the decision, reporting to the breaker;
    /// `took` is how long the call took. A configuration error ([`StoreError::Configuration`])
    /// is returned instead of a decision: `on_error` is for faults that can heal.
    pub fn settle(
        &self,
        p: Pending,
        reply: redis::RedisResult<Reply>,
        took: Nanos,
    ) -> Result<RedisDecision, StoreError> {
        let done_at = p.done_at(took);
        match reply {
            Ok(raw) => {
                self.breaker
                    .record(p.permit, Outcome::Success, took, done_at);
                let decision = self.decision_of(raw);
                if !decision.decision.allowed {
                    self.stats.limited.fetch_add(1, Ordering::Relaxed);
                }
                Ok(RedisDecision {
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
    pub fn abandon(&self, p: Pending, took: Nanos) -> RedisDecision {
        let done_at = p.done_at(took);
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
    ) -> RedisDecision {
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
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
        }
        RedisDecision {
            decision,
            fallback: why,
        }
    }

    fn synthetic(&self, allowed: bool, remaining: u64) -> LimitDecision {
        let first = self.limits.limits()[0].spec();
        LimitDecision {
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

    fn decision_of(&self, r: Reply) -> LimitDecision {
        let limits = self.limits.limits();
        let index = if r.binding < limits.len() {
            r.binding
        } else {
            0
        };
        LimitDecision {
            decision: Decision {
                allowed: r.allowed,
                limit: r.limit,
                remaining: r.remaining,
                reset_after: r.reset_after,
                retry_after: r.retry_after,
            },
            binding: limits[index].spec(),
            binding_reset_after: r.binding_reset_after,
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
