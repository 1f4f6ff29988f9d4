use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::errors::{float_arg, seconds_arg, type_name};

use crate::clock::{self, nanos_to_secs, Clock, DefaultClock, ManualClock, Nanos, SystemClock};

#[pyclass(frozen, module = "seawall._seawall", name = "ManualClock")]
pub(crate) struct PyManualClock {
    pub(crate) inner: ManualClock,
}

fn secs_arg(param: &str, value: &Bound<'_, PyAny>) -> PyResult<Nanos> {
    seconds_arg(param, float_arg(param, value)?, 0.0)
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start=None))]
    fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let inner = match start {
            None => ManualClock::new(),
            Some(s) => ManualClock::at(secs_arg("start", s)?),
        };
        Ok(PyManualClock { inner })
    }

    fn now(&self) -> f64 {
        nanos_to_secs(self.inner.now())
    }

    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.advance(secs_arg("seconds", seconds)?);
        Ok(())
    }

    fn set(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(secs_arg("seconds", seconds)?);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={})", nanos_to_secs(self.inner.now()))
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "SystemClock")]
pub(crate) struct PySystemClock;

#[pymethods]
impl PySystemClock {
    #[new]
    fn new() -> Self {
        PySystemClock
    }

    fn now(&self) -> f64 {
        nanos_to_secs(SystemClock.now())
    }

    fn __repr__(&self) -> &'static str {
        "SystemClock()"
    }
}

#[pyfunction]
pub(crate) fn set_default_clock(
    py: Python<'_>,
    clock: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Py<PyManualClock>>> {
    let clock = clock
        .map(|c| {
            c.cast::<PyManualClock>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "clock must be a ManualClock or None, got {}",
                    type_name(c)
                ))
            })
        })
        .transpose()?;
    let previous = clock::set_default_clock(clock.map(|c| c.get().inner.clone()));
    previous
        .map(|inner| Py::new(py, PyManualClock { inner }))
        .transpose()
}

#[pyfunction]
pub(crate) fn get_default_clock(py: Python<'_>) -> PyResult<Option<Py<PyManualClock>>> {
    clock::default_clock()
        .map(|inner| Py::new(py, PyManualClock { inner }))
        .transpose()
}

/// The clock a limiter reads: the default (followed at every call), a native clock, or any Python
/// callable returning seconds since the epoch.
pub(crate) enum ClockSource {
    Default,
    Manual(ManualClock),
    System,
    Callable(Py<PyAny>),
}

impl ClockSource {
    pub(crate) fn from_arg(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(clock) = clock else {
            return Ok(ClockSource::Default);
        };
        if let Ok(manual) = clock.cast::<PyManualClock>() {
            return Ok(ClockSource::Manual(manual.get().inner.clone()));
        }
        if clock.is_instance_of::<PySystemClock>() {
            return Ok(ClockSource::System);
        }
        if let Ok(now) = clock.getattr("now") {
            if now.is_callable() {
                return Ok(ClockSource::Callable(now.unbind()));
            }
        }
        if clock.is_callable() {
            return Ok(ClockSource::Callable(clock.clone().unbind()));
        }
        Err(PyTypeError::new_err(format!(
            "clock must be a ManualClock, a SystemClock, an object with a now() method or a \
             callable returning seconds since the epoch, got {}",
            type_name(clock)
        )))
    }

    /// Inlined into every decision: the native clocks are a load or a counter read, the Python
    /// callable is called out of line.
    #[inline(always)]
    pub(crate) fn now(&self, py: Python<'_>) -> PyResult<Nanos> {
        match self {
            ClockSource::Default => Ok(DefaultClock.now()),
            ClockSource::Manual(m) => Ok(m.now()),
            ClockSource::System => Ok(SystemClock.now()),
            ClockSource::Callable(f) => call_clock(py, f),
        }
    }
}

#[inline(never)]
fn call_clock(py: Python<'_>, f: &Py<PyAny>) -> PyResult<Nanos> {
    let reading = f.call0(py)?;
    seconds_arg(
        "clock reading",
        float_arg("clock reading", reading.bind(py))?,
        0.0,
    )
}
