//! The direct path's connection state machine: one connection per limiter, driven by the event
//! loop that first uses it (see [`super::direct`] for why), with every decision asked for while
//! others are in flight sent together in one script call per turn of the loop.
//!
//! The machine: not connected ([`Batcher::submit`] starts connecting on the I/O thread and gives
//! the decision back, for the tokio path), connected, then watched by one loop (the loop's
//! readiness calls [`Batcher::on_readable`]). A connection Redis closed while idle is made again
//! before use; one made in the parent of a forked child is forgotten; one that breaks, or whose
//! oldest decision waited `command_timeout` ([`Batcher::check`]), fails every decision on it.
//!
//! What an event loop is stays abstract ([`LoopOps`]): the Python bindings drive it from asyncio,
//! the tests from a plain `poll`. The decisions come back as [`Settled`] items; turning them into
//! decisions and setting futures is the caller's.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::RedisResult;

use super::direct::{supported, Direct};
use super::invoke::{load_command, Functions, Invoke};
use super::reply::{Answer, Reply};
use super::round_trips::RoundTrips;
use super::script::{packed_batch, Request};
use super::{runtime, RedisConfig};
use crate::clock::{Clock, Nanos, SystemClock};

/// What the caller asks the batcher to decide: anything that carries one script [`Request`].
pub trait Item {
    /// The decision's part of the script call.
    fn request(&self) -> &Request;
}

/// Why the batcher wants to be called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Call [`Batcher::flush`]: decisions were queued this turn of the loop.
    Flush,
    /// Call [`Batcher::check`]: the oldest decision in flight may have timed out.
    Check,
}

/// The event loop a connection is watched by.
pub trait LoopOps<I> {
    /// The loop, kept while it watches the connection.
    type Loop;
    /// The loop `item` was asked for on (None: it cannot watch a connection).
    fn loop_of(&self, item: &I) -> Option<Self::Loop>;
    /// Calls [`Batcher::on_readable`] whenever `fd` is readable; whether it will.
    fn watch(&self, event_loop: &Self::Loop, fd: RawFd) -> bool;
    /// Stops watching `fd`.
    fn unwatch(&self, event_loop: &Self::Loop, fd: RawFd);
    /// Calls back for `wake` soon (`None`) or after `delay`; whether it will.
    fn schedule(&self, event_loop: &Self::Loop, wake: Wake, delay: Option<Duration>) -> bool;
}

/// A decision the batcher is done with.
pub struct Settled<I> {
    /// The caller's item.
    pub item: I,
    /// How long it was in flight.
    pub took: Nanos,
    /// What became of it.
    pub outcome: Outcome,
}

/// What became of a decision sent on the direct connection.
#[derive(Debug)]
pub enum Outcome {
    /// The script's reply, or why there is none (the connection broke, timed out, or the reply
    /// was of the wrong shape).
    Reply(RedisResult<Reply>),
    /// It was in flight in the parent of this forked child: its reply goes to the parent.
    Inherited,
}

struct Waiter<I> {
    item: I,
    /// When it was asked for ([`now`]).
    sent: Nanos,
}

impl<I> Waiter<I> {
    fn settle(self, outcome: Outcome, now: Nanos) -> Settled<I> {
        Settled {
            took: now.saturating_sub(self.sent),
            item: self.item,
            outcome,
        }
    }
}

/// The decisions of one script call, how it named the script, and when it was written.
struct Batch<I> {
    waiters: Vec<Waiter<I>>,
    /// None: no script call but the `FUNCTION LOAD` before an [`Invoke::Loaded`] one (no
    /// waiters).
    how: Option<Invoke>,
    written: Nanos,
}

enum Slot<I, L> {
    /// Not connected; the next call starts connecting.
    Idle,
    /// Connecting on the I/O thread of the process with this id.
    Connecting(u32),
    /// Connected, not yet watched by a loop.
    Connected(Direct<Batch<I>>),
    /// Watched by the loop of `owner`.
    Ready {
        conn: Direct<Batch<I>>,
        /// Decisions asked for while others were in flight, sent together by `flush`.
        queued: Vec<Waiter<I>>,
        owner: usize,
        event_loop: L,
        /// A check is scheduled on the loop.
        timer: bool,
        /// A flush of queued decisions is scheduled on the loop.
        flushing: bool,
    },
}

/// One limiter's direct connection and the decisions on it.
pub struct Batcher<I, L> {
    config: RedisConfig,
    enabled: bool,
    slot: Mutex<Slot<I, L>>,
    round_trips: Arc<RoundTrips>,
    /// Whether the server takes the decision script as a function.
    functions: Functions,
}

/// The time now on the real clock (the time-stamp counter: a few ns, where `Instant::now` is
/// tens on a VM), for how long decisions are in flight.
fn now() -> Nanos {
    SystemClock.now()
}

/// The settled decisions of one call into the batcher.
pub type Done<I> = Vec<Settled<I>>;

impl<I: Item + Send + 'static, L: Send + 'static> Batcher<I, L> {
    /// A batcher for the store `config` names; it connects on first use. Disabled (every
    /// [`Batcher::submit`] gives its item back) unless the store is one server over plain TCP
    /// or a Unix socket.
    pub fn new(config: RedisConfig) -> Arc<Self> {
        Self::counted(config, Arc::default())
    }

    /// [`Batcher::new`], counting its answered script calls in `round_trips` (its decider's).
    pub fn counted(config: RedisConfig, round_trips: Arc<RoundTrips>) -> Arc<Self> {
        Arc::new(Batcher {
            enabled: supported(&config.url),
            config,
            slot: Mutex::new(Slot::Idle),
            round_trips,
            functions: Functions::default(),
        })
    }

    /// Whether the store can be reached directly (one server, plain TCP or a Unix socket).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sends `item` on the direct connection if the loop of `owner` watches it (or can start
    /// to); gives it back otherwise, for the caller's other path. Decisions settled meanwhile
    /// (this one too, if the send broke the connection) are pushed on `done`.
    pub fn submit<C: LoopOps<I, Loop = L>>(
        self: &Arc<Self>,
        ops: &C,
        owner: usize,
        item: I,
        done: &mut Done<I>,
    ) -> Result<(), I> {
        if !self.enabled {
            return Err(item);
        }
        let mut slot = self.slot.lock();
        let forked = match &*slot {
            Slot::Ready { conn, .. } | Slot::Connected(conn) => conn.inherited(),
            Slot::Connecting(pid) => *pid != runtime::pid(),
            Slot::Idle => false,
        };
        if forked {
            // A forked child: the socket (or the thread making it) is the parent's.
            Self::forget_inherited(&mut slot, done);
        }
        let stale = match &*slot {
            Slot::Ready { conn, owner: o, .. } => *o == owner && conn.stale_while_idle(),
            Slot::Connected(conn) => conn.stale_while_idle(),
            _ => false,
        };
        if stale {
            // Redis closed it while nothing was waiting (an idle timeout, CLIENT KILL, a
            // restart), or sent what nobody asked for: nothing is lost, so connect again now
            // rather than fail this call. This blocks the loop for at most connect_timeout, and
            // only when Redis has just closed the connection, which a live server answers at
            // once.
            Self::break_connection(ops, &mut slot, "closed while idle", done);
            if let Ok(conn) = Direct::connect(&self.config.url, self.config.connect_timeout) {
                *slot = Slot::Connected(conn);
            }
        }
        match std::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Idle => {
                *slot = Slot::Connecting(runtime::pid());
                self.connect_in_background();
                return Err(item);
            }
            Slot::Connecting(pid) => {
                *slot = Slot::Connecting(pid);
                return Err(item);
            }
            Slot::Connected(conn) => {
                let Some(event_loop) = ops.loop_of(&item) else {
                    *slot = Slot::Connected(conn);
                    return Err(item);
                };
                if !ops.watch(&event_loop, conn.fd()) {
                    return Err(item);
                }
                *slot = Slot::Ready {
                    conn,
                    owner,
                    event_loop,
                    queued: Vec::new(),
                    timer: false,
                    flushing: false,
                };
            }
            other => *slot = other,
        }
        let Slot::Ready {
            conn,
            owner: o,
            event_loop,
            queued,
            timer,
            flushing,
        } = &mut *slot
        else {
            return Err(item);
        };
        if *o != owner {
            return Err(item);
        }
        let now = now();
        let waiter = Waiter { item, sent: now };
        let mut broke = None;
        if conn.waiting.is_empty() && queued.is_empty() {
            // Nothing in flight: send at once.
            broke = Self::send_batch(conn, vec![waiter], self.functions.first(), now).err();
        } else {
            // Others are in flight: queue behind them, and send all that this turn of the loop
            // queued in one script call.
            queued.push(waiter);
            if !*flushing {
                *flushing = ops.schedule(event_loop, Wake::Flush, None);
                if !*flushing {
                    broke = Self::flush_queued(conn, queued, self.functions.first(), now).err();
                }
            }
        }
        if !*timer {
            // Nothing was awaited: this decision is the oldest, due in command_timeout.
            *timer = ops.schedule(event_loop, Wake::Check, Some(self.config.command_timeout));
        }
        if let Some(e) = broke {
            let why = format!("the connection broke: {e}");
            Self::break_connection(ops, &mut slot, &why, done);
        }
        Ok(())
    }

    /// Reads the replies that arrived and settles their decisions; a call refused for how it
    /// named the script is sent again as [`Invoke::next`] says (`FUNCTION LOAD` and `FCALL`
    /// after `Function not found`, `EVALSHA` when functions are refused, the source after
    /// `NOSCRIPT`). A connection that closed, or sent what was not asked for, fails the
    /// decisions still on it.
    pub fn on_readable<C: LoopOps<I, Loop = L>>(&self, ops: &C, done: &mut Done<I>) {
        let mut slot = self.slot.lock();
        let Slot::Ready { conn, .. } = &mut *slot else {
            return;
        };
        let (replies, error) = conn.receive();
        let now = now();
        let mut broken = error.map(|e| format!("the connection to Redis closed: {e}"));
        for (batch, reply) in replies {
            let Some(how) = batch.how else {
                // A FUNCTION LOAD refused (an ACL without it, a server that cannot load it):
                // the call sent after it is refused too and goes on as `next` says.
                if reply.is_err() {
                    self.functions.refuse();
                }
                continue;
            };
            if let Some(next) = reply
                .as_ref()
                .err()
                .and_then(|e| how.next(e, &self.functions))
            {
                if let Err(e) = Self::send_batch(conn, batch.waiters, next, now) {
                    broken.get_or_insert(format!("the connection broke: {e}"));
                }
                continue;
            }
            let decisions = reply.and_then(Answer::decisions).and_then(|d| {
                if d.len() == batch.waiters.len() {
                    Ok(d)
                } else {
                    Err(std::io::Error::other("a reply for another batch").into())
                }
            });
            match decisions {
                Ok(d) => {
                    let took = now.saturating_sub(batch.written);
                    self.round_trips.record(d.len(), took);
                    for (w, reply) in batch.waiters.into_iter().zip(d) {
                        done.push(w.settle(Outcome::Reply(Ok(reply)), now));
                    }
                }
                Err(e) => {
                    for w in batch.waiters {
                        done.push(w.settle(Outcome::Reply(Err(e.clone())), now));
                    }
                }
            }
        }
        if let Some(why) = broken {
            Self::break_connection(ops, &mut slot, &why, done);
        }
    }

    /// Sends the decisions queued this turn of the loop (after [`Wake::Flush`]).
    pub fn flush<C: LoopOps<I, Loop = L>>(&self, ops: &C, done: &mut Done<I>) {
        let mut slot = self.slot.lock();
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
        let broke = Self::flush_queued(conn, queued, self.functions.first(), now()).err();
        if broke.is_none() && !*timer {
            *timer = ops.schedule(event_loop, Wake::Check, Some(self.config.command_timeout));
        }
        if let Some(e) = broke {
            let why = format!("the connection broke: {e}");
            Self::break_connection(ops, &mut slot, &why, done);
        }
    }

    /// Fails every decision on the connection once the oldest has waited `command_timeout`
    /// (after [`Wake::Check`]); else checks again when it will have.
    pub fn check<C: LoopOps<I, Loop = L>>(&self, ops: &C, done: &mut Done<I>) {
        let limit = self.config.command_timeout;
        let mut slot = self.slot.lock();
        let Slot::Ready {
            conn,
            timer,
            event_loop,
            ..
        } = &mut *slot
        else {
            return;
        };
        // The oldest decision (a FUNCTION LOAD in flight has none).
        let oldest = conn.waiting.iter().find_map(|b| b.waiters.first());
        match oldest.map(|w| Duration::from_nanos(now().saturating_sub(w.sent))) {
            None => *timer = false,
            Some(waited) if waited >= limit => {
                let why = format!("no reply within command_timeout ({limit:?})");
                Self::break_connection(ops, &mut slot, &why, done);
            }
            Some(waited) => {
                // Again when the oldest decision's time is up: each await ends within
                // command_timeout (and a turn of the loop), whatever the server sends.
                *timer = ops.schedule(event_loop, Wake::Check, Some(limit - waited));
            }
        }
    }

    /// Fails every decision waiting on the connection in `slot` and forgets the connection.
    /// One broken connection is one failure, however many decisions were on it: the caller
    /// counts it once.
    fn break_connection<C: LoopOps<I, Loop = L>>(
        ops: &C,
        slot: &mut Slot<I, L>,
        why: &str,
        done: &mut Done<I>,
    ) {
        if let Slot::Ready {
            mut conn,
            event_loop,
            queued,
            ..
        } = std::mem::replace(slot, Slot::Idle)
        {
            ops.unwatch(&event_loop, conn.fd());
            let at = now();
            let waiters = conn.waiting.drain(..).flat_map(|b| b.waiters).chain(queued);
            for w in waiters {
                let err = std::io::Error::other(why.to_owned()).into();
                done.push(w.settle(Outcome::Reply(Err(err)), at));
            }
        }
    }

    /// In a forked child: forgets the parent's connection (without touching the loop, whose
    /// selector the child shares with the parent) and gives back the decisions the child
    /// inherited in flight as [`Outcome::Inherited`].
    fn forget_inherited(slot: &mut Slot<I, L>, done: &mut Done<I>) {
        if let Slot::Ready {
            mut conn, queued, ..
        } = std::mem::replace(slot, Slot::Idle)
        {
            let at = now();
            let waiters = conn.waiting.drain(..).flat_map(|b| b.waiters).chain(queued);
            for w in waiters {
                done.push(w.settle(Outcome::Inherited, at));
            }
        }
    }

    /// Sends the decisions of `waiters` (made at one time) in one script call, named as `how`
    /// says (after a `FUNCTION LOAD` if it needs one).
    fn send_batch(
        conn: &mut Direct<Batch<I>>,
        waiters: Vec<Waiter<I>>,
        how: Invoke,
        now: Nanos,
    ) -> std::io::Result<()> {
        if how.needs_load() {
            let load = Batch {
                waiters: Vec::new(),
                how: None,
                written: now,
            };
            if let Err((e, _)) = conn.send(&load_command().get_packed_command(), load) {
                // Put the decisions on the connection, so that breaking it fails them.
                conn.waiting.push_back(Batch {
                    waiters,
                    how: Some(how),
                    written: now,
                });
                return Err(e);
            }
        }
        let refs: Vec<&Request> = waiters.iter().map(|w| w.item.request()).collect();
        let packed = packed_batch(&refs, how);
        drop(refs);
        let batch = Batch {
            waiters,
            how: Some(how),
            written: now,
        };
        conn.send(&packed, batch).map_err(|(e, batch)| {
            // Put them back so that breaking the connection fails them too.
            conn.waiting.push_back(batch);
            e
        })
    }

    /// Sends what was queued, one script call per run of decisions made at one time.
    fn flush_queued(
        conn: &mut Direct<Batch<I>>,
        queued: &mut Vec<Waiter<I>>,
        how: Invoke,
        now: Nanos,
    ) -> std::io::Result<()> {
        let mut rest = std::mem::take(queued).into_iter().peekable();
        while let Some(first) = rest.next() {
            let mut group = vec![first];
            while let Some(w) =
                rest.next_if(|w| w.item.request().same_time(group[0].item.request()))
            {
                group.push(w);
            }
            if let Err(e) = Self::send_batch(conn, group, how, now) {
                queued.extend(rest);
                return Err(e);
            }
        }
        Ok(())
    }

    fn connect_in_background(self: &Arc<Self>) {
        let me = self.clone();
        runtime::handle().spawn_blocking(move || {
            let r = Direct::connect(&me.config.url, me.config.connect_timeout);
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
