//! `HostLimiter`: limits shared by the processes of one machine through a shared-memory
//! segment ([`crate::store::host`]). Every method answers at once, on the caller's thread.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::clock::ClockSource;
use super::errors::{at_least_one, cost_arg, text_arg, Count};
use super::limiter::{limit_set_arg, limits_list, PyDecision};
use super::top_limited::{summary_dict, top_keys_arg, top_list, TopN};
use crate::store::host::{segment, HostLimiter};

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "HostLimiter")]
pub(crate) struct PyHostLimiter {
    core: HostLimiter,
    clock: ClockSource,
}

/// The name in a `host://NAME` URL.
fn host_name(store: &str) -> PyResult<&str> {
    store.strip_prefix("host://").ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "store must be a host://NAME URL for a HostLimiter, got {store:?}"
        ))
    })
}

#[pymethods]
impl PyHostLimiter {
    #[new]
    #[pyo3(signature = (limits, *, store, algorithm="gcra", max_keys=100_000, clock=None, top_keys=100))]
    fn new(
        limits: &Bound<'_, PyAny>,
        store: &str,
        algorithm: &str,
        max_keys: i64,
        clock: Option<&Bound<'_, PyAny>>,
        top_keys: i64,
    ) -> PyResult<Self> {
        let limits = limit_set_arg(limits, algorithm)?;
        let max_keys: usize = at_least_one("max_keys", max_keys)?;
        Ok(PyHostLimiter {
            core: HostLimiter::open(host_name(store)?, limits, max_keys)?
                .with_top_limited(top_keys_arg(top_keys)?),
            clock: ClockSource::from_arg(clock)?,
        })
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn hit(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(PyDecision::from(self.core.hit(
            key,
            now,
            cost_arg("cost", cost)?,
        )?))
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn allow(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(self
            .core
            .hit(key, now, cost_arg("cost", cost)?)?
            .decision
            .allowed)
    }

    #[pyo3(signature = (key, cost=Count::ONE), text_signature = "($self, key, cost=1)")]
    fn test(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: Count) -> PyResult<PyDecision> {
        let key = text_arg("key", key)?;
        let now = self.clock.now(py)?;
        Ok(PyDecision::from(self.core.test(
            key,
            now,
            cost_arg("cost", cost)?,
        )?))
    }

    /// `hit` of `key` here and `other_key` in `other` (another HostLimiter) at once, all or
    /// nothing; the binding decision.
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
        let other = other.cast::<PyHostLimiter>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "other must be a HostLimiter, got {}",
                super::errors::type_name(other)
            ))
        })?;
        let other_key = text_arg("other_key", other_key)?;
        let now = self.clock.now(py)?;
        Ok(PyDecision::from(self.core.hit_with(
            key,
            &other.get().core,
            other_key,
            now,
            cost_arg("cost", cost)?,
        )?))
    }

    /// Makes `key` fresh again for every process; whether it was held.
    fn reset(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = text_arg("key", key)?;
        Ok(self.core.reset(key, self.clock.now(py)?))
    }

    /// This process's decisions and refusals, and the segment's keys, capacity and bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (decisions, limited) = self.core.counts();
        let d = PyDict::new(py);
        d.set_item("decisions", decisions)?;
        d.set_item("limited", limited)?;
        d.set_item("keys", self.core.len())?;
        d.set_item("capacity", self.core.capacity())?;
        d.set_item("bytes", self.core.bytes())?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.core.len()
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

    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        limits_list(py, self.core.limits())
    }

    /// The store URL.
    #[getter]
    fn store(&self) -> String {
        format!("host://{}", self.core.name())
    }

    /// The most keys the segment holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The segment's file.
    #[getter]
    fn path(&self) -> String {
        self.core.path().display().to_string()
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
            "HostLimiter([{}], store={:?})",
            limits.join(", "),
            self.store()
        )
    }
}

/// Removes the host store `name` (its shared-memory segment and its breakers' files); whether
/// there was any of it.
#[pyfunction]
pub(crate) fn remove_host_store(name: &str) -> PyResult<bool> {
    let segment = segment::remove(name)?;
    let breakers = crate::breaker::host_record::remove_all(name)?;
    Ok(segment || breakers > 0)
}
