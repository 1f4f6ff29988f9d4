//! `RedisLimiter`: limits shared through Redis. Its sync methods use a blocking connection pool
//! ([`crate::store::redis::pool`]); its async ones the direct path ([`super::direct`]) or a task
//! on the tokio thread whose result comes back through the bridge ([`super::futures`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::clock::ClockSource;
use super::direct::DirectShared;
use super::errors::{at_least_one, cost_arg, seconds_arg, text_arg, Count};
use super::futures::{report_all, store_error, Completion, Done, PyBridge};
use super::limiter::{limit_set_arg, limits_list, secs, usage_list, PyDecision};
use super::top_limited::{summary_dict, top_keys_arg, top_list, TopN};
use crate::breaker::BreakerConfig;
use crate::clock::{self, Clock, DefaultClock, Nanos, NANOS_PER_SEC};
use crate::limiter::redis_failure::RedisDecision;
use crate::limiter::redis_limiter::{Pending, RedisLimiter, RedisLimiterConfig};
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::{runtime, url, RedisConfig};

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "RedisLimiter")]
pub(crate) struct PyRedisLimiter {
    core: Arc<RedisLimiter>,
    direct: Arc<DirectShared<RedisLimiter>>,
    /// Blocking connections for the sync methods, one per thread calling at once.
    sync_pool: BlockingPool,
    clock: ClockSource,
}

/// The time for the script (None: the server's TIME) and for the breaker and local policy.
pub(crate) fn script_times(
    clock: &ClockSource,
    py: Python<'_>,
) -> PyResult<(Option<Nanos>, Nanos)> {
    Ok(match clock {
        ClockSource::Default => match clock::default_clock() {
            Some(m) => (Some(m.now()), m.now()),
            None => (None, DefaultClock.now()),
        },
        ClockSource::System => (None, DefaultClock.now()),
        other => {
            let n = other.now(py)?;
            (Some(n), n)
        }
    })
}

/// The settings of a Redis store as `RedisLimiter` and the middleware take them, checked, each
/// error naming its parameter.
#[allow(clippy::too_many_arguments)]
pub(crate) fn redis_settings(
    store: &str,
    key_prefix: &str,
    on_error: &str,
    connect_timeout: f64,
    command_timeout: f64,
    log_interval: f64,
    max_local_keys: usize,
    breaker_failures: i64,
    breaker_recovery: f64,
) -> PyResult<RedisLimiterConfig> {
    let connect = seconds_arg("connect_timeout", connect_timeout, 0.001)?;
    let command = seconds_arg("command_timeout", command_timeout, 0.001)?;
    let recovery = seconds_arg("breaker_recovery", breaker_recovery, 0.001)?;
    let failures: u32 = at_least_one("breaker_failures", breaker_failures)?;
    let breaker = BreakerConfig {
        failure_threshold: failures,
        recovery_timeout: recovery,
        // A probe that outlives a command has timed out anyway.
        probe_timeout: command.saturating_mul(2).max(NANOS_PER_SEC / 100),
        max_recovery_timeout: (30 * NANOS_PER_SEC).max(recovery),
        ..BreakerConfig::default()
    };
    Ok(RedisLimiterConfig {
        redis: RedisConfig {
            url: store.to_owned(),
            connect_timeout: Duration::from_nanos(connect),
            command_timeout: Duration::from_nanos(command),
        },
        prefix: key_prefix.to_owned(),
        on_error: on_error.parse()?,
        max_local_keys,
        log_interval: seconds_arg("log_interval", log_interval, 0.0)?,
        breaker,
    })
}

/// The time a clock reads when a limiter is made (the breaker starts then).
pub(crate) fn start_time(clock: &ClockSource) -> Nanos {
    match clock {
        ClockSource::Manual(m) => m.now(),
        _ => DefaultClock.now(),
    }
}

/// Makes a begun decision of `core` on the calling thread, without the GIL: over a blocking
/// connection from `pool` when the store is one server over TCP or a Unix socket (`direct`),
/// else through tokio; then logs what the limiter reports.
pub(crate) fn finish_on_thread(
    py: Python<'_>,
    core: &Arc<RedisLimiter>,
    pool: &BlockingPool,
    direct: bool,
    begun: Result<Pending, RedisDecision>,
) -> PyResult<RedisDecision> {
    let pending = match begun {
        Ok(p) => p,
        Err(d) => return Ok(d),
    };
    let d = if direct {
        py.detach(move || core.finish_blocking(pool, pending))
    } else {
        let core = core.clone();
        py.detach(move || runtime::handle().block_on(core.finish(pending)))
    };
    report_all(py, core.take_reports());
    d.map_err(store_error)
}

impl PyRedisLimiter {
    fn times(&self, py: Python<'_>) -> PyResult<(Option<Nanos>, Nanos)> {
        script_times(&self.clock, py)
    }

    fn decide_sync(
        &self,
        py: Python<'_>,
        key: &str,
        cost: Count,
        commit: bool,
    ) -> PyResult<RedisDecision> {
        let (now, local_now) = self.times(py)?;
        let begun = self
            .core
            .begin(key, cost_arg("cost", cost)?, commit, now, local_now)?;
        self.finish_sync(py, begun)
    }

    /// Makes a begun decision on the calling thread, without the GIL.
    fn finish_sync(
        &self,
        py: Python<'_>,
        begun: Result<Pending, RedisDecision>,
    ) -> PyResult<RedisDecision> {
        finish_on_thread(
            py,
            &self.core,
            &self.sync_pool,
            self.direct.enabled(),
            begun,
        )
    }

    fn begin_with(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        other: &Bound<'_, PyRedisLimiter>,
        other_key: &Bound<'_, PyAny>,
        cost: Count,
    ) -> PyResult<Result<Pending, RedisDecision>> {
        let key = text_arg("key", key)?;
        let other_key = text_arg("other_key", other_key)?;
        let (now, local_now) = self.times(py)?;
        Ok(self.core.begin_with(
            key,
            &other.get().core,
            other_key,
            cost_arg("cost", cost)?,
            now,
            local_now,
        )?)
    }

    /// Sends a begun decision on the direct path, or over tokio; the decision if it was known
    /// at once, else None (the bridge or the direct path sets it on `future`).
    fn submit_begun(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        begun: Result<Pending, RedisDecision>,
    ) -> PyResult<Option<PyDecision>> {
        let pending = match begun {
            Ok(p) => p,
            Err(d) => return Ok(Some(PyDecision::from_redis(d))),
        };
        let inner = bridge.get().inner().clone();
        let pending = match self
            .direct
            .try_send(py, Arc::as_ptr(&inner) as usize, future, pending)
        {
            Ok(()) => return Ok(None),
            Err(pending) => pending,
        };
        let core = self.core.clone();
        let future = future.clone().unbind();
        runtime::handle().spawn(async move {
            let d = core.finish(pending).await;
            inner.complete(Done {
                future,
                completion: Completion::Decision(d),
                reports: core.take_reports(),
            });
        });
        Ok(None)
    }
}

#[pymethods]
impl PyRedisLimiter {
    #[new]
    #[pyo3(signature = (
        limits, *, store, algorithm="gcra", key_prefix="seawall:", on_error="allow",
        connect_timeout=1.0, command_timeout=0.25, log_interval=60.0, max_local_keys=100_000,
        breaker_failures=3, breaker_recovery=1.0, clock=None, top_keys=100
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        limits: &Bound<'_, PyAny>,
        store: &str,
        algorithm: &str,
        key_prefix: &str,
        on_error: &str,
        connect_timeout: f64,
        command_timeout: f64,
        log_interval: f64,
        max_local_keys: i64,
        breaker_failures: i64,
        breaker_recovery: f64,
        clock: Option<&Bound<'_, PyAny>>,
        top_keys: i64,
    ) -> PyResult<Self> {
        let limits = limit_set_arg(limits, algorithm)?;
        let max_local_keys = at_least_one("max_local_keys", max_local_keys)?;
        let config = redis_settings(
            store,
            key_prefix,
            on_error,
            connect_timeout,
            command_timeout,
            log_interval,
            max_local_keys,
            breaker_failures,
            breaker_recovery,
        )?;
        let clock = ClockSource::from_arg(clock)?;
        let now = start_time(&clock);
        let core = Arc::new(
            RedisLimiter::new(limits, config, now)?.with_top_limited(top_keys_arg(top_keys)?),
        );
        Ok(PyRedisLimiter {
            direct: DirectShared::new(core.clone()),
            sync_pool: BlockingPool::default(),
            core,
            clock,
        })
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn hit(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        Ok(PyDecision::from_redis(
            self.decide_sync(py, key, cost, true)?,
        ))
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn allow(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        Ok(self
            .decide_sync(py, key, cost, true)?
            .decision
            .decision
            .allowed)
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn test(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        Ok(PyDecision::from_redis(
            self.decide_sync(py, key, cost, false)?,
        ))
    }

    fn reset(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        let (_, local_now) = self.times(py)?;
        let core = self.core.clone();
        let key = key.to_owned();
        let r = py.detach(move || runtime::handle().block_on(core.reset(&key, local_now)));
        report_all(py, self.core.take_reports());
        r.map_err(store_error)
    }

    /// What each of `key`'s limits holds in Redis (see `Limiter.usage`), changing nothing.
    fn usage<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let key = text_arg("key", key)?.to_owned();
        let (now, local_now) = self.times(py)?;
        let core = self.core.clone();
        let r = py.detach(move || runtime::handle().block_on(core.usage(&key, now, local_now)));
        report_all(py, self.core.take_reports());
        usage_list(py, &r.map_err(store_error)?)
    }

    /// Starts an async decision: the Decision if it is known at once, else None, and the
    /// bridge sets it on `future` later.
    fn _submit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        cost: Count,
        commit: bool,
    ) -> PyResult<Option<PyDecision>> {
        let key = text_arg("key", key)?;
        let (now, local_now) = self.times(py)?;
        let begun = self
            .core
            .begin(key, cost_arg("cost", cost)?, commit, now, local_now)?;
        self.submit_begun(py, bridge, future, begun)
    }

    /// `hit` of `key` here and `other_key` in `other` at once, all or nothing, in one script
    /// call (both limiters must name the same Redis); the binding decision.
    #[pyo3(signature = (key, other, other_key, cost=Count::ONE), text_signature = "($self, key, other, other_key, cost=1)")]
    fn hit_with(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        other: &Bound<'_, PyRedisLimiter>,
        other_key: &Bound<'_, PyAny>,
        cost: Count,
    ) -> PyResult<PyDecision> {
        let begun = self.begin_with(py, key, other, other_key, cost)?;
        Ok(PyDecision::from_redis(self.finish_sync(py, begun)?))
    }

    /// `_submit` of [`hit_with`](Self::hit_with).
    #[allow(clippy::too_many_arguments)]
    fn _submit_with(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        other: &Bound<'_, PyRedisLimiter>,
        other_key: &Bound<'_, PyAny>,
        cost: Count,
    ) -> PyResult<Option<PyDecision>> {
        let begun = self.begin_with(py, key, other, other_key, cost)?;
        self.submit_begun(py, bridge, future, begun)
    }

    /// Starts an async reset; the bridge sets whether Redis held the key on `future`.
    fn _submit_reset(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let key = text_arg("key", key)?;
        let (_, local_now) = self.times(py)?;
        let core = self.core.clone();
        let inner = bridge.get().inner().clone();
        let future = future.clone().unbind();
        let key = key.to_owned();
        runtime::handle().spawn(async move {
            let r = core.reset(&key, local_now).await;
            inner.complete(Done {
                future,
                completion: Completion::Flag(r),
                reports: core.take_reports(),
            });
        });
        Ok(())
    }

    /// Every Redis key that holds `key`'s state.
    fn redis_keys(&self, key: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        Ok(self.core.keys(text_arg("key", key)?))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (_, local_now) = self.times(py)?;
        let s = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("decisions", s.decisions.load(Ordering::Relaxed))?;
        d.set_item("limited", s.limited.load(Ordering::Relaxed))?;
        d.set_item("errors", s.errors.load(Ordering::Relaxed))?;
        d.set_item("fallbacks", s.fallbacks.load(Ordering::Relaxed))?;
        d.set_item("breaker", self.core.breaker().state(local_now).name())?;
        d.set_item(
            "breaker_retry_after",
            secs(self.core.breaker().retry_after(local_now)),
        )?;
        super::http::round_trip_items(&d, self.core.round_trips())?;
        Ok(d)
    }

    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        limits_list(py, self.core.limits())
    }

    /// The store URL, password hidden.
    #[getter]
    fn store(&self) -> String {
        url::redact(&self.core.config().redis.url)
    }

    #[getter]
    fn on_error(&self) -> &'static str {
        self.core.config().on_error.name()
    }

    #[getter]
    fn key_prefix(&self) -> String {
        self.core.config().prefix.clone()
    }

    /// The keys refused most, most first: `(key, refusals)` pairs, each count an upper bound
    /// (space-saving; see `top_limited_summary` for each key's error).
    #[pyo3(signature = (n=TopN::DEFAULT), text_signature = "($self, n=10)")]
    fn top_limited<'py>(&self, py: Python<'py>, n: TopN) -> PyResult<Bound<'py, PyList>> {
        top_list(py, self.core.top_limited(), n)
    }

    /// Every key counted with its count and error, the total refusals and the part of them
    /// not attributed with certainty to a key held (`other`).
    fn top_limited_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        summary_dict(py, self.core.top_limited())
    }

    /// Forgets the keys refused so far.
    fn reset_top_limited(&self) {
        self.core.top_limited().reset();
    }

    fn __repr__(&self) -> String {
        let limits: Vec<String> = self
            .core
            .limits()
            .limits()
            .iter()
            .map(|l| l.to_string())
            .collect();
        format!(
            "RedisLimiter([{}], store={:?}, on_error={:?})",
            limits.join(", "),
            self.store(),
            self.on_error()
        )
    }
}
