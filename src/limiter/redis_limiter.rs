//! Limits shared by every process that names the same Redis: [`RedisLimiter`].
//!
//! The decisions are the in-memory [`Limiter`]'s (the same algorithms, all or nothing across a
//! key's limits), made by one script in Redis. What happens when Redis cannot answer is the
//! operator's choice ([`OnError`]), applied within `command_timeout`; a circuit breaker around
//! Redis turns an outage into one timeout per recovery probe, not one per request, and a failure
//! is reported once per `log_interval`, with the number of failures in between.
//! The failure side (the policy, the errors, the reports) is in [`super::redis_failure`].

use std::sync::Arc;

use super::limit::{LimitDecision, LimitSet, Usage};
use super::memory_limiter::Limiter;
use super::redis_failure::{Fallback, OnError, RedisDecision, StoreError};
use super::redis_guard::{RedisGuard, Ticket};
pub use super::redis_guard::{RedisLimiterConfig, RedisLimiterStats};
use crate::algorithm::Decision;
use crate::breaker::Breaker;
use crate::clock::Nanos;
use crate::error::Error;
use crate::metrics::top_limited::TopLimited;
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::script::{joined_request, key_head, LimitScript, Reply, Request};

/// Limits per key, with state in Redis.
pub struct RedisLimiter {
    limits: LimitSet,
    script: LimitScript,
    local: Limiter,
    guard: RedisGuard,
    /// Whether the store is a Redis Cluster (a script's keys must then share one slot).
    cluster: bool,
    /// The keys refused most, in this process (off unless [`RedisLimiter::with_top_limited`]).
    top_limited: TopLimited,
}

/// A decision that needs Redis: the script call and the breaker's permit.
///
/// Decisions at one time can share a script call ([`crate::store::redis::script::packed_batch`]).
pub struct Pending {
    key: String,
    request: Request,
    cost: u64,
    commit: bool,
    ticket: Ticket,
    /// Decided together with another limiter's key ([`RedisLimiter::begin_with`]).
    with: Option<(Arc<RedisLimiter>, String)>,
}

impl Pending {
    /// The script call that makes this decision.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl RedisLimiter {
    /// Checks the limits and the settings; connects on first use.
    pub fn new(limits: LimitSet, config: RedisLimiterConfig, now: Nanos) -> Result<Self, Error> {
        let script = LimitScript::new(&limits, &config.prefix)?;
        let cluster = matches!(
            crate::store::redis::url::parse(&config.redis.url)?,
            crate::store::redis::url::Target::Cluster { .. }
        );
        let label = limits
            .limits()
            .iter()
            .map(|l| l.spec().to_string())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(RedisLimiter {
            cluster,
            local: Limiter::new(limits.clone(), config.max_local_keys),
            guard: RedisGuard::new(config, now)?.labelled(label),
            limits,
            script,
            top_limited: TopLimited::default(),
        })
    }

    /// Counts the keys this process sees refused (by Redis or by `on_error`) in a
    /// [`TopLimited`] of `capacity` keys (0: not at all, the default). Only refusals pay for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::redis_failure::OnError;
    /// use seawall::limiter::redis_limiter::{RedisLimiter, RedisLimiterConfig};
    /// use seawall::store::redis::RedisConfig;
    ///
    /// let config = RedisLimiterConfig {
    ///     redis: RedisConfig {
    ///         url: "redis://127.0.0.1:6379/0".into(),
    ///         connect_timeout: Duration::from_secs(1),
    ///         command_timeout: Duration::from_secs(1),
    ///     },
    ///     prefix: "app:".into(),
    ///     on_error: OnError::Allow,
    ///     max_local_keys: 10,
    ///     log_interval: 0,
    ///     breaker: Default::default(),
    /// };
    /// let limits = LimitSet::parse("10/second", AlgorithmKind::Gcra).unwrap();
    /// let limiter = RedisLimiter::new(limits, config, 0).unwrap().with_top_limited(100);
    /// assert_eq!(limiter.top_limited().capacity(), 100); // connects on first use
    /// ```
    pub fn with_top_limited(mut self, capacity: usize) -> Self {
        self.top_limited = TopLimited::new(capacity);
        self
    }

    /// The keys this process saw refused most.
    pub fn top_limited(&self) -> &TopLimited {
        &self.top_limited
    }

    /// The limits.
    pub fn limits(&self) -> &LimitSet {
        &self.limits
    }

    /// The settings.
    pub fn config(&self) -> &RedisLimiterConfig {
        self.guard.config()
    }

    /// The breaker around Redis.
    pub fn breaker(&self) -> &Breaker {
        self.guard.breaker()
    }

    /// What it did.
    pub fn stats(&self) -> &RedisLimiterStats {
        &self.guard.stats
    }

    /// Its script calls that brought decisions back, on every path.
    pub fn round_trips(&self) -> &Arc<crate::store::redis::round_trips::RoundTrips> {
        &self.guard.round_trips
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
        let Some(ticket) = self.guard.ticket(local_now, now.is_some()) else {
            return Ok(Err(self.fallback(
                key,
                cost,
                commit,
                local_now,
                Fallback::BreakerOpen,
            )));
        };
        Ok(Ok(Pending {
            key: key.to_owned(),
            request: self
                .script
                .request(key, cost, commit, now.map(|n| n / 1000)),
            cost,
            commit,
            ticket,
            with: None,
        }))
    }

    /// Starts a decision of `cost` for `key` here and for `other_key` in `other` at once, all or
    /// nothing (counted by both only if both admit it), in one script call: Redis's
    /// [`crate::limiter::memory_limiter::Limiter::hit_with`]. `other` must name the same
    /// Redis. Both keys are their usual ones, as [`RedisLimiter::begin`] decides them, except on
    /// a Redis Cluster: there one script's keys must share a slot, so `key`'s here are
    /// `<prefix>{<other_key>}:with:<length>:<key>:<limit>`, in `other_key`'s slot (a key
    /// decided both alone and with another has two budgets on a Cluster). On a failure this
    /// limiter's `on_error` decides (`local`: both local limiters, all or nothing).
    pub fn begin_with(
        &self,
        key: &str,
        other: &Arc<RedisLimiter>,
        other_key: &str,
        cost: u64,
        now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Result<Pending, RedisDecision>, Error> {
        if other.config().redis.url != self.config().redis.url {
            return Err(Error::invalid(
                "other",
                "must keep its state in the same Redis (the same store URL): one script call \
                 decides both",
            ));
        }
        super::hit_with::same_key(std::ptr::eq(self, Arc::as_ptr(other)), key, other_key)?;
        self.limits.check_cost(cost)?;
        other.limits.check_cost(cost)?;
        let with = Some((other.clone(), other_key.to_owned()));
        let Some(ticket) = self.guard.ticket(local_now, now.is_some()) else {
            return Ok(Err(self.fallback_with(
                key,
                cost,
                true,
                &with,
                local_now,
                Fallback::BreakerOpen,
            )));
        };
        let other_head = key_head(&other.config().prefix, other_key);
        let head = if self.cluster {
            format!(
                "{}:with:{}:{key}",
                key_head(&self.config().prefix, other_key),
                key.len()
            )
        } else {
            key_head(&self.config().prefix, key)
        };
        let request = joined_request(
            &[
                (&self.script, head.as_str()),
                (&other.script, other_head.as_str()),
            ],
            cost,
            true,
            now.map(|n| n / 1000),
        );
        Ok(Ok(Pending {
            key: key.to_owned(),
            request,
            cost,
            commit: true,
            ticket,
            with,
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
        let (reply, took) = self.guard.call_blocking(pool, &p.request);
        self.settle(p, reply, took)
    }

    /// Makes a decision [`RedisLimiter::begin`] could not, within `command_timeout`.
    pub async fn finish(&self, p: Pending) -> Result<RedisDecision, StoreError> {
        let (reply, took) = self.guard.call(&p.request).await;
        self.settle(p, reply, took)
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
        match reply {
            Ok(raw) => {
                self.guard.succeeded(&p.ticket, took);
                let theirs = raw.binding >= self.limits.limits().len();
                let decision = match &p.with {
                    Some((other, _)) if theirs => other.decision_of(Reply {
                        binding: raw.binding - self.limits.limits().len(),
                        ..raw
                    }),
                    _ => self.decision_of(raw),
                };
                if !decision.decision.allowed {
                    self.guard.note_limited();
                    match &p.with {
                        Some((other, other_key)) if theirs => other.top_limited.record(other_key),
                        _ if p.commit => self.top_limited.record(&p.key),
                        _ => {}
                    }
                }
                Ok(RedisDecision {
                    decision,
                    fallback: Fallback::None,
                })
            }
            Err(e) => {
                self.guard.failed(&p.ticket, &e, took)?;
                let done_at = p.ticket.done_at(took);
                Ok(self.fallback_with(&p.key, p.cost, p.commit, &p.with, done_at, Fallback::Error))
            }
        }
    }

    /// Gives up on a decision sent by another process (the parent of this forked child, which
    /// gets its reply): `on_error` decides, and the breaker does not count it.
    pub fn abandon(&self, p: Pending, took: Nanos) -> RedisDecision {
        self.guard.abandoned(&p.ticket, took);
        let done_at = p.ticket.done_at(took);
        self.fallback_with(&p.key, p.cost, p.commit, &p.with, done_at, Fallback::Error)
    }

    fn fallback(
        &self,
        key: &str,
        cost: u64,
        commit: bool,
        now: Nanos,
        why: Fallback,
    ) -> RedisDecision {
        self.fallback_with(key, cost, commit, &None, now, why)
    }

    fn fallback_with(
        &self,
        key: &str,
        cost: u64,
        commit: bool,
        with: &Option<(Arc<RedisLimiter>, String)>,
        now: Nanos,
        why: Fallback,
    ) -> RedisDecision {
        self.guard.note_fallback();
        let first = self.limits.limits()[0].spec();
        let decision = match self.config().on_error {
            OnError::Local => {
                let r = match with {
                    Some((other, other_key)) => {
                        self.local.hit_with(key, &other.local, other_key, now, cost)
                    }
                    None if commit => self.local.hit(key, now, cost),
                    None => self.local.test(key, now, cost),
                };
                // The cost was checked in `begin`: the local limiter has the same limits.
                r.unwrap_or_else(|_| self.synthetic(false, 0))
            }
            OnError::Allow => self.synthetic(true, first.count),
            OnError::Deny => {
                // Retry once the breaker would let a probe through (at least a second).
                let wait = self.guard.deny_wait(now);
                let mut d = self.synthetic(false, 0);
                d.decision.retry_after = wait;
                d.decision.reset_after = wait;
                d
            }
        };
        if !decision.decision.allowed {
            self.guard.note_limited();
            if commit {
                self.top_limited.record(key);
            }
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

    /// What each of `key`'s limits holds in Redis, changing nothing: one script call that
    /// tests one unit against each limit alone. When Redis fails or the breaker around it is
    /// open, `on_error="local"` answers with the local fallback's usage; the other policies
    /// have no budget to show, and the caller learns that Redis is unavailable.
    pub async fn usage(
        &self,
        key: &str,
        now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Vec<Usage>, StoreError> {
        let Some(ticket) = self.guard.ticket(local_now, now.is_some()) else {
            return self.usage_fallback(key, local_now, "the breaker around Redis is open");
        };
        let limits = self.limits.limits();
        let requests: Vec<_> = (0..limits.len())
            .map(|i| self.script.usage_request(i, key, now.map(|n| n / 1000)))
            .collect();
        let (replies, took) = self
            .guard
            .call_all(&requests.iter().collect::<Vec<_>>())
            .await;
        match replies {
            Ok(replies) => {
                self.guard.succeeded(&ticket, took);
                Ok(limits
                    .iter()
                    .zip(replies)
                    .map(|(limit, r)| {
                        Usage::of(
                            limit.spec(),
                            Decision {
                                allowed: r.allowed,
                                limit: r.limit,
                                remaining: r.remaining,
                                reset_after: r.binding_reset_after,
                                retry_after: r.retry_after,
                            },
                        )
                    })
                    .collect())
            }
            Err(e) => {
                self.guard.failed(&ticket, &e, took)?;
                self.usage_fallback(key, ticket.done_at(took), &e.to_string())
            }
        }
    }

    fn usage_fallback(&self, key: &str, now: Nanos, why: &str) -> Result<Vec<Usage>, StoreError> {
        match self.config().on_error {
            OnError::Local => Ok(self.local.usage(key, now)),
            _ => Err(StoreError::Unavailable(format!(
                "usage failed: Redis at {} is unavailable ({why})",
                crate::store::redis::url::redact(&self.config().redis.url)
            ))),
        }
    }

    /// Forgets `key`'s state in Redis (and in the local fallback); whether Redis held any.
    ///
    /// Through the breaker, as decisions are: while it is open no call is made, and a failure
    /// counts towards opening it and is logged at most once per `log_interval`. Either way the
    /// caller learns that Redis still holds the state ([`StoreError`]).
    pub async fn reset(&self, key: &str, local_now: Nanos) -> Result<bool, StoreError> {
        self.local.reset(key, local_now);
        self.guard
            .delete("Redis reset", &self.keys(key), local_now)
            .await
    }

    /// The reports due now for the `seawall.redis` logger (each kind at most once per
    /// `log_interval`). One atomic load when there are none.
    pub fn take_reports(&self) -> Vec<crate::limiter::redis_failure::Report> {
        self.guard.take_reports()
    }
}
