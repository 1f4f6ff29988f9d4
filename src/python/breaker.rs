//! The circuit breaker's core for Python (`seawall.breaker` wraps it): its arguments, each checked
//! and named in errors, and its calls. (About 470 lines, most of them the argument checks.)

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::errors::{at_least_one_error, seconds_error};
use pyo3::types::{PyBool, PyDict};

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
    log: super::logs::BreakerLog,
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

/// An argument as Python passed it, so that the constructor's checks answer with a
/// `ValueError` / `TypeError` whose *message* names the parameter. (pyo3 names a parameter that
/// fails to extract only in a note, and an int beyond 64 bits would be a bare `OverflowError`.)
pub(crate) enum Arg<T> {
    /// It extracted.
    Is(T),
    /// An int (or a number) too large for `T`, as its text.
    Huge(String),
    /// Not the kind of value wanted: the name of its type (`"None"` for `None`).
    Wrong(String),
}

impl<'a, 'py, T> FromPyObject<'a, 'py> for Arg<T>
where
    T: FromPyObject<'a, 'py>,
    T::Error: Into<PyErr>,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        // A bool is an int to Python, and never a count or a number of seconds.
        if obj.is_instance_of::<PyBool>() {
            return Ok(Arg::Wrong("bool".to_owned()));
        }
        match obj.extract::<T>().map_err(Into::into) {
            Ok(v) => Ok(Arg::Is(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(py) => {
                let text = obj.str()?.to_string();
                let digits = text.trim_start_matches('-').len();
                Ok(Arg::Huge(if digits > 24 {
                    format!("{}... ({digits} digits)", &text[..text.len() - digits + 12])
                } else {
                    text
                }))
            }
            Err(e) if e.is_instance_of::<PyTypeError>(py) => Ok(Arg::Wrong(if obj.is_none() {
                "None".to_owned()
            } else {
                obj.get_type().name()?.to_string()
            })),
            Err(e) => Err(e),
        }
    }
}

fn seconds(param: &'static str, value: Arg<f64>) -> PyResult<Nanos> {
    let invalid = |got: &dyn std::fmt::Display| seconds_error(param, got, 0.0);
    let too_long = |got: &dyn std::fmt::Display| {
        PyValueError::new_err(format!(
            "{param} must be at most {} seconds (584 years), got {got}",
            Nanos::MAX / crate::clock::NANOS_PER_SEC
        ))
    };
    match value {
        Arg::Is(v) if v.is_finite() && v > 0.0 => secs_to_nanos(v).ok_or_else(|| too_long(&v)),
        Arg::Is(v) => secs_to_nanos(v).ok_or_else(|| invalid(&v)),
        Arg::Huge(text) if !text.starts_with('-') => Err(too_long(&text)),
        Arg::Huge(text) => Err(invalid(&text)),
        Arg::Wrong(t) => Err(PyTypeError::new_err(format!(
            "{param} must be a number of seconds, got {t}"
        ))),
    }
}

/// A number whose range the breaker's config checks (a fraction, a multiplier).
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

fn count(param: &'static str, value: Arg<i64>) -> PyResult<u32> {
    let too_big = |got: &dyn std::fmt::Display| {
        PyValueError::new_err(format!("{param} must be at most {}, got {got}", u32::MAX))
    };
    match value {
        Arg::Is(v) if v < 1 => Err(at_least_one_error(param, &v)),
        Arg::Is(v) => u32::try_from(v).map_err(|_| too_big(&v)),
        Arg::Huge(text) if text.starts_with('-') => Err(at_least_one_error(param, &text)),
        Arg::Huge(text) => Err(too_big(&text)),
        Arg::Wrong(t) => Err(PyTypeError::new_err(format!(
            "{param} must be an int, got {t}"
        ))),
    }
}

fn text(param: &'static str, value: Arg<String>) -> PyResult<String> {
    let wrong = |t: &str| PyTypeError::new_err(format!("{param} must be a str, got {t}"));
    match value {
        Arg::Is(s) => Ok(s),
        Arg::Wrong(t) => Err(wrong(&t)),
        Arg::Huge(_) => Err(wrong("int")),
    }
}

/// A Redis timing (`sync_interval`, `connect_timeout`, `command_timeout`): checked with or
/// without a store.
fn redis_seconds(param: &'static str, value: Arg<f64>) -> PyResult<f64> {
    match value {
        Arg::Is(v) if v.is_finite() && v >= 0.001 => Ok(v),
        other => {
            let got = match other {
                Arg::Is(v) => v.to_string(),
                Arg::Huge(text) => text,
                Arg::Wrong(t) => {
                    return Err(PyTypeError::new_err(format!(
                        "{param} must be a number of seconds, got {t}"
                    )))
                }
            };
            Err(seconds_error(param, &got, 0.001))
        }
    }
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
        failure_threshold=Arg::Is(5),
        success_threshold=Arg::Is(1),
        recovery_timeout=Arg::Is(30.0),
        half_open_max_calls=Arg::Is(1),
        probe_timeout=None,
        failure_rate_threshold=None,
        slow_call_rate_threshold=None,
        slow_call_duration=None,
        window_type=Arg::Is("count".to_owned()),
        window_size=Arg::Is(100),
        window_duration=Arg::Is(60.0),
        minimum_calls=Arg::Is(10),
        backoff_multiplier=Arg::Is(2.0),
        max_recovery_timeout=Arg::Is(600.0),
        jitter=Arg::Is(0.1),
        clock=None,
        store=None,
        store_key=None,
        sync_interval=Arg::Is(0.5),
        connect_timeout=Arg::Is(1.0),
        command_timeout=Arg::Is(0.25),
    ), text_signature = "(*, failure_threshold=5, success_threshold=1, recovery_timeout=30.0, \
        half_open_max_calls=1, probe_timeout=None, failure_rate_threshold=None, \
        slow_call_rate_threshold=None, slow_call_duration=None, window_type='count', \
        window_size=100, window_duration=60.0, minimum_calls=10, backoff_multiplier=2.0, \
        max_recovery_timeout=600.0, jitter=0.1, clock=None, store=None, store_key=None, \
        sync_interval=0.5, connect_timeout=1.0, command_timeout=0.25)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        failure_threshold: Arg<i64>,
        success_threshold: Arg<i64>,
        recovery_timeout: Arg<f64>,
        half_open_max_calls: Arg<i64>,
        probe_timeout: Option<Arg<f64>>,
        failure_rate_threshold: Option<Arg<f64>>,
        slow_call_rate_threshold: Option<Arg<f64>>,
        slow_call_duration: Option<Arg<f64>>,
        window_type: Arg<String>,
        window_size: Arg<i64>,
        window_duration: Arg<f64>,
        minimum_calls: Arg<i64>,
        backoff_multiplier: Arg<f64>,
        max_recovery_timeout: Arg<f64>,
        jitter: Arg<f64>,
        clock: Option<&Bound<'_, PyAny>>,
        store: Option<Arg<String>>,
        store_key: Option<Arg<String>>,
        sync_interval: Arg<f64>,
        connect_timeout: Arg<f64>,
        command_timeout: Arg<f64>,
    ) -> PyResult<Self> {
        // Every argument is checked, in order, whichever of them is in use.
        let failure_threshold = count("failure_threshold", failure_threshold)?;
        let success_threshold = count("success_threshold", success_threshold)?;
        let recovery = seconds("recovery_timeout", recovery_timeout)?;
        let half_open_max_calls = count("half_open_max_calls", half_open_max_calls)?;
        let probe_timeout = probe_timeout
            .map(|t| seconds("probe_timeout", t))
            .transpose()?;
        let failure_rate_threshold = failure_rate_threshold
            .map(|r| number("failure_rate_threshold", r))
            .transpose()?;
        let slow_call_rate_threshold = slow_call_rate_threshold
            .map(|r| number("slow_call_rate_threshold", r))
            .transpose()?;
        let slow_call_duration = slow_call_duration
            .map(|d| seconds("slow_call_duration", d))
            .transpose()?;
        let window_type = text("window_type", window_type)?;
        let size = count("window_size", window_size)?;
        let duration = seconds("window_duration", window_duration)?;
        if duration < crate::clock::NANOS_PER_SEC {
            return Err(PyValueError::new_err(format!(
                "window_duration must be at least 1 second, got {}",
                nanos_to_secs(duration)
            )));
        }
        let window = match window_type.as_str() {
            "count" => WindowKind::Count(size),
            "time" => WindowKind::Time(duration),
            other => {
                return Err(PyValueError::new_err(format!(
                    "window_type must be 'count' or 'time', got '{other}'"
                )))
            }
        };
        let minimum_calls = count("minimum_calls", minimum_calls)?;
        let backoff_multiplier = number("backoff_multiplier", backoff_multiplier)?;
        let max_recovery_timeout = seconds("max_recovery_timeout", max_recovery_timeout)?;
        let jitter = number("jitter", jitter)?;
        let store = store.map(|s| text("store", s)).transpose()?;
        let store_key = store_key.map(|k| text("store_key", k)).transpose()?;
        let sync_interval = redis_seconds("sync_interval", sync_interval)?;
        let connect_timeout = redis_seconds("connect_timeout", connect_timeout)?;
        let command_timeout = redis_seconds("command_timeout", command_timeout)?;
        let config = BreakerConfig {
            failure_threshold,
            success_threshold,
            recovery_timeout: recovery,
            half_open_max_calls,
            probe_timeout: match probe_timeout {
                Some(t) => t,
                // The recovery timeout, but never zero (a zero one frees every slot at once).
                None => recovery.max(crate::clock::NANOS_PER_SEC),
            },
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration,
            window,
            minimum_calls,
            backoff_multiplier,
            max_recovery_timeout,
            jitter,
        };
        let clock = ClockSource::from_arg(clock)?;
        let now = clock.now(py).map_err(|e| {
            // A callable clock is read now: one that cannot be called, or returns no number.
            if e.is_instance_of::<PyTypeError>(py) {
                let named = PyTypeError::new_err(format!(
                    "clock must return the time in seconds (a number); reading it failed: {e}"
                ));
                named.set_cause(py, Some(e));
                named
            } else {
                e
            }
        })?;
        let breaker = Arc::new(Breaker::new(config, now)?);
        let shared = match store.as_deref() {
            None => None,
            Some(url) => {
                let key = store_key
                    .ok_or_else(|| PyValueError::new_err("store_key is required with a store"))?;
                let positive = |name: &str, v: f64| {
                    if v.is_finite() && v >= 0.001 {
                        Ok(Duration::from_secs_f64(v))
                    } else {
                        Err(seconds_error(name, &v, 0.001))
                    }
                };
                let sync = match url.strip_prefix("host://") {
                    Some(name) => BreakerSync::new_host(
                        breaker.clone(),
                        name,
                        key.to_owned(),
                        positive("sync_interval", sync_interval)?,
                        shared_times(&clock)?,
                    )?,
                    None => BreakerSync::new(
                        breaker.clone(),
                        RedisConfig {
                            url: url.to_owned(),
                            connect_timeout: positive("connect_timeout", connect_timeout)?,
                            command_timeout: positive("command_timeout", command_timeout)?,
                        },
                        key.to_owned(),
                        positive("sync_interval", sync_interval)?,
                        shared_times(&clock)?,
                    )?,
                };
                sync.start();
                Some(Shared { sync })
            }
        };
        Ok(PyBreakerCore {
            breaker,
            clock,
            shared,
            log: Default::default(),
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
        let before = self.log.watch(&self.breaker, permit, outcome);
        self.breaker
            .record(permit, outcome, duration, self.clock.now(py)?);
        if let Some(before) = before {
            self.log.written(py, &self.breaker, before);
        }
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

    /// Names the breaker in its `seawall.breaker` records (opened, closed); unnamed, it writes
    /// none.
    fn _set_log_name(&self, name: String) {
        self.log.name(name);
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
        d.set_item("transitions_to_closed", s.transitions_to[0])?;
        d.set_item("transitions_to_open", s.transitions_to[1])?;
        d.set_item("transitions_to_half_open", s.transitions_to[2])?;
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
