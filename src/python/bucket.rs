use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::clock::ClockSource;
use super::config::PyTokenBucketConfig;
use super::errors::{cost_arg, text_arg, type_name, Count};
use crate::clock::nanos_to_secs;
use crate::dropin::bucket::Bucket;
use crate::dropin::BucketStats;

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "TokenBucket")]
pub(crate) struct PyTokenBucket {
    bucket: Bucket,
    config: Mutex<Py<PyTokenBucketConfig>>,
    client_id: Py<PyString>,
    clock: ClockSource,
}

/// A `str` argument kept as the Python object, checked as [`text_arg`] checks it.
pub(crate) fn str_arg<'py>(
    param: &str,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyString>> {
    text_arg(param, value)?;
    Ok(value.cast::<PyString>()?.clone())
}

fn config_arg<'a, 'py>(
    value: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyTokenBucketConfig>> {
    value.cast::<PyTokenBucketConfig>().map_err(|_| {
        PyTypeError::new_err(format!(
            "config must be a TokenBucketConfig, got {}",
            type_name(value)
        ))
    })
}

/// The stats dict of seed 000's `TokenBucket.get_stats()`, same keys.
pub(crate) fn stats_dict<'py>(
    py: Python<'py>,
    client_id: &Bound<'py, PyAny>,
    s: &BucketStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(pyo3::intern!(py, "client_id"), client_id)?;
    d.set_item(pyo3::intern!(py, "current_tokens"), s.tokens)?;
    d.set_item(pyo3::intern!(py, "capacity"), s.capacity)?;
    d.set_item(pyo3::intern!(py, "refill_rate"), s.refill_rate)?;
    d.set_item(pyo3::intern!(py, "total_requests"), s.total)?;
    d.set_item(pyo3::intern!(py, "rejected_requests"), s.rejected)?;
    let rate = if s.total > 0 {
        s.rejected as f64 / s.total as f64
    } else {
        0.0
    };
    d.set_item(pyo3::intern!(py, "rejection_rate"), rate)?;
    d.set_item(
        pyo3::intern!(py, "last_rejection_time"),
        s.last_rejection.map(nanos_to_secs),
    )?;
    Ok(d)
}

#[pymethods]
impl PyTokenBucket {
    #[new]
    #[pyo3(signature = (config, client_id=None, *, clock=None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        client_id: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = config_arg(config)?;
        let client_id = match client_id {
            Some(c) => str_arg("client_id", c)?,
            None => PyString::new(py, "unknown"),
        };
        let clock = ClockSource::from_arg(clock)?;
        let now = clock.now(py)?;
        Ok(PyTokenBucket {
            bucket: Bucket::new(config.get().params, now),
            config: Mutex::new(config.clone().unbind()),
            client_id: client_id.unbind(),
            clock,
        })
    }

    #[pyo3(signature = (tokens=Count::ONE), text_signature = "($self, tokens=1)")]
    fn try_consume(&self, py: Python<'_>, tokens: Count) -> PyResult<bool> {
        let now = self.clock.now(py)?;
        Ok(self.bucket.consume(now, cost_arg("tokens", tokens)?)?)
    }

    fn peek_sync(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.bucket.tokens(self.clock.now(py)?))
    }

    fn reset_sync(&self, py: Python<'_>) -> PyResult<()> {
        self.bucket.reset(self.clock.now(py)?);
        Ok(())
    }

    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.bucket.stats(self.clock.now(py)?);
        stats_dict(py, self.client_id.bind(py).as_any(), &stats)
    }

    #[getter]
    fn client_id(&self, py: Python<'_>) -> Py<PyString> {
        self.client_id.clone_ref(py)
    }

    #[getter]
    fn get_config(&self, py: Python<'_>) -> Py<PyTokenBucketConfig> {
        self.config.lock().clone_ref(py)
    }

    #[setter]
    fn set_config(&self, py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<()> {
        let config = config_arg(config)?;
        let now = self.clock.now(py)?;
        let mut slot = self.config.lock();
        self.bucket.set_params(config.get().params, now);
        *slot = config.clone().unbind();
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "TokenBucket(client_id={}, tokens={})",
            self.client_id.bind(py).repr()?,
            self.bucket.tokens(self.clock.now(py)?)
        ))
    }
}
