//! Adaptive concurrency for Python (`seawall.concurrency` wraps it): the limit algorithms as
//! frozen settings, and the limiter's core, whose permits and tickets are ints. (About 480
//! lines, most of them the two settings classes' arguments and getters, each checked and named
//! in errors; the core's calls are thin.)

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::breaker::Arg;
use super::clock::ClockSource;
use super::errors::{at_least_one_error, seconds_error, type_name};
use crate::clock::{nanos_to_secs, secs_to_nanos, Nanos};
use crate::concurrency::{
    Admission, AimdConfig, ConcurrencyLimiter, GradientConfig, LimitAlgorithm, LimitConfig,
    LimiterConfig, Outcome, Permit, Woken,
};

fn count(param: &'static str, value: Arg<i64>) -> PyResult<u32> {
    match value {
        Arg::Is(v) if v < 1 => Err(at_least_one_error(param, &v)),
        Arg::Is(v) => u32::try_from(v).map_err(|_| {
            PyValueError::new_err(format!("{param} must be at most {}, got {v}", u32::MAX))
        }),
        Arg::Huge(text) => Err(PyValueError::new_err(format!(
            "{param} must be an int from 1 to {}, got {text}",
            u32::MAX
        ))),
        Arg::Wrong(t) => Err(PyTypeError::new_err(format!(
            "{param} must be an int, got {t}"
        ))),
    }
}

fn number(param: &'static str, value: Arg<f64>) -> PyResult<f64> {
    match value {
        Arg::Is(v) => Ok(v),
        Arg::Huge(text) => Err(PyValueError::new_err(format!(
            "{param} must be a finite number, got {text}"
        ))),
        Arg::Wrong(t) => Err(PyTypeError::new_err(format!(
            "{param} must be a number, got {t}"
        ))),
    }
}

/// A positive number of seconds.
fn seconds(param: &'static str, value: Arg<f64>) -> PyResult<Nanos> {
    let v = number(param, value)?;
    match secs_to_nanos(v) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "{param} must be a finite number of seconds above 0, got {v}"
        ))),
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "AIMDLimit")]
pub(crate) struct PyAimdLimit {
    config: AimdConfig,
}

#[pymethods]
impl PyAimdLimit {
    #[new]
    #[pyo3(signature = (initial=Arg::Is(20), *, min_limit=Arg::Is(1), max_limit=Arg::Is(200),
        backoff_ratio=Arg::Is(0.9), increase_by=Arg::Is(1), timeout=Arg::Is(5.0)),
        text_signature = "(initial=20, *, min_limit=1, max_limit=200, backoff_ratio=0.9, \
        increase_by=1, timeout=5.0)")]
    fn new(
        initial: Arg<i64>,
        min_limit: Arg<i64>,
        max_limit: Arg<i64>,
        backoff_ratio: Arg<f64>,
        increase_by: Arg<i64>,
        timeout: Arg<f64>,
    ) -> PyResult<Self> {
        let config = AimdConfig {
            initial: count("initial", initial)?,
            min_limit: count("min_limit", min_limit)?,
            max_limit: count("max_limit", max_limit)?,
            backoff_ratio: number("backoff_ratio", backoff_ratio)?,
            increase_by: count("increase_by", increase_by)?,
            timeout: seconds("timeout", timeout)?,
        };
        Ok(PyAimdLimit {
            config: config.validate()?,
        })
    }

    #[getter]
    fn initial(&self) -> u32 {
        self.config.initial
    }
    #[getter]
    fn min_limit(&self) -> u32 {
        self.config.min_limit
    }
    #[getter]
    fn max_limit(&self) -> u32 {
        self.config.max_limit
    }
    #[getter]
    fn backoff_ratio(&self) -> f64 {
        self.config.backoff_ratio
    }
    #[getter]
    fn increase_by(&self) -> u32 {
        self.config.increase_by
    }
    #[getter]
    fn timeout(&self) -> f64 {
        nanos_to_secs(self.config.timeout)
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        format!(
            "AIMDLimit({}, min_limit={}, max_limit={}, backoff_ratio={}, increase_by={}, \
             timeout={})",
            c.initial,
            c.min_limit,
            c.max_limit,
            c.backoff_ratio,
            c.increase_by,
            nanos_to_secs(c.timeout)
        )
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "GradientLimit")]
pub(crate) struct PyGradientLimit {
    config: GradientConfig,
}

#[pymethods]
impl PyGradientLimit {
    #[new]
    #[pyo3(signature = (initial=Arg::Is(20), *, min_limit=Arg::Is(1), max_limit=Arg::Is(200),
        smoothing=Arg::Is(0.2), rtt_tolerance=Arg::Is(1.5), long_window=Arg::Is(600),
        queue_size=Arg::Is(4)),
        text_signature = "(initial=20, *, min_limit=1, max_limit=200, smoothing=0.2, \
        rtt_tolerance=1.5, long_window=600, queue_size=4)")]
    fn new(
        initial: Arg<i64>,
        min_limit: Arg<i64>,
        max_limit: Arg<i64>,
        smoothing: Arg<f64>,
        rtt_tolerance: Arg<f64>,
        long_window: Arg<i64>,
        queue_size: Arg<i64>,
    ) -> PyResult<Self> {
        let config = GradientConfig {
            initial: count("initial", initial)?,
            min_limit: count("min_limit", min_limit)?,
            max_limit: count("max_limit", max_limit)?,
            smoothing: number("smoothing", smoothing)?,
            rtt_tolerance: number("rtt_tolerance", rtt_tolerance)?,
            long_window: count("long_window", long_window)?,
            queue_size: count("queue_size", queue_size)?,
        };
        Ok(PyGradientLimit {
            config: config.validate()?,
        })
    }

    #[getter]
    fn initial(&self) -> u32 {
        self.config.initial
    }
    #[getter]
    fn min_limit(&self) -> u32 {
        self.config.min_limit
    }
    #[getter]
    fn max_limit(&self) -> u32 {
        self.config.max_limit
    }
    #[getter]
    fn smoothing(&self) -> f64 {
        self.config.smoothing
    }
    #[getter]
    fn rtt_tolerance(&self) -> f64 {
        self.config.rtt_tolerance
    }
    #[getter]
    fn long_window(&self) -> u32 {
        self.config.long_window
    }
    #[getter]
    fn queue_size(&self) -> u32 {
        self.config.queue_size
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        format!(
            "GradientLimit({}, min_limit={}, max_limit={}, smoothing={}, rtt_tolerance={}, \
             long_window={}, queue_size={})",
            c.initial,
            c.min_limit,
            c.max_limit,
            c.smoothing,
            c.rtt_tolerance,
            c.long_window,
            c.queue_size
        )
    }
}

/// An algorithm's settings if `limit` is a `GradientLimit` or an `AIMDLimit`.
pub(crate) fn adaptive_limit(limit: &Bound<'_, PyAny>) -> PyResult<Option<LimitConfig>> {
    if let Ok(g) = limit.cast::<PyGradientLimit>() {
        return Ok(Some(LimitConfig::Gradient(g.get().config.clone())));
    }
    if let Ok(a) = limit.cast::<PyAimdLimit>() {
        return Ok(Some(LimitConfig::Aimd(a.get().config.clone())));
    }
    Ok(None)
}

/// A `limit=` argument: an algorithm's settings, or an int for a fixed limit.
pub(crate) fn limit_config(limit: &Bound<'_, PyAny>) -> PyResult<LimitConfig> {
    if let Some(config) = adaptive_limit(limit)? {
        return Ok(config);
    }
    match limit.extract::<Arg<i64>>()? {
        Arg::Wrong(t) => Err(PyTypeError::new_err(format!(
            "limit must be a GradientLimit, an AIMDLimit or an int, got {t}"
        ))),
        other => Ok(LimitConfig::Fixed(count("limit", other)?)),
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "ConcurrencyCore")]
pub(crate) struct PyConcurrencyCore {
    limiter: ConcurrencyLimiter,
    clock: ClockSource,
}

impl PyConcurrencyCore {
    fn partition(&self, partition: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
        let Some(name) = partition else {
            return Ok(None);
        };
        let name = name.extract::<&str>().map_err(|_| {
            PyTypeError::new_err(format!(
                "partition must be a str or None, got {}",
                type_name(name)
            ))
        })?;
        match self.limiter.partition(name) {
            Some(i) => Ok(Some(i)),
            None => Err(PyValueError::new_err(format!(
                "partition {name:?} is not one of this limiter's partitions"
            ))),
        }
    }
}

fn woken<'py>(py: Python<'py>, w: Woken) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if w.is_empty() {
        return Ok(None);
    }
    let granted = PyList::new(py, w.granted.iter().map(|(t, p)| (*t, p.0)))?;
    let expired = PyList::new(py, w.expired)?;
    Ok(Some(PyTuple::new(
        py,
        [granted.into_any(), expired.into_any()],
    )?))
}

#[pymethods]
impl PyConcurrencyCore {
    #[new]
    #[pyo3(signature = (limit, *, max_queue=Arg::Is(0), queue_timeout=None, partitions=None,
        clock=None), text_signature = "(limit, *, max_queue=0, queue_timeout=None, \
        partitions=None, clock=None)")]
    fn new(
        limit: &Bound<'_, PyAny>,
        max_queue: Arg<i64>,
        queue_timeout: Option<Arg<f64>>,
        partitions: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let limit = limit_config(limit)?;
        let max_queue = match max_queue {
            Arg::Is(v) if (0..=i64::from(u32::MAX)).contains(&v) => v as u32,
            Arg::Wrong(t) => {
                return Err(PyTypeError::new_err(format!(
                    "max_queue must be an int, got {t}"
                )))
            }
            Arg::Is(v) => return Err(max_queue_error(&v)),
            Arg::Huge(text) => return Err(max_queue_error(&text)),
        };
        let queue_timeout = queue_timeout
            .map(|t| seconds("queue_timeout", t))
            .transpose()?;
        let partitions = match partitions {
            None => Vec::new(),
            Some(p) => shares(p)?,
        };
        let limiter = ConcurrencyLimiter::new(LimiterConfig {
            limit,
            max_queue,
            queue_timeout,
            partitions,
        })?;
        Ok(PyConcurrencyCore {
            limiter,
            clock: ClockSource::from_arg(clock)?,
        })
    }

    /// A permit id, or 0 when refused.
    #[pyo3(signature = (partition=None))]
    fn try_acquire(&self, py: Python<'_>, partition: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let p = self.partition(partition)?;
        let now = self.clock.now(py)?;
        Ok(self
            .limiter
            .try_acquire(p, now)
            .map_or(0, |permit| permit.0))
    }

    /// `(code, expired tickets)`: code > 0 a permit id, < 0 minus a queued ticket, 0 refused.
    #[pyo3(signature = (partition=None, timeout=None))]
    fn acquire(
        &self,
        py: Python<'_>,
        partition: Option<&Bound<'_, PyAny>>,
        timeout: Option<Arg<f64>>,
    ) -> PyResult<(i64, Vec<u64>)> {
        let p = self.partition(partition)?;
        let timeout = match timeout {
            None => None,
            Some(t) => {
                let v = number("timeout", t)?;
                Some(secs_to_nanos(v).ok_or_else(|| seconds_error("timeout", &v, 0.0))?)
            }
        };
        let now = self.clock.now(py)?;
        let (admission, expired) = self.limiter.acquire(p, now, timeout);
        let code = match admission {
            Admission::Granted(permit) => permit.0 as i64,
            Admission::Queued(ticket) => -(ticket as i64),
            Admission::Rejected => 0,
        };
        Ok((code, expired))
    }

    /// Returns a permit: outcome 0 success, 1 dropped, 2 ignore; `rtt` in seconds (`None`:
    /// measured on the limiter's clock). `None`, or `(granted [(ticket, permit)], expired)`.
    #[pyo3(signature = (permit, outcome, rtt=None))]
    fn release<'py>(
        &self,
        py: Python<'py>,
        permit: u64,
        outcome: u8,
        rtt: Option<Arg<f64>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let outcome = match outcome {
            0 => Outcome::Success,
            1 => Outcome::Dropped,
            2 => Outcome::Ignore,
            other => {
                return Err(PyValueError::new_err(format!(
                    "outcome must be 0 (success), 1 (dropped) or 2 (ignore), got {other}"
                )))
            }
        };
        let rtt = match rtt {
            None => None,
            Some(r) => {
                let v = number("rtt", r)?;
                Some(secs_to_nanos(v).ok_or_else(|| seconds_error("rtt", &v, 0.0))?)
            }
        };
        let now = self.clock.now(py)?;
        woken(py, self.limiter.release(Permit(permit), outcome, rtt, now))
    }

    /// Removes a queued waiter; `False` if it is no longer queued.
    #[pyo3(signature = (ticket, timed_out=false))]
    fn cancel(&self, ticket: u64, timed_out: bool) -> bool {
        self.limiter.cancel(ticket, timed_out)
    }

    #[getter]
    fn limit(&self) -> u32 {
        self.limiter.limit()
    }

    #[getter]
    fn in_flight(&self) -> u32 {
        self.limiter.in_flight()
    }

    #[getter]
    fn queued(&self) -> u32 {
        self.limiter.queued()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.limiter.stats();
        let d = PyDict::new(py);
        d.set_item("limit", s.limit)?;
        d.set_item("in_flight", s.in_flight)?;
        d.set_item("queued", s.queued)?;
        d.set_item("acquired", s.acquired)?;
        d.set_item("rejected", s.rejected)?;
        d.set_item("timed_out", s.timed_out)?;
        d.set_item("cancelled", s.cancelled)?;
        d.set_item("successes", s.successes)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("ignored", s.ignored)?;
        d.set_item("peak_in_flight", s.peak_in_flight)?;
        let waits = pythonize::pythonize(py, &self.limiter.wait_seconds())
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        d.set_item("wait_seconds", waits)?;
        self.limiter.with_algorithm(|a| -> PyResult<()> {
            d.set_item("algorithm", a.name())?;
            if let LimitAlgorithm::Gradient(g) = a {
                d.set_item("estimate", g.estimate())?;
                d.set_item("long_rtt", g.long_rtt() / 1e9)?;
                d.set_item("last_rtt", nanos_to_secs(g.last_rtt()))?;
            }
            Ok(())
        })?;
        let parts = PyDict::new(py);
        for (name, share, guaranteed, in_flight) in self.limiter.partitions() {
            let p = PyDict::new(py);
            p.set_item("share", share)?;
            p.set_item("guaranteed", guaranteed)?;
            p.set_item("in_flight", in_flight)?;
            parts.set_item(name, p)?;
        }
        d.set_item("partitions", parts)?;
        Ok(d)
    }
}

#[cold]
fn max_queue_error(got: &dyn std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!(
        "max_queue must be an int from 0 to {}, got {got}",
        u32::MAX
    ))
}

/// A `partitions=` mapping of names to shares.
fn shares(p: &Bound<'_, PyAny>) -> PyResult<Vec<(String, f64)>> {
    let items = p
        .call_method0("items")
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "partitions must be a mapping of names to shares, got {}",
                type_name(p)
            ))
        })?
        .try_iter()?;
    let mut out = Vec::new();
    for item in items {
        let (name, share): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let name: String = name.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "partitions' names must be str, got {}",
                type_name(&name)
            ))
        })?;
        let share = match share.extract::<Arg<f64>>()? {
            Arg::Is(v) if v.is_finite() => v,
            Arg::Is(v) => {
                return Err(PyValueError::new_err(format!(
                    "partitions' shares must be from 0 to 1, got {v} for {name:?}"
                )))
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "partitions' shares must be numbers from 0 to 1, got {} for {name:?}",
                    type_name(&share)
                )))
            }
        };
        out.push((name, share));
    }
    Ok(out)
}
