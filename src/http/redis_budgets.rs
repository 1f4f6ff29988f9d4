//! A request's budgets decided in Redis: the global limits and the client's route budget in one
//! script call, all or nothing, so that every worker and host of an app shares them exactly.
//!
//! The keys of one request must share a Cluster hash tag (a script may touch one slot only).
//! Without global limits each client's keys are tagged by the client (spread over the cluster):
//! `<prefix>{<client>}:http:<budget>:<limit>`. With global limits every request touches the
//! global key anyway, so all of the middleware's keys share its tag and its slot:
//! `<prefix>{http}:global:<limit>` and `<prefix>{http}:c<length>:<client>:<budget>:<limit>`
//! (the client's length first, so that no client key can end where another's budget begins).
//! A budget is named by its rule ([`Routes::budget_ids`]), so reordering rules keeps the counts.
//!
//! When Redis cannot answer, `on_error` decides what the client sees: `allow` lets the request
//! through with no rate-limit header (no budget is known), `deny` answers 503 with
//! `Retry-After` (the client did nothing wrong), `local` decides in this process's own stores
//! (the policy's memory budgets) and shows only what is true of them: nothing when admitted,
//! a 429 with `Retry-After` when refused.

use super::counters::StoreOutcome;
use super::{render, HttpPolicy, Outcome, Plan, RequestView, Routes, Verdict};
use crate::algorithm::Decision;
use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::limit::LimitSet;
use crate::limiter::redis_failure::{OnError, StoreError};
use crate::limiter::redis_guard::{RedisGuard, RedisLimiterConfig, Ticket};
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::script::{joined_request, key_head, LimitScript, Reply, Request};

/// The Redis side of an [`HttpPolicy`]: the connection and breaker, and each budget's script.
pub struct RedisBudgets {
    guard: RedisGuard,
    global: Option<(LimitSet, LimitScript)>,
    /// Per route budget (rules in order, then the default limits): limits, script, name.
    routes: Vec<(LimitSet, LimitScript, String)>,
}

/// A request that needs Redis: its plan, the script call and the breaker's permit.
pub struct HttpPending {
    plan: Plan,
    request: Request,
    ticket: Ticket,
}

impl HttpPending {
    /// The script call that decides it.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// How [`HttpPolicy::begin`] left a request: decided at once, or waiting for Redis.
pub enum Begun {
    /// Known at once: no limit applies, or the breaker around Redis is open.
    Done(Outcome),
    /// Needs the script call ([`HttpPolicy::finish`] or a batch of the caller's).
    Pending(HttpPending),
}

impl RedisBudgets {
    /// The scripts of `global` and of every budget of `routes`, under `config` (its `prefix`
    /// must hold no brace); connects on first use.
    pub fn new(
        global: Option<&LimitSet>,
        routes: &Routes,
        config: RedisLimiterConfig,
        now: Nanos,
    ) -> Result<Self, Error> {
        let prefix = config.prefix.clone();
        let global = match global {
            Some(set) => Some((set.clone(), LimitScript::new(set, &prefix)?)),
            None => None,
        };
        let routes = routes
            .budget_ids()
            .into_iter()
            .map(|(set, id)| {
                let script = LimitScript::new(&set, &prefix)?;
                Ok((set, script, id))
            })
            .collect::<Result<_, Error>>()?;
        Ok(RedisBudgets {
            guard: RedisGuard::new(config, now)?.labelled("http".to_owned()),
            global,
            routes,
        })
    }

    /// The connection, breaker, counters and reports.
    pub fn guard(&self) -> &RedisGuard {
        &self.guard
    }

    fn prefix(&self) -> &str {
        &self.guard.config().prefix
    }

    fn global_head(&self) -> String {
        format!("{}{{http}}:global", self.prefix())
    }

    /// Where a client's keys in route budget `budget` start.
    fn client_head(&self, key: &str, budget: usize) -> String {
        let id = &self.routes[budget].2;
        if self.global.is_some() {
            format!("{}{{http}}:c{}:{key}:{id}", self.prefix(), key.len())
        } else {
            format!("{}:http:{id}", key_head(self.prefix(), key))
        }
    }

    /// The script call deciding `plan` at `now_us` (None: the server's TIME).
    fn request(&self, plan: &Plan, now_us: Option<u64>) -> Request {
        let mut heads: Vec<(&LimitScript, String)> = Vec::with_capacity(2);
        if let (true, Some((_, g))) = (plan.global, &self.global) {
            heads.push((g, self.global_head()));
        }
        if let Some(budget) = plan.route {
            heads.push((&self.routes[budget].1, self.client_head(&plan.key, budget)));
        }
        let parts: Vec<(&LimitScript, &str)> =
            heads.iter().map(|(s, h)| (*s, h.as_str())).collect();
        joined_request(&parts, 1, true, now_us)
    }

    /// Every Redis key of client `key`, in every route budget (not the global ones).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::http::{redis_budgets::RedisBudgets, Routes, Rule};
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::redis_failure::OnError;
    /// use seawall::limiter::redis_guard::RedisLimiterConfig;
    /// use seawall::store::redis::RedisConfig;
    ///
    /// let set = |t| LimitSet::parse(t, AlgorithmKind::Gcra).unwrap();
    /// let routes = Routes::new(vec![Rule::new("/login", set("1/minute"), None, None).unwrap()], Some(set("5/minute")), 10);
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
    /// let budgets = RedisBudgets::new(None, &routes, config, 0).unwrap(); // connects on first use
    /// let keys = budgets.keys("ip:192.0.2.1");
    /// assert_eq!(keys.len(), 2);
    /// assert!(keys.iter().all(|k| k.starts_with("app:{ip:192.0.2.1}:http:")));
    /// ```
    pub fn keys(&self, key: &str) -> Vec<String> {
        (0..self.routes.len())
            .flat_map(|budget| {
                let plan = Plan {
                    key: key.into(),
                    route: Some(budget),
                    global: false,
                };
                self.request(&plan, None).keys().to_vec()
            })
            .collect()
    }
}

impl HttpPolicy {
    /// The Redis side, if the budgets are kept there.
    fn redis(&self) -> &RedisBudgets {
        self.redis
            .as_ref()
            .expect("only a policy on Redis makes pending decisions")
    }

    /// Starts deciding a request on Redis (in this process without a Redis store): either the
    /// outcome is known at once or the request waits for one script call. `script_now`: the
    /// caller's clock for the script if it is not the server's (a manual clock in tests);
    /// `local_now`: the time the breaker and the local policy use.
    pub fn begin(
        &self,
        req: &RequestView<'_>,
        key: Option<&str>,
        body: Option<&[u8]>,
        script_now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Begun, Error> {
        let Some(plan) = self.plan(req, key, body) else {
            return Ok(Begun::Done(Outcome::Pass));
        };
        let Some(redis) = &self.redis else {
            return Ok(Begun::Done(
                self.render(&self.decide_counted(&plan, local_now)?),
            ));
        };
        let Some(ticket) = redis.guard.ticket(local_now, script_now.is_some()) else {
            return Ok(Begun::Done(self.fallback(&plan, local_now)));
        };
        let request = redis.request(&plan, script_now.map(|n| n / 1000));
        Ok(Begun::Pending(HttpPending {
            plan,
            request,
            ticket,
        }))
    }

    /// Decides `p` over a blocking connection from `pool`, on the caller's thread.
    pub fn finish_blocking(
        &self,
        pool: &BlockingPool,
        p: HttpPending,
    ) -> Result<Outcome, StoreError> {
        let (reply, took) = self.redis().guard.call_blocking(pool, &p.request);
        self.settle(p, reply, took)
    }

    /// Decides `p` over tokio, within `command_timeout`.
    pub async fn finish(&self, p: HttpPending) -> Result<Outcome, StoreError> {
        let (reply, took) = self.redis().guard.call(&p.request).await;
        self.settle(p, reply, took)
    }

    /// Turns the script's reply (or the failure) into the response; `took`: how long the call
    /// took. A configuration error ([`StoreError::Configuration`]) is returned instead:
    /// `on_error` is for faults that can heal.
    pub fn settle(
        &self,
        p: HttpPending,
        reply: redis::RedisResult<Reply>,
        took: Nanos,
    ) -> Result<Outcome, StoreError> {
        let redis = self.redis();
        match reply {
            Ok(r) => {
                redis.guard.succeeded(&p.ticket, took);
                if !r.allowed {
                    redis.guard.note_limited();
                    self.top_limited.record(&p.plan.key);
                }
                let counters = self.counters(&p.plan);
                counters.store(StoreOutcome::Ok);
                counters.decided(r.allowed);
                Ok(self.render(&self.verdict_of(&p.plan, &r)))
            }
            Err(e) => {
                if let Err(e) = redis.guard.failed(&p.ticket, &e, took) {
                    self.counters(&p.plan).store(StoreOutcome::Error);
                    return Err(e);
                }
                Ok(self.fallback(&p.plan, p.ticket.done_at(took)))
            }
        }
    }

    /// Gives up on a request sent by another process (the parent of this forked child):
    /// `on_error` decides, and the breaker does not count it.
    pub fn abandon(&self, p: HttpPending, took: Nanos) -> Outcome {
        self.redis().guard.abandoned(&p.ticket, took);
        self.fallback(&p.plan, p.ticket.done_at(took))
    }

    /// The reply's binding limit as the verdict the memory path would give: the limit, its
    /// budget's name and period.
    fn verdict_of(&self, plan: &Plan, r: &Reply) -> Verdict<'_> {
        let redis = self.redis();
        let global = match (plan.global, &redis.global) {
            (true, Some((set, _))) => set.limits().len(),
            _ => 0,
        };
        let (set, name, index) = match (&redis.global, plan.route) {
            (Some((set, _)), _) if r.binding < global => (set, "global", r.binding),
            (_, Some(budget)) => (
                &redis.routes[budget].0,
                self.route_name(budget),
                r.binding.saturating_sub(global),
            ),
            (Some((set, _)), None) => (set, "global", 0),
            (None, None) => unreachable!("a plan spends at least one budget"),
        };
        let limits = set.limits();
        let spec = limits[if index < limits.len() { index } else { 0 }].spec();
        Verdict {
            allowed: r.allowed,
            decision: Decision {
                allowed: r.allowed,
                limit: r.limit,
                remaining: r.remaining,
                reset_after: r.binding_reset_after,
                retry_after: r.retry_after,
            },
            window: spec.period,
            name,
        }
    }

    /// What `on_error` answers for `plan` at `now` when Redis cannot.
    fn fallback(&self, plan: &Plan, now: Nanos) -> Outcome {
        let guard = &self.redis().guard;
        guard.note_fallback();
        let outcome = match guard.config().on_error {
            OnError::Allow => Outcome::Pass,
            OnError::Deny => {
                let (headers, body) = render::unavailable(guard.deny_wait(now));
                Outcome::Unavailable(headers, body)
            }
            OnError::Local => match self.decide_here(plan, now) {
                Ok(v) if v.allowed => Outcome::Pass,
                Ok(v) => {
                    self.top_limited.record(&plan.key);
                    let (headers, body) = render::denial(render::Headers::new(), &v.decision);
                    Outcome::Limited(headers, body)
                }
                Err(_) => {
                    let (headers, body) = render::unavailable(guard.deny_wait(now));
                    Outcome::Unavailable(headers, body)
                }
            },
        };
        if !matches!(outcome, Outcome::Pass) {
            guard.note_limited();
        }
        let counters = self.counters(plan);
        counters.store(StoreOutcome::Fallback);
        counters.decided_as(&outcome);
        outcome
    }

    /// Forgets `key` in every route budget, in Redis and in the local fallback; whether Redis
    /// held any of it. Errors as [`crate::limiter::redis_limiter::RedisLimiter::reset`].
    pub async fn reset_shared(&self, key: &str, local_now: Nanos) -> Result<bool, StoreError> {
        self.reset(key, local_now);
        let redis = self.redis();
        redis
            .guard
            .delete("Redis reset", &redis.keys(key), local_now)
            .await
    }
}
