use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyDict, PyList, PyString};

use super::bucket::stats_dict;
use super::clock::ClockSource;
use super::config::PyTokenBucketConfig;
use super::errors::{cost_arg, text_arg, type_name, Count, MaxClients};
use super::top_limited::{summary_dict, top_list, TopKeys, TopN};
use crate::dropin::client::ClientLimiter;
use crate::metrics::top_limited::TopLimited;

#[pyclass(
    frozen,
    subclass,
    module = "seawall._seawall",
    name = "ClientRateLimiter"
)]
pub(crate) struct PyClientRateLimiter {
    limiter: ClientLimiter,
    default_config: Py<PyTokenBucketConfig>,
    cleanup_interval: Py<PyDelta>,
    clock: ClockSource,
    /// The client ids refused most.
    top_limited: TopLimited,
}

fn config_arg<'a, 'py>(
    param: &str,
    value: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyTokenBucketConfig>> {
    value.cast::<PyTokenBucketConfig>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{param} must be a TokenBucketConfig, got {}",
            type_name(value)
        ))
    })
}

#[pymethods]
impl PyClientRateLimiter {
    #[new]
    #[pyo3(signature = (default_config, cleanup_interval=None, *, max_clients=MaxClients::DEFAULT, clock=None, top_keys=TopKeys::DEFAULT), text_signature = "(default_config, cleanup_interval=None, *, max_clients=1000000, clock=None, top_keys=100)")]
    fn new(
        py: Python<'_>,
        default_config: &Bound<'_, PyAny>,
        cleanup_interval: Option<&Bound<'_, PyAny>>,
        max_clients: MaxClients,
        clock: Option<&Bound<'_, PyAny>>,
        top_keys: TopKeys,
    ) -> PyResult<Self> {
        let default_config = config_arg("default_config", default_config)?;
        let cleanup_interval = match cleanup_interval {
            None => PyDelta::new(py, 0, 3600, 0, false)?,
            Some(v) => v.cast::<PyDelta>().cloned().map_err(|_| {
                PyTypeError::new_err(format!(
                    "cleanup_interval must be a datetime.timedelta, got {}",
                    type_name(v)
                ))
            })?,
        };
        let interval_secs: f64 = cleanup_interval
            .call_method0(pyo3::intern!(py, "total_seconds"))?
            .extract()?;
        if interval_secs <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "cleanup_interval must be a positive timedelta, got {interval_secs} seconds"
            )));
        }
        Ok(PyClientRateLimiter {
            limiter: ClientLimiter::new(default_config.get().params, max_clients.0),
            default_config: default_config.clone().unbind(),
            cleanup_interval: cleanup_interval.unbind(),
            clock: ClockSource::from_arg(clock)?,
            top_limited: TopLimited::new(top_keys.0),
        })
    }

    #[pyo3(signature = (client_id, tokens=Count::ONE), text_signature = "($self, client_id, tokens=1)")]
    fn try_consume(
        &self,
        py: Python<'_>,
        client_id: &Bound<'_, PyAny>,
        tokens: Count,
    ) -> PyResult<bool> {
        let client_id = text_arg("client_id", client_id)?;
        let now = self.clock.now(py)?;
        let ok = self
            .limiter
            .consume(client_id, now, cost_arg("tokens", tokens)?)?;
        if !ok {
            self.top_limited.record(client_id);
        }
        Ok(ok)
    }

    #[pyo3(signature = (client_id, tokens=Count::ONE), text_signature = "($self, client_id, tokens=1)")]
    fn check_limit_sync(
        &self,
        py: Python<'_>,
        client_id: &Bound<'_, PyAny>,
        tokens: Count,
    ) -> PyResult<bool> {
        let client_id = text_arg("client_id", client_id)?;
        let now = self.clock.now(py)?;
        Ok(self
            .limiter
            .check(client_id, now, cost_arg("tokens", tokens)?)?)
    }

    fn peek_sync(&self, py: Python<'_>, client_id: &Bound<'_, PyAny>) -> PyResult<f64> {
        let client_id = text_arg("client_id", client_id)?;
        Ok(self.limiter.tokens(client_id, self.clock.now(py)?))
    }

    fn set_client_config_sync(
        &self,
        py: Python<'_>,
        client_id: &Bound<'_, PyAny>,
        config: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let client_id = text_arg("client_id", client_id)?;
        let config = config_arg("config", config)?;
        let now = self.clock.now(py)?;
        self.limiter
            .set_config(client_id, config.get().params, now)?;
        Ok(())
    }

    fn get_client_stats_sync<'py>(
        &self,
        py: Python<'py>,
        client_id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let id = text_arg("client_id", client_id)?;
        let now = self.clock.now(py)?;
        self.limiter
            .stats(id, now)
            .map(|s| stats_dict(py, client_id, &s))
            .transpose()
    }

    fn get_all_stats_sync<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let now = self.clock.now(py)?;
        let (clients, totals) = self.limiter.all_stats(now);
        let per_client = PyDict::new(py);
        for (id, stats) in &clients {
            let key = PyString::new(py, id);
            per_client.set_item(&key, stats_dict(py, key.as_any(), stats)?)?;
        }
        let d = PyDict::new(py);
        d.set_item("total_clients", totals.keys)?;
        d.set_item("total_requests", totals.total)?;
        d.set_item("total_rejected", totals.limited)?;
        let rate = if totals.total > 0 {
            totals.limited as f64 / totals.total as f64
        } else {
            0.0
        };
        d.set_item("global_rejection_rate", rate)?;
        d.set_item("clients", per_client)?;
        d.set_item("evicted_clients", totals.evicted)?;
        d.set_item("evicted_before_full", totals.evicted_early)?;
        Ok(d)
    }

    fn reset_client_sync(&self, py: Python<'_>, client_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = text_arg("client_id", client_id)?;
        let now = self.clock.now(py)?;
        Ok(self.limiter.reset(id, now))
    }

    fn cleanup(&self, py: Python<'_>) -> PyResult<usize> {
        let now = self.clock.now(py)?;
        Ok(self.limiter.cleanup(now))
    }

    fn memory_bytes(&self) -> usize {
        self.limiter.heap_bytes()
    }

    #[getter]
    fn default_config(&self, py: Python<'_>) -> Py<PyTokenBucketConfig> {
        self.default_config.clone_ref(py)
    }

    #[getter]
    fn cleanup_interval(&self, py: Python<'_>) -> Py<PyDelta> {
        self.cleanup_interval.clone_ref(py)
    }

    #[getter]
    fn max_clients(&self) -> usize {
        self.limiter.max_clients()
    }

    fn __len__(&self) -> usize {
        self.limiter.len()
    }

    /// The client ids refused most, most first: `(client_id, refusals)` pairs, each count an
    /// upper bound (space-saving; see `top_limited_summary` for each id's error).
    #[pyo3(signature = (n=TopN::DEFAULT), text_signature = "($self, n=10)")]
    fn top_limited<'py>(&self, py: Python<'py>, n: TopN) -> PyResult<Bound<'py, PyList>> {
        top_list(py, &self.top_limited, n)
    }

    /// Every id counted with its count and error, the total refusals and `other`.
    fn top_limited_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        summary_dict(py, &self.top_limited)
    }

    /// Forgets the ids refused so far.
    fn reset_top_limited(&self) {
        self.top_limited.reset();
    }
}
