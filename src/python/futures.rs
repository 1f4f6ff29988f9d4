//! How async Redis decisions come back to an asyncio loop ([`PyBridge`]), the Python exception
//! for a store error, and the `seawall.redis` log.
//!
//! The bridge: a decision that needs Redis runs as a task on seawall's tokio thread, which puts
//! the result in a queue and, if the queue was empty, writes one byte to a pipe. The asyncio loop
//! watches the pipe (`loop.add_reader`) and then sets every queued result on its future in one
//! call. The tokio thread never takes the GIL, so it never waits for the Python thread, and a
//! burst of results costs one wake-up of the loop. pyo3-async-runtimes' `future_into_py` instead
//! takes the GIL on the tokio thread for every result to schedule it with
//! `call_soon_threadsafe`; measured in `benches/compare_redis.py`.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyPermissionError};
use pyo3::intern;
use pyo3::prelude::*;

use super::limiter::PyDecision;
use crate::limiter::redis_failure::{RedisDecision, Report, StoreError};

/// What a finished call gives its future.
pub(crate) enum Completion {
    /// A decision, or why there is none.
    Decision(Result<RedisDecision, StoreError>),
    Flag(Result<bool, StoreError>),
    /// A request's response, as `HttpLimiter.check` returns it.
    Http(Result<crate::http::Outcome, StoreError>),
    /// A result that makes its own Python object (a rule's decision).
    Object(Result<MakeObject, StoreError>),
}

/// Makes a result's Python object once the loop's thread holds the GIL.
pub(crate) type MakeObject = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A finished call: its future, its result and what the limiter reports meanwhile.
pub(crate) struct Done {
    pub(crate) future: Py<PyAny>,
    pub(crate) completion: Completion,
    pub(crate) reports: Vec<Report>,
}

/// The queue of finished calls and the pipe that wakes the loop.
pub(crate) struct BridgeInner {
    queue: Mutex<Vec<Done>>,
    signaled: AtomicBool,
    reader: Mutex<std::io::PipeReader>,
    writer: Mutex<std::io::PipeWriter>,
}

impl BridgeInner {
    /// Queues `done` for the loop, waking it if the queue was empty.
    pub(crate) fn complete(&self, done: Done) {
        self.queue.lock().push(done);
        if !self.signaled.swap(true, Ordering::AcqRel) {
            // One byte per batch; the reader drains the queue after clearing the flag, so a
            // result pushed meanwhile either rides this batch or signals again.
            let _ = self.writer.lock().write_all(&[1]);
        }
    }
}

#[pyclass(frozen, module = "seawall._seawall", name = "Bridge")]
pub(crate) struct PyBridge {
    inner: Arc<BridgeInner>,
}

impl PyBridge {
    /// The queue, shared with the tasks that finish calls.
    pub(crate) fn inner(&self) -> &Arc<BridgeInner> {
        &self.inner
    }
}

#[pymethods]
impl PyBridge {
    #[new]
    fn new() -> PyResult<Self> {
        let (reader, writer) = std::io::pipe().map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(PyBridge {
            inner: Arc::new(BridgeInner {
                queue: Mutex::new(Vec::new()),
                signaled: AtomicBool::new(false),
                reader: Mutex::new(reader),
                writer: Mutex::new(writer),
            }),
        })
    }

    /// The pipe's read end, for `loop.add_reader`; set it non-blocking.
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.inner.reader.lock().as_raw_fd()
    }

    /// Sets every finished result on its future; returns how many.
    fn drain(&self, py: Python<'_>) -> PyResult<usize> {
        let mut buf = [0u8; 256];
        {
            let mut r = self.inner.reader.lock();
            while let Ok(n) = r.read(&mut buf) {
                if n < buf.len() {
                    break;
                }
            }
        }
        self.inner.signaled.store(false, Ordering::Release);
        let batch = std::mem::take(&mut *self.inner.queue.lock());
        let n = batch.len();
        for done in batch {
            report_all(py, done.reports);
            let value: Result<Bound<'_, PyAny>, StoreError> = match done.completion {
                Completion::Decision(Ok(d)) => {
                    Ok(Bound::new(py, PyDecision::from_redis(d))?.into_any())
                }
                Completion::Flag(Ok(b)) => {
                    Ok(pyo3::types::PyBool::new(py, b).to_owned().into_any())
                }
                Completion::Http(Ok(o)) => Ok(match super::http::outcome_tuple(py, &o)? {
                    Some(t) => t.into_any(),
                    None => py.None().into_bound(py),
                }),
                Completion::Object(Ok(make)) => Ok(make(py)?.into_bound(py)),
                Completion::Decision(Err(e))
                | Completion::Flag(Err(e))
                | Completion::Http(Err(e))
                | Completion::Object(Err(e)) => Err(e),
            };
            let r = match value {
                Ok(v) => done
                    .future
                    .call_method1(py, intern!(py, "set_result"), (v,)),
                Err(e) => done.future.call_method1(
                    py,
                    intern!(py, "set_exception"),
                    (store_error(e).into_value(py),),
                ),
            };
            // A cancelled future refuses its result; nobody is waiting for it.
            if r.is_err() {
                let _ = PyErr::take(py);
            }
        }
        Ok(n)
    }
}

/// The Python exception for a store error: `PermissionError` for a configuration error (the
/// store can never work as configured), `OSError` for an outage.
pub(crate) fn store_error(e: StoreError) -> PyErr {
    match e {
        StoreError::Configuration(m) => PyPermissionError::new_err(m),
        StoreError::Unavailable(m) => PyOSError::new_err(m),
    }
}

/// Logs `reports` on `seawall.redis` (configuration errors at ERROR, outages at WARNING, their
/// fields as the record's `extra`), then every queued native record (`super::logs`).
pub(crate) fn report_all(py: Python<'_>, reports: Vec<Report>) {
    for r in reports {
        let level = if r.error {
            log::Level::Error
        } else {
            log::Level::Warn
        };
        let mut fields: Vec<(&str, &str)> =
            r.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let suppressed = r.suppressed.to_string();
        fields.push(("event", r.event()));
        fields.push(("suppressed", &suppressed));
        super::logs::write(level, "seawall::redis", &r.message, &fields);
    }
    super::logs::flush(py);
}

/// Sets each decision (or its store error) on its future, then logs what the limiter reports.
pub(crate) fn resolve_all(
    py: Python<'_>,
    done: impl IntoIterator<Item = (Py<PyAny>, Result<RedisDecision, StoreError>)>,
    reports: Vec<Report>,
) {
    for (future, d) in done {
        let r = match d {
            Ok(d) => Bound::new(py, PyDecision::from_redis(d))
                .and_then(|v| future.call_method1(py, intern!(py, "set_result"), (v,))),
            Err(e) => future.call_method1(
                py,
                intern!(py, "set_exception"),
                (store_error(e).into_value(py),),
            ),
        };
        // A cancelled future refuses its result; nobody is waiting for it.
        if r.is_err() {
            let _ = PyErr::take(py);
        }
    }
    report_all(py, reports);
}
