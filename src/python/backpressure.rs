//! The backpressure handler's core for Python (`seawall.backpressure` wraps it). Python checks
//! the arguments and holds the waiters' futures; this decides.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3::IntoPyObjectExt;

use super::clock::ClockSource;
use crate::backpressure::{
    Admission, Backpressure, Capacity, Config, Order, Outcome, Strategy, Ticket,
};
use crate::clock::{nanos_to_secs, secs_to_nanos};

#[pyclass(frozen, module = "seawall._seawall", name = "BackpressureCore")]
pub(crate) struct PyBackpressureCore {
    core: Backpressure,
    clock: ClockSource,
}

/// `None` for no ticket (the common case: no list built), else the list.
fn tickets(py: Python<'_>, t: Vec<Ticket>) -> PyResult<Option<Bound<'_, PyList>>> {
    if t.is_empty() {
        Ok(None)
    } else {
        PyList::new(py, t).map(Some)
    }
}

#[pymethods]
impl PyBackpressureCore {
    #[new]
    #[pyo3(signature = (
        *, max_concurrency, max_queue, max_queue_bytes, strategy, queue_timeout, order,
        adaptive_threshold, clock=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_concurrency: &Bound<'_, PyAny>,
        max_queue: usize,
        max_queue_bytes: Option<u64>,
        strategy: &str,
        queue_timeout: Option<f64>,
        order: &str,
        adaptive_threshold: f64,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let strategy = Strategy::parse(strategy).ok_or_else(|| {
            PyValueError::new_err(format!(
                "strategy must be 'reject', 'block', 'drop_newest', 'drop_oldest' or \
                 'adaptive', got {strategy:?}"
            ))
        })?;
        let order = match order {
            "fifo" => Order::Fifo,
            "lifo" => Order::Lifo,
            other => {
                return Err(PyValueError::new_err(format!(
                    "order must be 'fifo' or 'lifo', got {other:?}"
                )))
            }
        };
        let queue_timeout = queue_timeout
            .map(|t| {
                secs_to_nanos(t).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "queue_timeout must be a finite number of seconds >= 0, got {t}"
                    ))
                })
            })
            .transpose()?;
        let capacity = match super::concurrency::adaptive_limit(max_concurrency)? {
            Some(limit) => Capacity::Adaptive(Box::new(limit.build()?)),
            None => Capacity::Fixed(max_concurrency.extract()?),
        };
        let config = Config {
            capacity,
            max_queue,
            max_queue_bytes,
            strategy,
            queue_timeout,
            order,
            adaptive_threshold,
        };
        Ok(PyBackpressureCore {
            core: Backpressure::new(config)?,
            clock: ClockSource::from_arg(clock)?,
        })
    }

    /// An int ticket to run now; `(ticket, displaced or None)` to wait; `(reason, retry_after)`
    /// refused.
    #[pyo3(signature = (size=0))]
    fn try_admit<'py>(&self, py: Python<'py>, size: u64) -> PyResult<Bound<'py, PyAny>> {
        match self.core.try_admit(size, self.clock.now(py)?) {
            Admission::Run(t) => t.into_bound_py_any(py),
            Admission::Queued { ticket, displaced } => {
                (ticket, tickets(py, displaced)?).into_bound_py_any(py)
            }
            Admission::Reject {
                reason,
                retry_after,
            } => (reason.name(), retry_after.map(nanos_to_secs)).into_bound_py_any(py),
        }
    }

    /// Ends a running item (0 success, 1 failure, 2 cancelled, 3 a failure that is a loss: shed
    /// or timed out downstream); the tickets to start, or None.
    fn release<'py>(
        &self,
        py: Python<'py>,
        ticket: Ticket,
        outcome: u8,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let outcome = match outcome {
            0 => Outcome::Success,
            1 => Outcome::Failure,
            2 => Outcome::Cancelled,
            3 => {
                let started = self.core.release_lost(ticket, self.clock.now(py)?)?;
                return tickets(py, started);
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "outcome must be 0 (success), 1 (failure), 2 (cancelled) or 3 (lost), got \
                     {other}"
                )))
            }
        };
        let started = self.core.release(ticket, outcome, self.clock.now(py)?)?;
        tickets(py, started)
    }

    /// A waiter gave up: `None` if it was not waiting, else the tickets to start (a list).
    fn cancel<'py>(&self, py: Python<'py>, ticket: Ticket) -> PyResult<Option<Bound<'py, PyList>>> {
        match self.core.cancel(ticket, self.clock.now(py)?) {
            None => Ok(None),
            Some(started) => PyList::new(py, started).map(Some),
        }
    }

    /// The waiters whose queue timeout has passed (they are ended as timed out).
    fn expire<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.expire(self.clock.now(py)?))
    }

    /// Seconds until the next waiter times out on the handler's clock (0 if one is due), or None.
    fn next_timeout(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let Some(deadline) = self.core.next_deadline() else {
            return Ok(None);
        };
        Ok(Some(nanos_to_secs(
            deadline.saturating_sub(self.clock.now(py)?),
        )))
    }

    fn start_ready<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.start_ready(self.clock.now(py)?))
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.close())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &self.core.snapshot())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn now(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(nanos_to_secs(self.clock.now(py)?))
    }

    #[getter]
    fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    #[getter]
    fn queued(&self) -> usize {
        self.core.queued()
    }

    #[getter]
    fn waiting(&self) -> usize {
        self.core.waiting()
    }

    #[getter]
    fn queued_bytes(&self) -> u64 {
        self.core.queued_bytes()
    }

    #[getter]
    fn limit(&self) -> usize {
        self.core.limit()
    }
}
