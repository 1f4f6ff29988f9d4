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
use crate::limiter::shared::{Pending, SharedDecision, SharedLimiter, StoreError};
use crate::store::redis::direct::{supported, Direct};
use crate::store::redis::{parse_reply, runtime};

pub(crate) struct Waiter {
    future: Py<PyAny>,
    pending: Pending,
    sent: Instant,
}

/// The decisions of one script call, and whether it named the script by hash.
pub(crate) struct Batch {
    waiters: Vec<Waiter>,
    by_hash: bool,
}

enum Slot {
    /// Not connected; the next call starts connecting.
    Idle,
    /// Connecting on the I/O thread of the process with this id.
    Connecting(u32),
    /// Connected, not yet watched by a loop.
    Connected(Direct<Batch>),
    /// Watched by the loop whose bridge is `bridge`.
    Ready {
        conn: Direct<Batch>,
        /// Decisions asked for while others were in flight, sent together by `flush`.
        queued: Vec<Waiter>,
        bridge: usize,
        event_loop: Py<PyAny>,
        timer: bool,
        /// A flush of queued commands is scheduled on the loop.
        flushing: bool,
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

type Finished = Vec<(Py<PyAny>, Result<SharedDecision, StoreError>)>;

fn finish(py: Python<'_>, core: &SharedLimiter, done: Finished) {
    for (future, d) in done {
        let r = match d {
            Ok(d) => Bound::new(py, PyDecision::from(d.decision))
                .and_then(|v| future.call_method1(py, intern!(py, "set_result"), (v,))),
            Err(e) => future.call_method1(
                py,
                intern!(py, "set_exception"),
                (super::redis::store_error(e),),
            ),
        };
        // A cancelled future refuses its result; nobody is waiting for it.
        if r.is_err() {
            let _ = PyErr::take(py);
        }
    }
    super::redis::report_all(py, core.take_reports());
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

    /// Whether the store is one server over plain TCP or a Unix socket.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Fails every request waiting on the connection in `slot` and forgets the connection.
    fn break_connection(&self, py: Python<'_>, slot: &mut Slot, why: &str, done: &mut Finished) {
        if let Slot::Ready {
            mut conn,
            event_loop,
            queued,
            ..
        } = std::mem::replace(slot, Slot::Idle)
        {
            let _ = event_loop.call_method1(py, intern!(py, "remove_reader"), (conn.fd(),));
            let _ = PyErr::take(py);
            let waiters = conn.waiting.drain(..).flat_map(|b| b.waiters).chain(queued);
            // One broken connection is one failure for the breaker, however many decisions
            // were on it (`SharedLimiter::settle` counts the first only).
            for w in waiters {
                let t = took(&w);
                let err = std::io::Error::other(why.to_owned()).into();
                done.push((w.future, self.core.settle(w.pending, Err(err), t)));
            }
        }
    }

    /// In a forked child: forgets the parent's connection (without touching the loop, whose
    /// selector the child shares with the parent) and gives the decisions the child inherited
    /// in flight to `on_error` (their replies go to the parent).
    fn forget_inherited(&self, slot: &mut Slot, done: &mut Finished) {
        if let Slot::Ready {
            mut conn, queued, ..
        } = std::mem::replace(slot, Slot::Idle)
        {
            let waiters = conn.waiting.drain(..).flat_map(|b| b.waiters).chain(queued);
            for w in waiters {
                let t = took(&w);
                done.push((w.future, Ok(self.core.abandon(w.pending, t))));
            }
        }
    }

    /// Sends the decisions of `waiters` (made at one time) in one script call.
    fn send_batch(
        &self,
        conn: &mut Direct<Batch>,
        waiters: Vec<Waiter>,
        by_hash: bool,
    ) -> std::io::Result<()> {
        let refs: Vec<&Pending> = waiters.iter().map(|w| &w.pending).collect();
        let packed = self.core.packed_batch(&refs, by_hash);
        drop(refs);
        conn.send(&packed, Batch { waiters, by_hash })
            .map_err(|(e, batch)| {
                // Put them back so that breaking the connection fails them too.
                conn.waiting.push_back(batch);
                e
            })
    }

    /// Sends what was queued, one script call per run of decisions made at one time.
    fn flush_queued(
        &self,
        conn: &mut Direct<Batch>,
        queued: &mut Vec<Waiter>,
    ) -> std::io::Result<()> {
        let mut rest = std::mem::take(queued).into_iter().peekable();
        while let Some(first) = rest.next() {
            let mut group = vec![first];
            while let Some(w) = rest.next_if(|w| w.pending.same_time(&group[0].pending)) {
                group.push(w);
            }
            if let Err(e) = self.send_batch(conn, group, true) {
                queued.extend(rest);
                return Err(e);
            }
        }
        Ok(())
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
        let result = 'send: {
            let mut slot = self.slot.lock();
            let forked = match &*slot {
                Slot::Ready { conn, .. } | Slot::Connected(conn) => conn.inherited(),
                Slot::Connecting(pid) => *pid != runtime::pid(),
                Slot::Idle => false,
            };
            if forked {
                // A forked child: the socket (or the thread making it) is the parent's.
                self.forget_inherited(&mut slot, &mut done);
                *slot = Slot::Idle;
            }
            let stale = match &*slot {
                Slot::Ready {
                    conn,
                    bridge: owner,
                    ..
                } => *owner == bridge && conn.stale_while_idle(),
                Slot::Connected(conn) => conn.stale_while_idle(),
                _ => false,
            };
            if stale {
                // Redis closed it while nothing was waiting (an idle timeout, CLIENT KILL, a
                // restart), or sent what nobody asked for: nothing is lost, so connect again
                // now rather than fail this call. This blocks the loop for at most
                // connect_timeout, and only when Redis has just closed the connection, which a
                // live server answers at once.
                self.break_connection(py, &mut slot, "closed while idle", &mut done);
                *slot = Slot::Idle;
                let cfg = &self.core.config().redis;
                if let Ok(conn) = Direct::connect(&cfg.url, cfg.connect_timeout) {
                    *slot = Slot::Connected(conn);
                }
            }
            match std::mem::replace(&mut *slot, Slot::Idle) {
                Slot::Idle => {
                    *slot = Slot::Connecting(runtime::pid());
                    self.connect_in_background();
                    break 'send Err(pending);
                }
                Slot::Connecting(pid) => {
                    *slot = Slot::Connecting(pid);
                    break 'send Err(pending);
                }
                Slot::Connected(conn) => {
                    let event_loop = match future.call_method0(intern!(py, "get_loop")) {
                        Ok(l) => l,
                        Err(_) => {
                            *slot = Slot::Connected(conn);
                            break 'send Err(pending);
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
                        break 'send Err(pending);
                    }
                    *slot = Slot::Ready {
                        conn,
                        bridge,
                        event_loop: event_loop.unbind(),
                        queued: Vec::new(),
                        timer: false,
                        flushing: false,
                    };
                }
                other => *slot = other,
            }
            let Slot::Ready {
                conn,
                bridge: owner,
                event_loop,
                queued,
                timer,
                flushing,
            } = &mut *slot
            else {
                break 'send Err(pending);
            };
            if *owner != bridge {
                break 'send Err(pending);
            }
            let waiter = Waiter {
                future: future.clone().unbind(),
                pending,
                sent: Instant::now(),
            };
            let mut broke = None;
            if conn.waiting.is_empty() && queued.is_empty() {
                // Nothing in flight: send at once.
                broke = self.send_batch(conn, vec![waiter], true).err();
            } else {
                // Others are in flight: queue behind them, and send all that this turn of the
                // loop queued in one script call.
                queued.push(waiter);
                if !*flushing {
                    *flushing = self.schedule(py, event_loop, "flush", None);
                    if !*flushing {
                        broke = self.flush_queued(conn, queued).err();
                    }
                }
            }
            if !*timer {
                // Nothing was awaited: this decision is the oldest, due in command_timeout.
                let limit = self.core.config().redis.command_timeout;
                *timer = self.schedule(py, event_loop, "check", Some(limit));
            }
            if let Some(e) = broke {
                let why = format!("the connection broke: {e}");
                self.break_connection(py, &mut slot, &why, &mut done);
            }
            Ok(None)
        };
        finish(py, &self.core, done);
        result
    }

    /// Schedules the reader's `method` on the loop: soon, or after `delay`.
    fn schedule(
        self: &Arc<Self>,
        py: Python<'_>,
        event_loop: &Py<PyAny>,
        method: &str,
        delay: Option<std::time::Duration>,
    ) -> bool {
        let r = Bound::new(
            py,
            PyDirectReader {
                shared: self.clone(),
            },
        )
        .and_then(|r| r.getattr(method))
        .and_then(|cb| {
            let l = event_loop.bind(py);
            match delay {
                // A little past the deadline, so that the check finds it passed.
                Some(d) => l.call_method1(intern!(py, "call_later"), (d.as_secs_f64() + 0.001, cb)),
                None => l.call_method1(intern!(py, "call_soon"), (cb,)),
            }
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
            if matches!(*slot, Slot::Connecting(_)) {
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
            let (replies, error) = conn.receive();
            {
                {
                    let mut broken = error.map(|e| format!("the connection to Redis closed: {e}"));
                    for (batch, reply) in replies {
                        let noscript = matches!(&reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
                        if noscript && batch.by_hash {
                            // Redis restarted or its scripts were flushed: send the source.
                            if let Err(e) = shared.send_batch(conn, batch.waiters, false) {
                                broken.get_or_insert(format!("the connection broke: {e}"));
                            }
                            continue;
                        }
                        let decisions = reply.and_then(parse_reply).and_then(|d| {
                            if d.len() == batch.waiters.len() {
                                Ok(d)
                            } else {
                                Err(std::io::Error::other("a reply for another batch").into())
                            }
                        });
                        match decisions {
                            Ok(d) => {
                                for (w, raw) in batch.waiters.into_iter().zip(d) {
                                    let t = took(&w);
                                    done.push((
                                        w.future,
                                        shared.core.settle(w.pending, Ok(raw), t),
                                    ));
                                }
                            }
                            Err(e) => {
                                for w in batch.waiters {
                                    let t = took(&w);
                                    done.push((
                                        w.future,
                                        shared.core.settle(w.pending, Err(e.clone()), t),
                                    ));
                                }
                            }
                        }
                    }
                    if let Some(why) = broken {
                        shared.break_connection(py, &mut slot, &why, &mut done);
                    }
                }
            }
        }
        finish(py, &shared.core, done);
    }

    /// Writes the commands queued this turn of the loop.
    fn flush(&self, py: Python<'_>) {
        let shared = &self.shared;
        let mut done = Vec::new();
        {
            let mut slot = shared.slot.lock();
            let Slot::Ready {
                conn,
                queued,
                flushing,
                timer,
                event_loop,
                ..
            } = &mut *slot
            else {
                return;
            };
            *flushing = false;
            let broke = shared.flush_queued(conn, queued).err();
            if broke.is_none() && !*timer {
                let event_loop = event_loop.clone_ref(py);
                let limit = shared.core.config().redis.command_timeout;
                *timer = shared.schedule(py, &event_loop, "check", Some(limit));
            }
            if let Some(e) = broke {
                let why = format!("the connection broke: {e}");
                shared.break_connection(py, &mut slot, &why, &mut done);
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
            let oldest = conn.waiting.front().and_then(|b| b.waiters.first());
            match oldest.map(|w| w.sent.elapsed()) {
                None => *timer = false,
                Some(waited) if waited >= limit => {
                    let why = format!("no reply within command_timeout ({limit:?})");
                    shared.break_connection(py, &mut slot, &why, &mut done);
                }
                Some(waited) => {
                    // Again when the oldest decision's time is up: each await ends within
                    // command_timeout (and a turn of the loop), whatever the server sends.
                    let event_loop = event_loop.clone_ref(py);
                    *timer = shared.schedule(py, &event_loop, "check", Some(limit - waited));
                }
            }
        }
        finish(py, &shared.core, done);
    }
}
