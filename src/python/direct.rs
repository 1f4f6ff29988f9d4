//! The direct path of `RedisLimiter`'s async methods: one connection per limiter, driven by the
//! asyncio loop that first uses it (`loop.add_reader` on its socket). See
//! `crate::store::redis::direct` for why. Everything else (other loops, TLS, Cluster, Sentinel,
//! the moments while connecting) takes the tokio path.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;

use super::limiter::PyDecision;
use crate::clock::Nanos;
use crate::limiter::shared::{Pending, SharedDecision, SharedLimiter};
use crate::store::redis::direct::{supported, Direct};
use crate::store::redis::{parse_reply, runtime};

pub(crate) struct Waiter {
    future: Py<PyAny>,
    pending: Pending,
    sent: Instant,
    by_hash: bool,
}

enum Slot {
    /// Not connected; the next call starts connecting.
    Idle,
    /// Connecting on the I/O thread.
    Connecting,
    /// Connected, not yet watched by a loop.
    Connected(Direct<Waiter>),
    /// Watched by the loop whose bridge is `bridge`.
    Ready {
        conn: Direct<Waiter>,
        bridge: usize,
        event_loop: Py<PyAny>,
        timer: bool,
        pid: u32,
    },
}

pub(crate) struct DirectShared {
    core: Arc<SharedLimiter>,
    enabled: bool,
    slot: Mutex<Slot>,
}

/// What the loop calls: `on_readable` when the socket has data, `check` on a timer while
/// replies are awaited.
#[pyclass(frozen, module = "seawall._seawall", name = "_DirectReader")]
pub(crate) struct PyDirectReader {
    shared: Arc<DirectShared>,
}

type Finished = Vec<(Py<PyAny>, SharedDecision)>;

fn finish(py: Python<'_>, core: &SharedLimiter, done: Finished) {
    for (future, d) in done {
        let value = match Bound::new(py, PyDecision::from(d.decision)) {
            Ok(v) => v,
            Err(e) => {
                e.restore(py);
                continue;
            }
        };
        // A cancelled future refuses its result; nobody is waiting for it.
        if future
            .call_method1(py, intern!(py, "set_result"), (value,))
            .is_err()
        {
            let _ = PyErr::take(py);
        }
    }
    if let Some(msg) = core.take_report() {
        super::redis::report(py, &msg);
    }
}

fn took(w: &Waiter) -> Nanos {
    w.sent.elapsed().as_nanos() as Nanos
}

impl DirectShared {
    pub(crate) fn new(core: Arc<SharedLimiter>) -> Arc<Self> {
        let enabled = supported(&core.config().redis.url);
        Arc::new(DirectShared {
            core,
            enabled,
            slot: Mutex::new(Slot::Idle),
        })
    }

    /// Fails every request waiting on the connection in `slot` and forgets the connection.
    fn break_connection(&self, py: Python<'_>, slot: &mut Slot, why: &str, done: &mut Finished) {
        if let Slot::Ready {
            conn, event_loop, ..
        } = std::mem::replace(slot, Slot::Idle)
        {
            let _ = event_loop.call_method1(py, intern!(py, "remove_reader"), (conn.fd(),));
            let _ = PyErr::take(py);
            let mut conn = conn;
            for w in conn.waiting.drain(..) {
                let t = took(&w);
                let err = std::io::Error::other(why.to_owned()).into();
                done.push((w.future, self.core.settle(w.pending, Err(err), t)));
            }
        }
    }

    /// Sends `pending` on the direct connection if this loop owns it; gives it back otherwise
    /// (the caller then takes the tokio path). `Ok(Some(d))`: decided at once (the send failed).
    pub(crate) fn try_send(
        self: &Arc<Self>,
        py: Python<'_>,
        bridge: usize,
        future: &Bound<'_, PyAny>,
        pending: Pending,
    ) -> Result<Option<SharedDecision>, Pending> {
        if !self.enabled {
            return Err(pending);
        }
        let mut done = Vec::new();
        let result;
        {
            let mut slot = self.slot.lock();
            if let Slot::Ready { pid, .. } = &*slot {
                if *pid != std::process::id() {
                    // A forked child: the socket is the parent's.
                    *slot = Slot::Idle;
                }
            }
            match std::mem::replace(&mut *slot, Slot::Idle) {
                Slot::Idle => {
                    *slot = Slot::Connecting;
                    self.connect_in_background();
                    return Err(pending);
                }
                Slot::Connecting => {
                    *slot = Slot::Connecting;
                    return Err(pending);
                }
                Slot::Connected(conn) => {
                    let event_loop = match future.call_method0(intern!(py, "get_loop")) {
                        Ok(l) => l,
                        Err(_) => {
                            *slot = Slot::Connected(conn);
                            return Err(pending);
                        }
                    };
                    let reader = Bound::new(
                        py,
                        PyDirectReader {
                            shared: self.clone(),
                        },
                    )
                    .and_then(|r| r.getattr(intern!(py, "on_readable")))
                    .and_then(|cb| event_loop.call_method1("add_reader", (conn.fd(), cb)));
                    if reader.is_err() {
                        let _ = PyErr::take(py);
                        return Err(pending);
                    }
                    *slot = Slot::Ready {
                        conn,
                        bridge,
                        event_loop: event_loop.unbind(),
                        timer: false,
                        pid: std::process::id(),
                    };
                }
                other => *slot = other,
            }
            let Slot::Ready {
                conn,
                bridge: owner,
                event_loop,
                timer,
                ..
            } = &mut *slot
            else {
                return Err(pending);
            };
            if *owner != bridge {
                return Err(pending);
            }
            let packed = self.core.packed(&pending, true);
            let waiter = Waiter {
                future: future.clone().unbind(),
                pending,
                sent: Instant::now(),
                by_hash: true,
            };
            match conn.send(&packed, waiter) {
                Ok(()) => {
                    if !*timer {
                        *timer = self.arm_timer(py, event_loop);
                    }
                    result = Ok(None);
                }
                Err((e, w)) => {
                    let t = took(&w);
                    let d = self.core.settle(w.pending, Err(e.into()), t);
                    self.break_connection(py, &mut slot, "the connection broke", &mut done);
                    result = Ok(Some(d));
                }
            }
        }
        finish(py, &self.core, done);
        result
    }

    fn arm_timer(self: &Arc<Self>, py: Python<'_>, event_loop: &Py<PyAny>) -> bool {
        let interval = self.core.config().redis.command_timeout.as_secs_f64() / 2.0;
        let r = Bound::new(
            py,
            PyDirectReader {
                shared: self.clone(),
            },
        )
        .and_then(|r| r.getattr(intern!(py, "check")))
        .and_then(|cb| {
            event_loop
                .bind(py)
                .call_method1(intern!(py, "call_later"), (interval, cb))
        });
        match r {
            Ok(_) => true,
            Err(_) => {
                let _ = PyErr::take(py);
                false
            }
        }
    }

    fn connect_in_background(self: &Arc<Self>) {
        let me = self.clone();
        runtime::handle().spawn_blocking(move || {
            let cfg = &me.core.config().redis;
            let r = Direct::connect(&cfg.url, cfg.connect_timeout);
            let mut slot = me.slot.lock();
            if matches!(*slot, Slot::Connecting) {
                *slot = match r {
                    Ok(conn) => Slot::Connected(conn),
                    Err(_) => Slot::Idle,
                };
            }
        });
    }
}

#[pymethods]
impl PyDirectReader {
    fn on_readable(&self, py: Python<'_>) {
        let shared = &self.shared;
        let mut done = Vec::new();
        {
            let mut slot = shared.slot.lock();
            let Slot::Ready { conn, .. } = &mut *slot else {
                return;
            };
            match conn.receive() {
                Ok(replies) => {
                    let mut broken = None;
                    for (w, reply) in replies {
                        let noscript = matches!(&reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
                        if noscript && w.by_hash {
                            // Redis restarted or its scripts were flushed: send the source.
                            let packed = shared.core.packed(&w.pending, false);
                            let w = Waiter {
                                by_hash: false,
                                ..w
                            };
                            if let Err((e, w)) = conn.send(&packed, w) {
                                let t = took(&w);
                                done.push((
                                    w.future,
                                    shared.core.settle(w.pending, Err(e.into()), t),
                                ));
                                broken = Some("the connection broke");
                            }
                            continue;
                        }
                        let t = took(&w);
                        let parsed = reply.and_then(parse_reply);
                        done.push((w.future, shared.core.settle(w.pending, parsed, t)));
                    }
                    if let Some(why) = broken {
                        shared.break_connection(py, &mut slot, why, &mut done);
                    }
                }
                Err(e) => {
                    let why = format!("the connection to Redis closed: {e}");
                    shared.break_connection(py, &mut slot, &why, &mut done);
                }
            }
        }
        finish(py, &shared.core, done);
    }

    fn check(&self, py: Python<'_>) {
        let shared = &self.shared;
        let limit = shared.core.config().redis.command_timeout;
        let mut done = Vec::new();
        {
            let mut slot = shared.slot.lock();
            let Slot::Ready {
                conn,
                timer,
                event_loop,
                ..
            } = &mut *slot
            else {
                return;
            };
            match conn.waiting.front() {
                None => *timer = false,
                Some(w) if w.sent.elapsed() > limit => {
                    let why = format!("no reply within command_timeout ({limit:?})");
                    shared.break_connection(py, &mut slot, &why, &mut done);
                }
                Some(_) => {
                    let event_loop = event_loop.clone_ref(py);
                    *timer = shared.arm_timer(py, &event_loop);
                }
            }
        }
        finish(py, &shared.core, done);
    }
}
