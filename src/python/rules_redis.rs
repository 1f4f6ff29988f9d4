//! A rules engine's decisions on Redis: one script call per decision (a second one only for a
//! refusal that THROTTLE books or QUEUE queues), made on the calling thread for the sync
//! methods, batched on the asyncio loop (the direct path) or through tokio for the async ones.

use std::net::IpAddr;
use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;

use super::direct::{Asked, Decider, DirectShared, Requested};
use super::futures::{report_all, store_error, Completion, Done, PyBridge};
use super::redis::finish_on_thread;
use super::rules::PyRuleDecision;
use crate::clock::Nanos;
use crate::limiter::redis_failure::{Fallback, RedisDecision, StoreError};
use crate::limiter::redis_limiter::{Pending, RedisLimiter};
use crate::rules::{FollowKind, FollowUp, Hit, RequestFacts, RuleDecision};
use crate::store::redis::batcher::{Done as Settled, Outcome};
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::round_trips::RoundTrips;
use crate::store::redis::script::Request;
use crate::store::redis::{runtime, RedisConfig};

/// A request's facts, owned, for a decision that waits for Redis.
pub(crate) struct OwnedFacts {
    user: Option<String>,
    ip: Option<IpAddr>,
    endpoint: Option<String>,
}

impl OwnedFacts {
    pub(crate) fn of(req: &RequestFacts<'_>) -> Self {
        OwnedFacts {
            user: req.user.map(str::to_owned),
            ip: req.ip,
            endpoint: req.endpoint.map(str::to_owned),
        }
    }

    fn view(&self) -> RequestFacts<'_> {
        RequestFacts {
            user: self.user.as_deref(),
            ip: self.ip,
            endpoint: self.endpoint.as_deref(),
            user_id: None,
        }
    }
}

/// What a settled script call finishes.
pub(crate) enum Job {
    /// A rule's decision.
    Hit(Hit, OwnedFacts),
    /// A refusal's follow-up (THROTTLE's booking, QUEUE's place).
    Follow(RuleDecision, FollowKind),
}

/// A rule decision waiting for Redis.
pub(crate) struct RulePending {
    pending: Pending,
    limiter: Arc<RedisLimiter>,
    job: Job,
}

impl Requested for RulePending {
    #[inline]
    fn request(&self) -> &Request {
        self.pending.request()
    }
}

/// A rule's decision and the follow-up it still needs.
pub(crate) type Finished = (RuleDecision, Option<FollowUp>);

impl Job {
    /// The rule's decision from the budgets' decision `rd`.
    fn finish(self, rd: RedisDecision) -> Finished {
        let fallback = rd.fallback != Fallback::None;
        match self {
            Job::Hit(hit, facts) => hit.finish(&facts.view(), rd.decision.decision, fallback),
            Job::Follow(mut d, kind) => {
                // A follow-up the failure policy answered books or queues nothing.
                kind.apply(&mut d, rd.decision.decision.allowed && !fallback);
                (d, None)
            }
        }
    }
}

fn to_object(py: Python<'_>, r: Result<Finished, StoreError>) -> PyResult<Py<PyAny>> {
    match r {
        Ok((d, follow)) => Ok(Py::new(py, PyRuleDecision::new(d, follow))?.into_any()),
        Err(e) => Err(store_error(e)),
    }
}

/// The engine's Redis side: the direct connection shared by every rule's budgets (they name
/// one Redis), and blocking connections for the sync methods.
pub(crate) struct RulesRedis {
    config: RedisConfig,
    /// The direct connection's round trips (not exported yet: the engine's rules each count
    /// their own decisions).
    round_trips: Arc<RoundTrips>,
}

impl Decider for RulesRedis {
    type Pending = RulePending;

    fn redis_config(&self) -> &RedisConfig {
        &self.config
    }

    fn round_trips(&self) -> Arc<RoundTrips> {
        self.round_trips.clone()
    }

    fn resolve(&self, py: Python<'_>, done: Settled<Asked<RulePending>>) {
        for s in done {
            let Asked { future, pending } = s.item;
            let RulePending {
                pending,
                limiter,
                job,
            } = pending;
            let rd = match s.outcome {
                Outcome::Reply(r) => limiter.settle(pending, r, s.took),
                Outcome::Inherited => Ok(limiter.abandon(pending, s.took)),
            };
            report_all(py, limiter.take_reports());
            let r = match to_object(py, rd.map(|rd| job.finish(rd))) {
                Ok(v) => future.call_method1(py, intern!(py, "set_result"), (v,)),
                Err(e) => {
                    future.call_method1(py, intern!(py, "set_exception"), (e.into_value(py),))
                }
            };
            // A cancelled future refuses its result; nobody is waiting for it.
            if r.is_err() {
                let _ = PyErr::take(py);
            }
        }
    }
}

/// How a rules engine reaches Redis.
pub(crate) struct RedisPath {
    direct: Arc<DirectShared<RulesRedis>>,
    pool: BlockingPool,
}

impl RedisPath {
    pub(crate) fn new(config: RedisConfig) -> Self {
        RedisPath {
            direct: DirectShared::new(Arc::new(RulesRedis {
                config,
                round_trips: Arc::default(),
            })),
            pool: BlockingPool::default(),
        }
    }

    /// Starts the script call for `budgets`' `key`; `Err`: decided at once (the breaker is
    /// open).
    fn begin(
        limiter: &Arc<RedisLimiter>,
        key: &str,
        cost: u64,
        now: Option<Nanos>,
        local_now: Nanos,
    ) -> Result<Result<Pending, RedisDecision>, crate::error::Error> {
        limiter.begin(key, cost, true, now, local_now)
    }

    /// Makes a begun call on this thread without the GIL.
    fn blocking(
        &self,
        py: Python<'_>,
        limiter: &Arc<RedisLimiter>,
        begun: Result<Pending, RedisDecision>,
    ) -> PyResult<RedisDecision> {
        finish_on_thread(py, limiter, &self.pool, self.direct.enabled(), begun)
    }

    /// Makes a whole decision (and its follow-up) on this thread.
    pub(crate) fn decide_blocking(
        &self,
        py: Python<'_>,
        hit: Hit,
        facts: &RequestFacts<'_>,
        script_now: Option<Nanos>,
    ) -> PyResult<RuleDecision> {
        let limiter = redis_of(&hit.budgets)?;
        let begun = Self::begin(&limiter, &hit.key, hit.cost, script_now, hit.now)?;
        let rd = self.blocking(py, &limiter, begun)?;
        let (mut d, follow) = Job::Hit(hit, OwnedFacts::of(facts)).finish(rd);
        if let Some(f) = follow {
            let limiter = redis_of(&f.budgets)?;
            let begun = Self::begin(&limiter, &f.key, f.cost, Some(f.at), f.at)?;
            let rd = self.blocking(py, &limiter, begun)?;
            d = Job::Follow(d, f.kind).finish(rd).0;
        }
        Ok(d)
    }

    /// Starts an async decision: known at once (the breaker is open) or set on `future` later.
    pub(crate) fn submit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        limiter: Arc<RedisLimiter>,
        begun: Result<Pending, RedisDecision>,
        job: Job,
    ) -> PyResult<Option<PyRuleDecision>> {
        let pending = match begun {
            Ok(p) => p,
            Err(rd) => {
                let (d, follow) = job.finish(rd);
                return Ok(Some(PyRuleDecision::new(d, follow)));
            }
        };
        let inner = bridge.get().inner().clone();
        let asked = RulePending {
            pending,
            limiter,
            job,
        };
        let asked = match self
            .direct
            .try_send(py, Arc::as_ptr(&inner) as usize, future, asked)
        {
            Ok(()) => return Ok(None),
            Err(asked) => asked,
        };
        let future = future.clone().unbind();
        runtime::handle().spawn(async move {
            let RulePending {
                pending,
                limiter,
                job,
            } = asked;
            let rd = limiter.finish(pending).await;
            let reports = limiter.take_reports();
            inner.complete(Done {
                future,
                completion: Completion::Object(rd.map(|rd| {
                    let finished = job.finish(rd);
                    Box::new(move |py: Python<'_>| to_object(py, Ok(finished))) as _
                })),
                reports,
            });
        });
        Ok(None)
    }

    /// [`RedisPath::submit`] of a hit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_hit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        hit: Hit,
        facts: &RequestFacts<'_>,
        script_now: Option<Nanos>,
    ) -> PyResult<Option<PyRuleDecision>> {
        let limiter = redis_of(&hit.budgets)?;
        let begun = Self::begin(&limiter, &hit.key, hit.cost, script_now, hit.now)?;
        self.submit(
            py,
            bridge,
            future,
            limiter,
            begun,
            Job::Hit(hit, OwnedFacts::of(facts)),
        )
    }

    /// [`RedisPath::submit`] of a refusal's follow-up.
    pub(crate) fn submit_follow(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        d: RuleDecision,
        f: FollowUp,
    ) -> PyResult<Option<PyRuleDecision>> {
        let limiter = redis_of(&f.budgets)?;
        let begun = Self::begin(&limiter, &f.key, f.cost, Some(f.at), f.at)?;
        self.submit(py, bridge, future, limiter, begun, Job::Follow(d, f.kind))
    }
}

fn redis_of(budgets: &crate::rules::Budgets) -> PyResult<Arc<RedisLimiter>> {
    budgets.redis().cloned().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("a rule's budgets are not in Redis")
    })
}
