//! The concurrency limiter: permits up to the algorithm's limit, a bounded queue of waiters, and
//! the outcomes that move the limit.
//!
//! One lock, held only inside these calls, never while a caller's work runs. Waiters are tickets
//! here (their futures live in Python); the queue is first-in first-out, and whenever a permit is
//! returned or the limit grows, the first waiters that may take a permit get one, so no waiter
//! that could run is left waiting. A waiter with a deadline that has passed is removed at the next
//! [`ConcurrencyLimiter::acquire`] or [`ConcurrencyLimiter::release`] and reported as expired.
//!
//! ```
//! use seawall::concurrency::{Admission, ConcurrencyLimiter, LimitConfig, LimiterConfig, Outcome};
//!
//! let limiter = ConcurrencyLimiter::new(LimiterConfig {
//!     limit: LimitConfig::Fixed(1),
//!     max_queue: 1,
//!     ..LimiterConfig::default()
//! })
//! .unwrap();
//! let first = limiter.try_acquire(None, 0).unwrap();
//! let (queued, _) = limiter.acquire(None, 0, None);
//! let Admission::Queued(ticket) = queued else { panic!() };
//! assert!(matches!(limiter.acquire(None, 0, None).0, Admission::Rejected));
//! let woken = limiter.release(first, Outcome::Success, None, 10);
//! assert_eq!(woken.granted[0].0, ticket);
//! assert_eq!(limiter.in_flight(), 1);
//! ```

use std::collections::VecDeque;

use hashbrown::HashMap;

type Map<V> = HashMap<u64, V, foldhash::fast::FixedState>;
use parking_lot::Mutex;

use crate::clock::Nanos;
use crate::error::Error;
use crate::metrics::histogram::{Histogram, HistogramSnapshot};

use super::limit::{LimitAlgorithm, LimitConfig, Sample};
use super::partition::Partitions;

/// A limiter's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterConfig {
    /// The algorithm (or a fixed limit).
    pub limit: LimitConfig,
    /// Waiters queued at most (0: refuse at once when no permit is free).
    pub max_queue: u32,
    /// How long a waiter waits at most (`None`: as long as it likes).
    pub queue_timeout: Option<Nanos>,
    /// Shares of the limit reserved per partition.
    pub partitions: Vec<(String, f64)>,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            limit: LimitConfig::Gradient(Default::default()),
            max_queue: 0,
            queue_timeout: None,
            partitions: Vec::new(),
        }
    }
}

/// A held permit: return it once with [`ConcurrencyLimiter::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit(pub u64);

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded: its RTT is a sample.
    Success,
    /// It was dropped: the loss signal.
    Dropped,
    /// Neither (a client error, a cancellation): the permit is returned, the limit is not moved.
    Ignore,
}

/// What [`ConcurrencyLimiter::acquire`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A permit, now.
    Granted(Permit),
    /// Queued: the ticket gets a permit later (see [`Woken`]) or expires.
    Queued(u64),
    /// Refused: no permit free and the queue full.
    Rejected,
}

/// Waiters that got a permit (ticket, permit) or passed their deadline (ticket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Woken {
    /// In the order they were granted.
    pub granted: Vec<(u64, Permit)>,
    /// Removed from the queue, unserved.
    pub expired: Vec<u64>,
}

impl Woken {
    /// Whether nobody was woken.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty() && self.expired.is_empty()
    }
}

/// Counts since the limiter was built, and its current state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// The current limit.
    pub limit: u32,
    /// Permits held.
    pub in_flight: u32,
    /// Waiters queued.
    pub queued: u32,
    /// Permits given (at once or after queueing).
    pub acquired: u64,
    /// Calls refused.
    pub rejected: u64,
    /// Waiters that passed their deadline.
    pub timed_out: u64,
    /// Waiters that gave up (cancelled).
    pub cancelled: u64,
    /// Outcomes reported.
    pub successes: u64,
    /// Dropped outcomes.
    pub dropped: u64,
    /// Ignored outcomes.
    pub ignored: u64,
    /// The most permits held at once.
    pub peak_in_flight: u32,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    partition: Option<usize>,
    start: Nanos,
    in_flight: u32,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    ticket: u64,
    partition: Option<usize>,
    deadline: Option<Nanos>,
    /// When it was queued.
    since: Nanos,
}

#[derive(Debug)]
struct Inner {
    algorithm: LimitAlgorithm,
    partitions: Partitions,
    held: Map<Held>,
    queue: VecDeque<Waiter>,
    next_id: u64,
    earliest_deadline: Option<Nanos>,
    stats: Stats,
    /// How long each permit's holder waited for it, on the limiter's clock.
    waits: Histogram,
}

/// Permits up to an adaptive limit; see the module documentation.
#[derive(Debug)]
pub struct ConcurrencyLimiter {
    max_queue: u32,
    queue_timeout: Option<Nanos>,
    inner: Mutex<Inner>,
}

impl ConcurrencyLimiter {
    /// A limiter with fresh algorithm state; the error names a bad setting.
    pub fn new(config: LimiterConfig) -> Result<Self, Error> {
        let algorithm = config.limit.build()?;
        let mut partitions = Partitions::new(config.partitions)?;
        partitions.set_limit(algorithm.limit());
        Ok(ConcurrencyLimiter {
            max_queue: config.max_queue,
            queue_timeout: config.queue_timeout,
            inner: Mutex::new(Inner {
                algorithm,
                partitions,
                held: Map::default(),
                queue: VecDeque::new(),
                next_id: 1,
                earliest_deadline: None,
                stats: Stats::default(),
                waits: Histogram::new(),
            }),
        })
    }

    /// The index of a partition by name (`None`: no such partition).
    pub fn partition(&self, name: &str) -> Option<usize> {
        self.inner.lock().partitions.index(name)
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.inner.lock().algorithm.limit()
    }

    /// Permits held.
    pub fn in_flight(&self) -> u32 {
        self.inner.lock().held.len() as u32
    }

    /// Waiters queued.
    pub fn queued(&self) -> u32 {
        self.inner.lock().queue.len() as u32
    }

    /// A permit now, or `None`; never queues.
    pub fn try_acquire(&self, partition: Option<usize>, now: Nanos) -> Option<Permit> {
        let mut inner = self.inner.lock();
        let permit = inner.grant(partition, now);
        if permit.is_none() {
            inner.stats.rejected += 1;
        } else {
            inner.waits.record(0);
        }
        permit
    }

    /// A permit now, a place in the queue (waiting at most `timeout`, and at most the limiter's
    /// `queue_timeout`), or a refusal; and the waiters that expired meanwhile.
    pub fn acquire(
        &self,
        partition: Option<usize>,
        now: Nanos,
        timeout: Option<Nanos>,
    ) -> (Admission, Vec<u64>) {
        let mut inner = self.inner.lock();
        let expired = inner.expire(now);
        if let Some(permit) = inner.grant(partition, now) {
            inner.waits.record(0);
            return (Admission::Granted(permit), expired);
        }
        if inner.queue.len() as u32 >= self.max_queue {
            inner.stats.rejected += 1;
            return (Admission::Rejected, expired);
        }
        let wait = match (timeout, self.queue_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = wait.map(|w| now.saturating_add(w));
        if let Some(d) = deadline {
            inner.earliest_deadline = Some(inner.earliest_deadline.map_or(d, |e| e.min(d)));
        }
        let ticket = inner.next_id;
        inner.next_id += 1;
        inner.queue.push_back(Waiter {
            ticket,
            partition,
            deadline,
            since: now,
        });
        (Admission::Queued(ticket), expired)
    }

    /// Returns a permit with its outcome (`rtt`: measured by the caller; `None`: from the
    /// permit's admission to `now`), and gives freed permits to waiters. Returning a permit twice,
    /// or one this limiter never gave, changes nothing.
    pub fn release(
        &self,
        permit: Permit,
        outcome: Outcome,
        rtt: Option<Nanos>,
        now: Nanos,
    ) -> Woken {
        let mut inner = self.inner.lock();
        let Some(held) = inner.held.remove(&permit.0) else {
            return Woken::default();
        };
        inner.partitions.release(held.partition);
        let before = inner.algorithm.limit();
        let sample = Sample {
            start: held.start,
            rtt: rtt.unwrap_or_else(|| now.saturating_sub(held.start)),
            in_flight: held.in_flight,
            dropped: outcome == Outcome::Dropped,
        };
        match outcome {
            Outcome::Success => inner.stats.successes += 1,
            Outcome::Dropped => inner.stats.dropped += 1,
            Outcome::Ignore => inner.stats.ignored += 1,
        }
        if outcome != Outcome::Ignore {
            let after = inner.algorithm.on_sample(sample);
            if after != before {
                inner.partitions.set_limit(after);
            }
        }
        let expired = inner.expire(now);
        let granted = if inner.queue.is_empty() {
            Vec::new()
        } else {
            inner.wake(now)
        };
        Woken { granted, expired }
    }

    /// Removes a waiter that gave up (`timed_out`: because its caller's own timer ran out);
    /// `false` if it is no longer queued (it got a permit, or expired, and the caller must deal
    /// with that).
    pub fn cancel(&self, ticket: u64, timed_out: bool) -> bool {
        let mut inner = self.inner.lock();
        match inner.queue.iter().position(|w| w.ticket == ticket) {
            Some(i) => {
                inner.queue.remove(i);
                if timed_out {
                    inner.stats.timed_out += 1;
                } else {
                    inner.stats.cancelled += 1;
                }
                true
            }
            None => false,
        }
    }

    /// How long each permit's holder waited for it (0 for a permit given at once), in seconds
    /// on the caller's clock.
    ///
    /// ```
    /// use seawall::concurrency::limiter::{Admission, ConcurrencyLimiter, LimiterConfig, Outcome};
    /// use seawall::concurrency::LimitConfig;
    ///
    /// let l = ConcurrencyLimiter::new(LimiterConfig { limit: LimitConfig::Fixed(1), max_queue: 1, ..Default::default() }).unwrap();
    /// let Admission::Granted(p) = l.acquire(None, 0, None).0 else { panic!() };
    /// assert!(matches!(l.acquire(None, 0, None).0, Admission::Queued(_)));
    /// let woken = l.release(p, Outcome::Success, None, 3_000_000); // 3 ms later
    /// assert_eq!(woken.granted.len(), 1);
    /// let w = l.wait_seconds();
    /// assert_eq!((w.count, w.cumulative[0]), (2, 1)); // one at once, one after 3 ms
    /// assert_eq!(w.sum, 0.003);
    /// ```
    pub fn wait_seconds(&self) -> HistogramSnapshot {
        self.inner.lock().waits.snapshot()
    }

    /// The counts, the limit and what is held and queued.
    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        Stats {
            limit: inner.algorithm.limit(),
            in_flight: inner.held.len() as u32,
            queued: inner.queue.len() as u32,
            ..inner.stats.clone()
        }
    }

    /// Runs `f` on the algorithm's state (for statistics).
    pub fn with_algorithm<R>(&self, f: impl FnOnce(&LimitAlgorithm) -> R) -> R {
        f(&self.inner.lock().algorithm)
    }

    /// Each partition's name, share, guarantee and permits held.
    pub fn partitions(&self) -> Vec<(String, f64, u32, u32)> {
        let inner = self.inner.lock();
        inner
            .partitions
            .snapshot()
            .into_iter()
            .map(|(n, s, g, h)| (n.to_owned(), s, g, h))
            .collect()
    }
}

impl Inner {
    fn grant(&mut self, partition: Option<usize>, now: Nanos) -> Option<Permit> {
        let in_flight = self.held.len() as u32;
        if !self
            .partitions
            .admissible(partition, in_flight, self.algorithm.limit())
        {
            return None;
        }
        self.partitions.acquire(partition);
        let id = self.next_id;
        self.next_id += 1;
        self.held.insert(
            id,
            Held {
                partition,
                start: now,
                in_flight: in_flight + 1,
            },
        );
        self.stats.acquired += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(in_flight + 1);
        Some(Permit(id))
    }

    /// Gives permits to the first waiters that may take one. One pass suffices: a grant never
    /// makes a waiter passed over admissible.
    fn wake(&mut self, now: Nanos) -> Vec<(u64, Permit)> {
        let mut granted = Vec::new();
        let mut i = 0;
        while i < self.queue.len() && (self.held.len() as u32) < self.algorithm.limit() {
            let w = self.queue[i];
            match self.grant(w.partition, now) {
                Some(permit) => {
                    self.waits.record(now.saturating_sub(w.since));
                    self.queue.remove(i);
                    granted.push((w.ticket, permit));
                }
                None => i += 1,
            }
        }
        granted
    }

    fn expire(&mut self, now: Nanos) -> Vec<u64> {
        match self.earliest_deadline {
            Some(d) if d <= now => {}
            _ => return Vec::new(),
        }
        let mut expired = Vec::new();
        let mut earliest = None;
        self.queue.retain(|w| match w.deadline {
            Some(d) if d <= now => {
                expired.push(w.ticket);
                false
            }
            Some(d) => {
                earliest = Some(earliest.map_or(d, |e: Nanos| e.min(d)));
                true
            }
            None => true,
        });
        self.earliest_deadline = earliest;
        self.stats.timed_out += expired.len() as u64;
        expired
    }
}
