//! The core's `log` records (`crate::logs`) delivered to Python's `logging` through `pyo3-log`,
//! never from the thread or place that writes them.
//!
//! `pyo3-log` takes the GIL to log. Written on a tokio thread while a Python thread holding the
//! GIL waits for that thread, or under a seawall lock that a GIL-holding thread may wait on,
//! that deadlocks. So [`Deferred`], the `log` logger of this module, only queues a record (a
//! leaf lock, no Python) and asks CPython to run [`flush`] on the main thread at its next
//! bytecode boundary (`Py_AddPendingCall`: the GIL held, no seawall lock held there). The Redis
//! paths also flush right after each call (`report_all`), so their records are not late.
//!
//! `pyo3-log` runs uncached (`Caching::Nothing`): each record looks its logger up and asks
//! `isEnabledFor`, so a level set after import (`caplog.at_level`, `dictConfig`) is honoured.
//! Records are rare (rate-limited per call site), so that costs nothing that matters. Only
//! `seawall::*` targets pass (not the `rustls` or `redis` crates' records); key-values become
//! the record's `extra` attributes (as strings: pyo3-log converts each value with `Display`).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;
use pyo3::prelude::*;

/// Records queued at most; more are counted and reported with the next batch.
const MAX_QUEUED: usize = 256;

struct Owned {
    level: Level,
    target: String,
    message: String,
    fields: Vec<(String, String)>,
}

static QUEUE: Mutex<Vec<Owned>> = Mutex::new(Vec::new());
static QUEUED: AtomicBool = AtomicBool::new(false);
/// The process that has a pending call scheduled (0: none). A pid, not a flag: a child forked
/// while its parent had one scheduled schedules its own.
static SCHEDULED: AtomicU32 = AtomicU32::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static PYTHON: OnceLock<pyo3_log::Logger> = OnceLock::new();

/// The `log` logger of the extension module: queues `seawall::*` records (see the module).
struct Deferred;

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push((key.as_str().to_owned(), value.to_string()));
        Ok(())
    }
}

impl Log for Deferred {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "seawall" || metadata.target().starts_with("seawall::")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut fields = Vec::new();
        let _ = record.key_values().visit(&mut Fields(&mut fields));
        let owned = Owned {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
            fields,
        };
        {
            let mut q = QUEUE.lock();
            if q.len() >= MAX_QUEUED {
                LOST.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.push(owned);
        }
        QUEUED.store(true, Ordering::Release);
        let pid = crate::store::redis::runtime::pid();
        if SCHEDULED.swap(pid, Ordering::AcqRel) != pid {
            // SAFETY: callable from any thread, with or without the GIL; the function only
            // runs on the main thread with the GIL held. Not once the interpreter is gone (a
            // record written by seawall's Redis thread as the process exits stays queued).
            let r = unsafe {
                if pyo3::ffi::Py_IsInitialized() == 0 {
                    return;
                }
                pyo3::ffi::Py_AddPendingCall(Some(run_pending), std::ptr::null_mut())
            };
            if r != 0 {
                SCHEDULED.store(0, Ordering::Release); // a later record or flush retries
            }
        }
    }

    fn flush(&self) {}
}

extern "C" fn run_pending(_: *mut c_void) -> c_int {
    SCHEDULED.store(0, Ordering::Release);
    // Pending calls run on the main thread with the GIL held: this only borrows it.
    Python::attach(flush);
    0
}

/// Installs [`Deferred`] as the `log` logger (once per process), with `pyo3-log` behind it.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Nothing)?.filter(LevelFilter::Trace);
    if PYTHON.set(logger).is_ok() && log::set_logger(&Deferred).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
    Ok(())
}

/// Writes one record with `fields` (queued like any other; see the module).
pub(crate) fn write(level: Level, target: &str, message: &str, fields: &[(&str, &str)]) {
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{message}"))
            .key_values(&fields)
            .build(),
    );
}

/// Hands the queued records to Python's `logging`. Call with the GIL held and no seawall lock
/// held; one atomic load when nothing is queued.
pub(crate) fn flush(py: Python<'_>) {
    if !QUEUED.load(Ordering::Acquire) || !QUEUED.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(python) = PYTHON.get() else {
        return;
    };
    let batch = std::mem::take(&mut *QUEUE.lock());
    let lost = LOST.swap(0, Ordering::Relaxed);
    for r in &batch {
        let fields: Vec<(&str, &str)> = r
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let kvs: &[(&str, &str)] = &fields;
        python.log(
            &Record::builder()
                .level(r.level)
                .target(&r.target)
                .args(format_args!("{}", r.message))
                .key_values(&kvs)
                .build(),
        );
    }
    if lost > 0 {
        let lost = lost.to_string();
        let kvs: &[(&str, &str)] = &[("event", "log_records_lost"), ("suppressed", &lost)];
        python.log(
            &Record::builder()
                .level(Level::Warn)
                .target("seawall")
                .args(format_args!(
                    "{lost} seawall log records were dropped: more than {MAX_QUEUED} waited"
                ))
                .key_values(&kvs)
                .build(),
        );
    }
    // pyo3-log restores a failure of a handler as the current exception: a log record must
    // never raise into the caller.
    let _ = PyErr::take(py);
}

/// `seawall._seawall._reset_log_throttles()`: every native log call site writes its next record
/// (tests start from a clean state).
#[pyfunction]
#[pyo3(name = "_reset_log_throttles")]
pub(crate) fn reset_log_throttles() {
    crate::logs::reset_all();
}

/// `seawall._seawall._flush_logs()`: delivers the queued native log records now.
#[pyfunction]
#[pyo3(name = "_flush_logs")]
pub(crate) fn flush_logs(py: Python<'_>) {
    flush(py);
}

/// The `seawall.breaker` records of one named circuit breaker: it opened (WARNING), its probes
/// closed it (INFO). At most one of each per [`crate::logs::INTERVAL`] per breaker, with
/// `suppressed` (while it flaps, the state now is the `seawall_breaker_state` metric's).
#[derive(Default)]
pub(crate) struct BreakerLog {
    name: OnceLock<String>,
    opened: crate::logs::Throttle,
    closed: crate::logs::Throttle,
}

impl BreakerLog {
    /// Names the breaker (its records start then; an unnamed one writes none).
    pub(crate) fn name(&self, name: String) {
        let _ = self.name.set(name);
    }

    /// Whether a call's outcome may have moved `breaker` (a failure, or a probe's success):
    /// then `Some(transitions before)`; the other outcomes cost nothing.
    pub(crate) fn watch(
        &self,
        breaker: &crate::breaker::Breaker,
        permit: crate::breaker::Permit,
        outcome: crate::breaker::Outcome,
    ) -> Option<u64> {
        use crate::breaker::{Outcome, CLOSED_CALL};
        let moves =
            outcome == Outcome::Failure || (outcome == Outcome::Success && permit != CLOSED_CALL);
        (moves && self.name.get().is_some()).then(|| breaker.transitions())
    }

    /// After the outcome is recorded (no lock held, the GIL held): logs an opening or a
    /// closing since `before`, and hands the record to `logging` at once.
    pub(crate) fn written(&self, py: Python<'_>, breaker: &crate::breaker::Breaker, before: u64) {
        use crate::breaker::State;
        let (Some(name), Some(t)) = (self.name.get(), breaker.last_transition()) else {
            return;
        };
        if breaker.transitions() == before || !matches!(t.to, State::Open | State::Closed) {
            return;
        }
        let (level, event, what, throttle) = if t.to == State::Open {
            (Level::Warn, "breaker_opened", "opened", &self.opened)
        } else {
            (Level::Info, "breaker_closed", "closed", &self.closed)
        };
        let Some(suppressed) = throttle.admit(crate::logs::INTERVAL) else {
            return;
        };
        let suppressed = suppressed.to_string();
        write(
            level,
            "seawall::breaker",
            &format!(
                "circuit breaker {name:?} {what} ({}: {} -> {})",
                t.reason,
                t.from.name(),
                t.to.name()
            ),
            &[
                ("event", event),
                ("breaker", name),
                ("reason", t.reason),
                ("old_state", t.from.name()),
                ("new_state", t.to.name()),
                ("suppressed", &suppressed),
            ],
        );
        flush(py);
    }
}
