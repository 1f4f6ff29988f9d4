use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::clock::ClockSource;
use crate::breaker::shared::{BreakerSync, Times};
use crate::breaker::{Breaker, BreakerConfig, Outcome, Permit, WindowKind};
use crate::clock::{self as core_clock, nanos_to_secs, secs_to_nanos, Clock, DefaultClock, Nanos};
use crate::store::redis::{runtime, RedisConfig};

struct Shared {
    sync: Arc<BreakerSync>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.sync.stop();
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "BreakerCore")]
pub(crate) struct PyBreakerCore {
    breaker: Arc<Breaker>,
    clock: ClockSource,
    shared: Option<Shared>,
}

/// The shared breaker's clock, readable off the Python thread: Redis's TIME unless a manual
/// clock is in use (then its reading is sent).
fn shared_times(clock: &ClockSource) -> PyResult<Times> {
    Ok(match clock {
        ClockSource::Manual(m) => {
            let m = m.clone();
            Box::new(move || (Some(m.now()), m.now()))
        }
        ClockSource::System => Box::new(|| (None, DefaultClock.now())),
        ClockSource::Default => Box::new(|| match core_clock::default_clock() {
            Some(m) => (Some(m.now()), m.now()),
            None => (None, DefaultClock.now()),
        }),
        ClockSource::Callable(_) => {
            return Err(PyValueError::new_err(
                "a breaker with a store needs a ManualClock, a SystemClock or the default \
                 clock, not a Python callable (the sharing runs off the Python thread)",
            ))
        }
    })
}

fn seconds(param: &'static str, value: f64) -> PyResult<Nanos> {
    secs_to_nanos(value).ok_or_else(|| {
        PyValueError::new_err(format!(
            "{param} must be a finite number of seconds, at least 0, got {value}"
        ))
    })
}

fn count(param: &'static str, value: i64) -> PyResult<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| PyValueError::new_err(format!("{param} must be at least 1, got {value}")))
}

fn secs_or_inf(n: Nanos) -> f64 {
    if n == Nanos::MAX {
        f64::INFINITY
    } else {
        nanos_to_secs(n)
    }
}

#[pymethods]
impl PyBreakerCore {
    #[new]
    #[pyo3(signature = (
        *,
        failure_threshold=5,
        success_threshold=1,
        recovery_timeout=30.0,
        half_open_max_calls=1,
        probe_timeout=None,
        failure_rate_threshold=None,
        slow_call_rate_threshold=None,
        slow_call_duration=None,
        window_type="count",
        window_size=100,
        window_duration=60.0,
        minimum_calls=10,
        backoff_multiplier=2.0,
        max_recovery_timeout=600.0,
        jitter=0.1,
        clock=None,
        store=None,
        store_key=None,
        sync_interval=0.5,
        connect_timeout=1.0,
        command_timeout=0.25,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        failure_threshold: i64,
        success_threshold: i64,
        recovery_timeout: f64,
        half_open_max_calls: i64,
        probe_timeout: Option<f64>,
        failure_rate_threshold: Option<f64>,
        slow_call_rate_threshold: Option<f64>,
        slow_call_duration: Option<f64>,
        window_type: &str,
        window_size: i64,
        window_duration: f64,
        minimum_calls: i64,
        backoff_multiplier: f64,
        max_recovery_timeout: f64,
        jitter: f64,
        clock: Option<&Bound<'_, PyAny>>,
        store: Option<&str>,
        store_key: Option<&str>,
        sync_interval: f64,
        connect_timeout: f64,
        command_timeout: f64,
    ) -> PyResult<Self> {
        let recovery = seconds("recovery_timeout", recovery_timeout)?;
        // Both window settings are checked, whichever is in use.
        let size = count("window_size", window_size)?;
        let duration = seconds("window_duration", window_duration)?;
        if duration < crate::clock::NANOS_PER_SEC {
            return Err(PyValueError::new_err(format!(
                "window_duration must be at least 1 second, got {window_duration}"
            )));
        }
        let window = match window_type {
            "count" => WindowKind::Count(size),
            "time" => WindowKind::Time(duration),
            other => {
                return Err(PyValueError::new_err(format!(
                    "window_type must be 'count' or 'time', got '{other}'"
                )))
            }
        };
        let config = BreakerConfig {
            failure_threshold: count("failure_threshold", failure_threshold)?,
            success_threshold: count("success_threshold", success_threshold)?,
            recovery_timeout: recovery,
            half_open_max_calls: count("half_open_max_calls", half_open_max_calls)?,
            probe_timeout: match probe_timeout {
                Some(t) => seconds("probe_timeout", t)?,
                // The recovery timeout, but never zero (a zero one frees every slot at once).
                None => recovery.max(crate::clock::NANOS_PER_SEC),
            },
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration: slow_call_duration
                .map(|d| seconds("slow_call_duration", d))
                .transpose()?,
            window,
            minimum_calls: count("minimum_calls", minimum_calls)?,
            backoff_multiplier,
            max_recovery_timeout: seconds("max_recovery_timeout", max_recovery_timeout)?,
            jitter,
        };
        let clock = ClockSource::from_arg(clock)?;
        let now = clock.now(py)?;
        let breaker = Arc::new(Breaker::new(config, now)?);
        let shared = match store {
            None => None,
            Some(url) => {
                let key = store_key
                    .ok_or_else(|| PyValueError::new_err("store_key is required with a store"))?;
                let positive = |name: &str, v: f64| {
                    if v.is_finite() && v >= 0.001 {
                        Ok(Duration::from_secs_f64(v))
                    } else {
                        Err(PyValueError::new_err(format!(
                            "{name} must be a finite number of seconds, at least 0.001, got {v}"
                        )))
                    }
                };
                let sync = BreakerSync::new(
                    breaker.clone(),
                    RedisConfig {
                        url: url.to_owned(),
                        connect_timeout: positive("connect_timeout", connect_timeout)?,
                        command_timeout: positive("command_timeout", command_timeout)?,
                    },
                    key.to_owned(),
                    positive("sync_interval", sync_interval)?,
                    shared_times(&clock)?,
                )?;
                sync.start();
                Some(Shared { sync })
            }
        };
        Ok(PyBreakerCore {
            breaker,
            clock,
            shared,
        })
    }

    /// Shares the breaker's state now (with a store): the seconds it stays open for everyone.
    fn sync(&self, py: Python<'_>) -> PyResult<f64> {
        let Some(shared) = &self.shared else {
            return Err(PyValueError::new_err("this breaker has no store"));
        };
        let sync = shared.sync.clone();
        sync.start(); // in a forked child, the sharing starts again there
        let r = py.detach(move || runtime::handle().block_on(sync.sync_once()));
        r.map(nanos_to_secs)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("Redis sync failed: {e}")))
    }

    fn try_acquire(&self, py: Python<'_>) -> PyResult<Permit> {
        Ok(self.breaker.try_acquire(self.clock.now(py)?))
    }

    #[pyo3(signature = (permit, outcome, duration=0.0))]
    fn record(&self, py: Python<'_>, permit: Permit, outcome: u8, duration: f64) -> PyResult<()> {
        let outcome = match outcome {
            0 => Outcome::Success,
            1 => Outcome::Failure,
            2 => Outcome::Ignored,
            other => {
                return Err(PyValueError::new_err(format!(
                    "outcome must be 0 (success), 1 (failure) or 2 (ignored), got {other}"
                )))
            }
        };
        let duration = secs_to_nanos(duration).unwrap_or(0);
        self.breaker
            .record(permit, outcome, duration, self.clock.now(py)?);
        if let Some(shared) = &self.shared {
            shared.sync.start(); // in a forked child, the sharing starts again there
            if outcome == Outcome::Failure && self.breaker.opened_since_delta() {
                // Opened here: tell the others now, not at the next interval.
                shared.sync.poke();
            }
        }
        Ok(())
    }

    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.breaker.state(self.clock.now(py)?).name())
    }

    fn retry_after(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(secs_or_inf(self.breaker.retry_after(self.clock.now(py)?)))
    }

    #[getter]
    fn transitions(&self) -> u64 {
        self.breaker.transitions()
    }

    fn last_transition(&self) -> Option<(&'static str, &'static str, &'static str, f64)> {
        self.breaker
            .last_transition()
            .map(|t| (t.from.name(), t.to.name(), t.reason, nanos_to_secs(t.at)))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let now = self.clock.now(py)?;
        let state = self.breaker.state(now);
        let (s, consecutive, time_in) = self.breaker.stats(now);
        let d = PyDict::new(py);
        d.set_item("state", state.name())?;
        d.set_item("calls", s.calls)?;
        d.set_item("successes", s.successes)?;
        d.set_item("failures", s.failures)?;
        d.set_item("ignored", s.ignored)?;
        d.set_item("slow_calls", s.slow_calls)?;
        d.set_item("rejections", s.rejections)?;
        d.set_item("opened_count", s.opened_count)?;
        d.set_item("consecutive_failures", consecutive)?;
        d.set_item("time_closed", nanos_to_secs(time_in[0]))?;
        d.set_item("time_open", nanos_to_secs(time_in[1]))?;
        d.set_item("time_half_open", nanos_to_secs(time_in[2]))?;
        let last = match self.breaker.last_transition() {
            Some(t) => {
                let l = PyDict::new(py);
                l.set_item("from", t.from.name())?;
                l.set_item("to", t.to.name())?;
                l.set_item("reason", t.reason)?;
                l.set_item("at", nanos_to_secs(t.at))?;
                Some(l)
            }
            None => None,
        };
        d.set_item("last_transition", last)?;
        if let Some(shared) = &self.shared {
            let sh = PyDict::new(py);
            let (consec, total, failed) = *shared.sync.shared.lock();
            sh.set_item("syncs", shared.sync.syncs.load(Ordering::Relaxed))?;
            sh.set_item("errors", shared.sync.errors.load(Ordering::Relaxed))?;
            sh.set_item("last_error", shared.sync.last_error.lock().clone())?;
            sh.set_item("consecutive_failures", consec)?;
            sh.set_item("window_calls", total)?;
            sh.set_item("window_failures", failed)?;
            d.set_item("shared", sh)?;
        }
        Ok(d)
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.breaker.reset(self.clock.now(py)?);
        Ok(())
    }

    fn force_open(&self, py: Python<'_>) -> PyResult<()> {
        self.breaker.force_open(self.clock.now(py)?);
        Ok(())
    }

    fn force_closed(&self, py: Python<'_>) -> PyResult<()> {
        self.breaker.force_closed(self.clock.now(py)?);
        Ok(())
    }
}
