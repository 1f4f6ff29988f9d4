//! The direct path of `RedisLimiter`'s async methods, on asyncio: the connection's state machine
//! is [`crate::store::redis::batcher`]; here are only the asyncio calls it makes
//! (`loop.add_reader` on its socket, `call_soon` / `call_later` for its flush and check) and the
//! futures its decisions are set on. Everything else (other loops, TLS, Cluster, Sentinel, the
//! moments while connecting) takes the tokio path.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;

use super::futures::resolve_all;
use crate::http::redis_budgets::HttpPending;
use crate::limiter::redis_limiter::{Pending, RedisLimiter};
use crate::store::redis::batcher::{Batcher, Done, Item, LoopOps, Outcome, Wake};
use crate::store::redis::round_trips::RoundTrips;
use crate::store::redis::script::Request;
use crate::store::redis::RedisConfig;

/// What decides on the direct path: its pending decisions, and how settled ones reach their
/// futures. `RedisLimiter` (a key's limits, a `Decision` per future) and the HTTP policy (a
/// request's budgets, a rendered response per future) are the two.
pub(crate) trait Decider: Send + Sync + 'static {
    /// A decision waiting for Redis.
    type Pending: Requested + Send + 'static;
    /// How Redis is reached.
    fn redis_config(&self) -> &RedisConfig;
    /// Where its direct connection counts its round trips.
    fn round_trips(&self) -> Arc<RoundTrips>;
    /// Settles what the batcher is done with and sets each result on its future.
    fn resolve(&self, py: Python<'_>, done: Done<Asked<Self::Pending>>);
}

/// One async decision on the direct path: the future to set and the decision to make.
pub(crate) struct Asked<P> {
    pub(crate) future: Py<PyAny>,
    pub(crate) pending: P,
}

/// The pending types of the deciders, as the batcher sees them.
pub(crate) trait Requested {
    /// Its part of the script call.
    fn request(&self) -> &Request;
}

impl Requested for Pending {
    #[inline]
    fn request(&self) -> &Request {
        Pending::request(self)
    }
}

impl Requested for HttpPending {
    #[inline]
    fn request(&self) -> &Request {
        HttpPending::request(self)
    }
}

impl<P: Requested> Item for Asked<P> {
    #[inline]
    fn request(&self) -> &Request {
        self.pending.request()
    }
}

impl Decider for RedisLimiter {
    type Pending = Pending;

    fn redis_config(&self) -> &RedisConfig {
        &self.config().redis
    }

    fn round_trips(&self) -> Arc<RoundTrips> {
        RedisLimiter::round_trips(self).clone()
    }

    fn resolve(&self, py: Python<'_>, done: Done<Asked<Pending>>) {
        let settled = done.into_iter().map(|s| {
            let Asked { future, pending } = s.item;
            let d = match s.outcome {
                Outcome::Reply(r) => self.settle(pending, r, s.took),
                Outcome::Inherited => Ok(self.abandon(pending, s.took)),
            };
            (future, d)
        });
        resolve_all(py, settled, self.take_reports());
    }
}

/// A decider's direct connection (its batcher) and the decider that settles its decisions.
pub(crate) struct DirectShared<D: Decider> {
    core: Arc<D>,
    batcher: Arc<Batcher<Asked<D::Pending>, Py<PyAny>>>,
}

/// The loop callbacks of a [`DirectShared`], whatever its decider.
trait Drive: Send + Sync {
    fn on_readable(&self, py: Python<'_>);
    fn flush(&self, py: Python<'_>);
    fn check(&self, py: Python<'_>);
}

/// What the loop calls: `on_readable` when the socket has data, `flush` to send what was queued
/// this turn, `check` on a timer while replies are awaited.
#[pyclass(frozen, module = "seawall._seawall", name = "_DirectReader")]
pub(crate) struct PyDirectReader {
    shared: Box<dyn Drive>,
}

/// The asyncio side of [`LoopOps`].
struct Asyncio<'a, 'py, D: Decider> {
    py: Python<'py>,
    shared: &'a Arc<DirectShared<D>>,
}

impl<D: Decider> Asyncio<'_, '_, D> {
    /// The reader's bound method `name`, for the loop to call.
    fn callback(&self, name: &str) -> PyResult<Bound<'_, PyAny>> {
        Bound::new(
            self.py,
            PyDirectReader {
                shared: Box::new(self.shared.clone()),
            },
        )?
        .into_any()
        .getattr(name)
    }

    fn ok<T>(&self, r: PyResult<T>) -> bool {
        match r {
            Ok(_) => true,
            Err(_) => {
                let _ = PyErr::take(self.py);
                false
            }
        }
    }
}

impl<D: Decider> LoopOps<Asked<D::Pending>> for Asyncio<'_, '_, D> {
    type Loop = Py<PyAny>;

    fn loop_of(&self, item: &Asked<D::Pending>) -> Option<Py<PyAny>> {
        match item
            .future
            .call_method0(self.py, intern!(self.py, "get_loop"))
        {
            Ok(l) => Some(l),
            Err(_) => {
                let _ = PyErr::take(self.py);
                None
            }
        }
    }

    fn watch(&self, event_loop: &Py<PyAny>, fd: RawFd) -> bool {
        let r = self
            .callback("on_readable")
            .and_then(|cb| event_loop.call_method1(self.py, "add_reader", (fd, cb)));
        self.ok(r)
    }

    fn unwatch(&self, event_loop: &Py<PyAny>, fd: RawFd) {
        let r = event_loop.call_method1(self.py, intern!(self.py, "remove_reader"), (fd,));
        self.ok(r);
    }

    fn schedule(&self, event_loop: &Py<PyAny>, wake: Wake, delay: Option<Duration>) -> bool {
        let name = match wake {
            Wake::Flush => "flush",
            Wake::Check => "check",
        };
        let py = self.py;
        let r = self.callback(name).and_then(|cb| {
            let l = event_loop.bind(py);
            match delay {
                // A little past the deadline, so that the check finds it passed.
                Some(d) => l.call_method1(intern!(py, "call_later"), (d.as_secs_f64() + 0.001, cb)),
                None => l.call_method1(intern!(py, "call_soon"), (cb,)),
            }
        });
        self.ok(r)
    }
}

impl<D: Decider> DirectShared<D> {
    pub(crate) fn new(core: Arc<D>) -> Arc<Self> {
        let batcher = Batcher::counted(core.redis_config().clone(), core.round_trips());
        Arc::new(DirectShared { core, batcher })
    }

    /// Whether the store is one server over plain TCP or a Unix socket.
    pub(crate) fn enabled(&self) -> bool {
        self.batcher.enabled()
    }

    /// Sends `pending` on the direct connection if the loop of `bridge` owns it (or can); gives
    /// it back otherwise (the caller then takes the tokio path). The decision is set on
    /// `future`.
    pub(crate) fn try_send(
        self: &Arc<Self>,
        py: Python<'_>,
        bridge: usize,
        future: &Bound<'_, PyAny>,
        pending: D::Pending,
    ) -> Result<(), D::Pending> {
        if !self.batcher.enabled() {
            return Err(pending);
        }
        let ops = Asyncio { py, shared: self };
        let asked = Asked {
            future: future.clone().unbind(),
            pending,
        };
        let mut done = Vec::new();
        let r = self.batcher.submit(&ops, bridge, asked, &mut done);
        self.core.resolve(py, done);
        r.map_err(|a| a.pending)
    }

    /// Runs one of the batcher's loop callbacks and sets what it settled on the futures.
    fn run(
        self: &Arc<Self>,
        py: Python<'_>,
        step: impl FnOnce(
            &Batcher<Asked<D::Pending>, Py<PyAny>>,
            &Asyncio<'_, '_, D>,
            &mut Done<Asked<D::Pending>>,
        ),
    ) {
        let mut done = Vec::new();
        let ops = Asyncio { py, shared: self };
        step(&self.batcher, &ops, &mut done);
        self.core.resolve(py, done);
    }
}

impl<D: Decider> Drive for Arc<DirectShared<D>> {
    fn on_readable(&self, py: Python<'_>) {
        self.run(py, |b, ops, done| b.on_readable(ops, done));
    }

    fn flush(&self, py: Python<'_>) {
        self.run(py, |b, ops, done| b.flush(ops, done));
    }

    fn check(&self, py: Python<'_>) {
        self.run(py, |b, ops, done| b.check(ops, done));
    }
}

#[pymethods]
impl PyDirectReader {
    /// Reads the replies that arrived.
    fn on_readable(&self, py: Python<'_>) {
        self.shared.on_readable(py);
    }

    /// Writes the commands queued this turn of the loop.
    fn flush(&self, py: Python<'_>) {
        self.shared.flush(py);
    }

    /// Fails what waited `command_timeout`, or checks again later.
    fn check(&self, py: Python<'_>) {
        self.shared.check(py);
    }
}
