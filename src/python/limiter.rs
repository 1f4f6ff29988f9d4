//! `Limit`, `Decision`, `Limiter` and `SlidingLogService` for Python: argument checks, the clock,
//! the stats and usage dicts. (About 510 lines: four small classes that share the argument
//! helpers.)

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::clock::ClockSource;
use super::errors::{
    cost_arg, float_arg, int_arg, surrogate_error, text_arg, type_name, Algorithm, Count, MaxKeys,
};
use super::top_limited::{summary_dict, top_list, TopKeys, TopN};
use crate::algorithm::Decision;
use crate::clock::{nanos_to_secs, Nanos};
use crate::dropin::log_service::LogService;
use crate::error::Error;
use crate::limiter::limit::{AlgorithmKind, Limit, LimitDecision, LimitSet, Usage};
use crate::limiter::memory_limiter::Limiter;
use crate::limiter::redis_failure::{Fallback, RedisDecision};
use crate::limiter::spec::{parse_limits, LimitSpec};
use crate::store::memory::KeyStats;

pub(crate) fn secs(n: Nanos) -> f64 {
    if n == Nanos::MAX {
        f64::INFINITY
    } else {
        nanos_to_secs(n)
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "Limit")]
pub(crate) struct PyLimit {
    limit: Limit,
}

#[pymethods]
impl PyLimit {
    #[new]
    #[pyo3(signature = (limit, algorithm=Algorithm::GCRA, burst=None), text_signature = "(limit, algorithm='gcra', burst=None)")]
    fn new(
        limit: &Bound<'_, PyAny>,
        algorithm: Algorithm,
        burst: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let spec: LimitSpec = text_arg("limit", limit)?.parse()?;
        let kind = algorithm.0;
        let burst = burst
            .map(|b| int_arg("burst", b, 0, u64::MAX))
            .transpose()?;
        Ok(PyLimit {
            limit: Limit::new(spec, kind, burst)?,
        })
    }

    #[getter]
    fn count(&self) -> u64 {
        self.limit.spec().count
    }

    #[getter]
    fn period(&self) -> f64 {
        nanos_to_secs(self.limit.spec().period)
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.limit.kind().name()
    }

    #[getter]
    fn burst(&self) -> Option<u64> {
        self.limit.burst()
    }

    fn __str__(&self) -> String {
        self.limit.spec().to_string()
    }

    fn __repr__(&self) -> String {
        match self.limit.burst() {
            Some(b) => format!(
                "Limit('{}', algorithm='{}', burst={b})",
                self.limit.spec(),
                self.limit.kind().name()
            ),
            None => format!(
                "Limit('{}', algorithm='{}')",
                self.limit.spec(),
                self.limit.kind().name()
            ),
        }
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyLimit>()
            .is_ok_and(|o| o.get().limit == self.limit)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let spec = self.limit.spec();
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one((
            spec.count,
            spec.period,
            self.limit.kind(),
            self.limit.burst(),
        ))
    }
}

/// Builds a limit set from a str ("10/second; 1000/day"), a `Limit`, or a sequence of either.
pub(crate) fn limit_set_arg(value: &Bound<'_, PyAny>, algorithm: &str) -> PyResult<LimitSet> {
    limit_set_of(value, algorithm.parse()?)
}

/// [`limit_set_arg`] with the algorithm parsed already.
pub(crate) fn limit_set_of(value: &Bound<'_, PyAny>, kind: AlgorithmKind) -> PyResult<LimitSet> {
    let mut limits = Vec::new();
    let mut push = |item: &Bound<'_, PyAny>| -> PyResult<()> {
        if let Ok(text) = item.cast::<PyString>() {
            let text = text.to_str().map_err(|_| surrogate_error("limits"))?;
            for spec in parse_limits(text)? {
                limits.push(Limit::new(spec, kind, None)?);
            }
        } else if let Ok(limit) = item.cast::<PyLimit>() {
            limits.push(limit.get().limit.clone());
        } else {
            return Err(PyTypeError::new_err(format!(
                "limits must be a str such as '10/second; 1000/day', a seawall.Limit, or a list \
                 of them; got {}",
                type_name(item)
            )));
        }
        Ok(())
    };
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyLimit>() {
        push(value)?;
    } else if let Ok(iter) = value.try_iter() {
        for item in iter {
            push(&item?)?;
        }
    } else {
        push(value)?;
    }
    Ok(LimitSet::new(limits)?)
}

/// A limit set as the `limits` property returns it: a list of `Limit`.
pub(crate) fn limits_list<'py>(py: Python<'py>, set: &LimitSet) -> PyResult<Bound<'py, PyList>> {
    let items = set
        .limits()
        .iter()
        .map(|l| Py::new(py, PyLimit { limit: l.clone() }))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

#[pyclass(frozen, module = "seawall._seawall", name = "Decision")]
pub(crate) struct PyDecision {
    d: Decision,
    window: Nanos,
    /// Made by a Redis limiter's `on_error` policy, not by its limits.
    fallback: bool,
}

impl PyDecision {
    pub(crate) fn from(t: LimitDecision) -> Self {
        PyDecision {
            d: t.decision,
            window: t.binding.period,
            fallback: false,
        }
    }

    /// A Redis limiter's decision, remembering whether its failure policy made it.
    pub(crate) fn from_redis(r: RedisDecision) -> Self {
        PyDecision {
            fallback: r.fallback != Fallback::None,
            ..PyDecision::from(r.decision)
        }
    }
}

#[pymethods]
impl PyDecision {
    #[getter]
    fn allowed(&self) -> bool {
        self.d.allowed
    }

    #[getter]
    fn limited(&self) -> bool {
        !self.d.allowed
    }

    #[getter]
    fn limit(&self) -> u64 {
        self.d.limit
    }

    #[getter]
    fn remaining(&self) -> u64 {
        self.d.remaining
    }

    #[getter]
    fn reset_after(&self) -> f64 {
        secs(self.d.reset_after)
    }

    #[getter]
    fn retry_after(&self) -> f64 {
        secs(self.d.retry_after)
    }

    #[getter]
    fn window(&self) -> f64 {
        nanos_to_secs(self.window)
    }

    /// Whether a Redis limiter's `on_error` made this decision (Redis failed, or the breaker
    /// around it was open): then no budget stands behind its numbers. Always false in memory.
    #[getter]
    fn fallback(&self) -> bool {
        self.fallback
    }

    fn __bool__(&self) -> bool {
        self.d.allowed
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(allowed={}, limit={}, remaining={}, reset_after={:?}, retry_after={:?}, window={:?})",
            if self.d.allowed { "True" } else { "False" },
            self.d.limit,
            self.d.remaining,
            secs(self.d.reset_after),
            secs(self.d.retry_after),
            nanos_to_secs(self.window)
        )
    }
}

fn key_stats_dict<'py>(py: Python<'py>, s: &KeyStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hits", s.total)?;
    d.set_item("limited", s.limited)?;
    d.set_item(
        "last_limited",
        (s.limited > 0).then(|| nanos_to_secs(s.last_limited)),
    )?;
    Ok(d)
}

/// `usage(key)`'s list: one dict per limit, in order.
pub(crate) fn usage_list<'py>(py: Python<'py>, usage: &[Usage]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for u in usage {
        let d = PyDict::new(py);
        d.set_item("limit", u.spec.to_string())?;
        d.set_item("used", u.used)?;
        d.set_item("remaining", u.remaining)?;
        d.set_item("reset_after", secs(u.reset_after))?;
        d.set_item("retry_after", secs(u.retry_after))?;
        list.append(d)?;
    }
    Ok(list)
}

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "Limiter")]
pub(crate) struct PyLimiter {
    limiter: Limiter,
    clock: ClockSource,
    algorithm: AlgorithmKind,
}

#[pymethods]
impl PyLimiter {
    #[new]
    #[pyo3(signature = (limits, *, algorithm=Algorithm::GCRA, max_keys=MaxKeys::DEFAULT, clock=None, top_keys=TopKeys::DEFAULT), text_signature = "(limits, *, algorithm='gcra', max_keys=1000000, clock=None, top_keys=100)")]
    fn new(
        limits: &Bound<'_, PyAny>,
        algorithm: Algorithm,
        max_keys: MaxKeys,
        clock: Option<&Bound<'_, PyAny>>,
        top_keys: TopKeys,
    ) -> PyResult<Self> {
        let algorithm = algorithm.0;
        Ok(PyLimiter {
            limiter: Limiter::new(limit_set_of(limits, algorithm)?, max_keys.0)
                .with_top_limited(top_keys.0),
            clock: ClockSource::from_arg(clock)?,
            algorithm,
        })
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn hit(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(PyDecision::from(self.limiter.hit(
            key,
            now,
            cost_arg("cost", cost)?,
        )?))
    }

    /// Decides `cost` for `key` here and `other_key` in `other` at once, all or nothing (see
    /// `Limiter::hit_with` in the core), at this limiter's clock; the binding decision.
    #[pyo3(
        signature = (key, other, other_key, cost=Count::ONE),
        text_signature = "($self, key, other, other_key, cost=1)"
    )]
    fn hit_with(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        other: &Bound<'_, PyAny>,
        other_key: &Bound<'_, PyAny>,
        cost: Count,
    ) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        let other = other.cast::<PyLimiter>().map_err(|_| {
            PyTypeError::new_err(format!("other must be a Limiter, got {}", type_name(other)))
        })?;
        let other_key = text_arg("other_key", other_key)?;
        let now = self.clock.now(py)?;
        let cost = cost_arg("cost", cost)?;
        Ok(PyDecision::from(self.limiter.hit_with(
            key,
            &other.get().limiter,
            other_key,
            now,
            cost,
        )?))
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn allow(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(self.limiter.allow(key, now, cost_arg("cost", cost)?)?)
    }

    /// The floor of any decision, for `benches/hot_path.py`: `allow`'s signature and argument
    /// extraction, then a constant; no clock, no store.
    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn _noop(&self, key: &Bound<'_, PyAny>, cost: Count) -> bool {
        let _ = (key, cost);
        true
    }

    /// The floor of an exact, thread-safe decision, for `benches/hot_path.py`: `allow`'s
    /// argument extraction, its clock read and the lookup of its key under the shard's lock;
    /// everything `allow` does but the decision and its counters.
    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn _clock_and_find(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: Count,
    ) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        let _ = cost_arg("cost", cost)?;
        std::hint::black_box(self.clock.now(py)?);
        Ok(self.limiter.contains(key))
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn test(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(PyDecision::from(self.limiter.test(
            key,
            now,
            cost_arg("cost", cost)?,
        )?))
    }

    fn reset(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        Ok(self.limiter.reset(key, self.clock.now(py)?))
    }

    #[pyo3(signature = (key, limits, *, algorithm=None))]
    fn set_override(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        limits: &Bound<'_, PyAny>,
        algorithm: Option<Algorithm>,
    ) -> PyResult<()> {
        let key = text_arg("key", key)?;
        let kind = algorithm.map_or(self.algorithm, |a| a.0);
        let set = limit_set_of(limits, kind)?;
        self.limiter.set_override(key, set, self.clock.now(py)?)?;
        Ok(())
    }

    fn clear_override(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = text_arg("key", key)?;
        self.limiter.clear_override(key, self.clock.now(py)?);
        Ok(())
    }

    fn memory_bytes(&self) -> usize {
        self.limiter.heap_bytes()
    }

    fn cleanup(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.limiter.cleanup(self.clock.now(py)?))
    }

    fn key_stats<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        self.limiter
            .key_stats(key, now)
            .map(|s| key_stats_dict(py, &s))
            .transpose()
    }

    fn usage<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        usage_list(py, &self.limiter.usage(key, now))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = self.limiter.totals();
        let d = PyDict::new(py);
        d.set_item("keys", t.keys)?;
        d.set_item("hits", t.total)?;
        d.set_item("limited", t.limited)?;
        d.set_item("evicted", t.evicted)?;
        d.set_item("evicted_before_fresh", t.evicted_early)?;
        Ok(d)
    }

    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        limits_list(py, &self.limiter.limits())
    }

    #[getter]
    fn max_keys(&self) -> usize {
        self.limiter.max_keys()
    }

    fn __len__(&self) -> usize {
        self.limiter.len()
    }

    /// The keys refused most, most first: `(key, refusals)` pairs, each count an upper bound
    /// (space-saving; see `top_limited_summary` for each key's error).
    #[pyo3(signature = (n=TopN::DEFAULT), text_signature = "($self, n=10)")]
    fn top_limited<'py>(&self, py: Python<'py>, n: TopN) -> PyResult<Bound<'py, PyList>> {
        top_list(py, self.limiter.top_limited(), n)
    }

    /// Every key counted with its count and error, the total refusals and the part of them
    /// not attributed with certainty to a key held (`other`).
    fn top_limited_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        summary_dict(py, self.limiter.top_limited())
    }

    /// Forgets the keys refused so far.
    fn reset_top_limited(&self) {
        self.limiter.top_limited().reset();
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "SlidingLogService")]
pub(crate) struct PySlidingLogService {
    service: LogService,
    clock: ClockSource,
}

#[pymethods]
impl PySlidingLogService {
    #[new]
    #[pyo3(signature = (*, max_keys=MaxKeys::DEFAULT, clock=None), text_signature = "(*, max_keys=1000000, clock=None)")]
    fn new(max_keys: MaxKeys, clock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(PySlidingLogService {
            service: LogService::new(max_keys.0),
            clock: ClockSource::from_arg(clock)?,
        })
    }

    /// Returns `(allowed, info)`, `info` as seed 004 shapes it: `limit` and `window` as given,
    /// `remaining`, `reset_time` (epoch seconds), `retry_after` (whole seconds, rounded up).
    fn check_and_record<'py>(
        &self,
        py: Python<'py>,
        client_id: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
        window: &Bound<'py, PyAny>,
    ) -> PyResult<(bool, Bound<'py, PyDict>)> {
        let client_id = text_arg("client_id", client_id)?;
        let now = self.clock.now(py)?;
        let limit_n = int_arg("limit", limit, 1, u64::MAX)?;
        let window_s = float_arg("window", window)?;
        let window_ns = crate::clock::secs_to_nanos(window_s)
            .filter(|&w| w > 0)
            .ok_or_else(|| {
                Error::invalid(
                    "window",
                    format!("must be a positive number of seconds, got {window_s}"),
                )
            })?;
        let d = self
            .service
            .check_and_record(client_id, now, limit_n, window_ns)?;
        let info = PyDict::new(py);
        info.set_item(pyo3::intern!(py, "limit"), limit)?;
        info.set_item(pyo3::intern!(py, "window"), window)?;
        info.set_item(pyo3::intern!(py, "remaining"), d.remaining)?;
        info.set_item(
            pyo3::intern!(py, "reset_time"),
            nanos_to_secs(now.saturating_add(d.reset_after)),
        )?;
        let retry = if d.allowed {
            0
        } else {
            d.retry_after.div_ceil(crate::clock::NANOS_PER_SEC)
        };
        info.set_item(pyo3::intern!(py, "retry_after"), retry)?;
        Ok((d.allowed, info))
    }

    fn reset(&self, py: Python<'_>, client_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let client_id = text_arg("client_id", client_id)?;
        Ok(self.service.reset(client_id, self.clock.now(py)?))
    }

    fn cleanup(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.service.cleanup(self.clock.now(py)?))
    }

    fn __len__(&self) -> usize {
        self.service.len()
    }
}
