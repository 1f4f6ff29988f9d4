//! Bounded admission for async work: a concurrency cap, a bounded queue with an optional byte
//! budget, and what to do with work that does not fit.
//!
//! Python holds the waiting callers' futures; this module decides who runs, who waits, in which
//! order, and who is refused or displaced. One call admits ([`Backpressure::try_admit`]), one
//! call releases ([`Backpressure::release`]) and names the waiters to start now; nothing is held
//! while the work runs.
//!
//! * An item **runs at once** when fewer than [`Capacity::limit`] items run and nobody waits.
//! * Otherwise it **waits in the queue** if the queue has room: fewer than `max_queue` items and,
//!   with `max_queue_bytes`, their declared sizes summed with its own within the budget. Sizes are
//!   what the caller says an item weighs (not process memory); running items do not count.
//! * Otherwise the [`Strategy`] decides: refuse it ([`Strategy::Reject`], [`Strategy::DropNewest`]),
//!   displace the oldest waiters until it fits ([`Strategy::DropOldest`]), let it wait for room
//!   ([`Strategy::Block`]: it is *blocked*, outside the queue, and enters the queue in arrival
//!   order when room appears), or choose between the last two by pressure ([`Strategy::Adaptive`]).
//! * A waiter waits at most `queue_timeout` from its submission ([`Backpressure::expire`]).
//! * [`Order::Fifo`] starts the oldest queued item first, [`Order::Lifo`] the newest.
//!
//! Every submitted item is counted once in the end: completed, failed, cancelled, refused (by
//! reason), dropped or timed out; [`Snapshot`] reads the counts in one go.
//!
//! ```
//! use seawall::backpressure::{Admission, Backpressure, Config, Outcome};
//!
//! let bp = Backpressure::new(Config { max_queue: 1, ..Config::with_limit(1) }).unwrap();
//! let Admission::Run(first) = bp.try_admit(0, 0) else { panic!() };
//! let Admission::Queued { ticket: second, .. } = bp.try_admit(0, 0) else { panic!() };
//! assert!(matches!(bp.try_admit(0, 0), Admission::Queued { .. })); // blocked: waits for room
//! assert_eq!(bp.release(first, Outcome::Success, 5).unwrap(), vec![second]);
//! assert_eq!(bp.snapshot().completed, 1);
//! ```

mod state;
mod stats;

use parking_lot::Mutex;

use crate::clock::Nanos;
use crate::concurrency::{LimitAlgorithm, Sample};
use crate::error::Error;

pub use stats::{Rejected, Snapshot};

use state::State;

/// Identifies one admitted item, from [`Backpressure::try_admit`] to its end.
pub type Ticket = u64;

/// How many items may run at once. Read through [`Capacity::limit`] only, so that a limit that
/// moves (an adaptive algorithm) can take the place of a fixed number.
///
/// ```
/// use seawall::backpressure::Capacity;
/// use seawall::concurrency::{GradientConfig, LimitConfig};
///
/// assert_eq!(Capacity::Fixed(10).limit(), 10);
/// let gradient = LimitConfig::Gradient(GradientConfig::default()).build().unwrap();
/// assert_eq!(Capacity::Adaptive(Box::new(gradient)).limit(), 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Capacity {
    /// A fixed number (at least 1).
    Fixed(usize),
    /// An adaptive limit (AIMD, Gradient; see [`crate::concurrency`]), fed by each item's
    /// outcome: a success is an RTT sample, a loss (an overload or a timeout) lowers it.
    Adaptive(Box<LimitAlgorithm>),
}

impl Capacity {
    /// The number of items that may run now.
    #[inline]
    pub fn limit(&self) -> usize {
        match self {
            Capacity::Fixed(n) => *n,
            Capacity::Adaptive(a) => a.limit() as usize,
        }
    }

    /// Feeds one finished item's outcome to an adaptive limit (a fixed one ignores it).
    pub fn on_sample(&mut self, sample: Sample) {
        if let Capacity::Adaptive(a) = self {
            a.on_sample(sample);
        }
    }
}

/// What happens to an item that can neither run nor wait in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Refused ([`Reason::QueueFull`], [`Reason::Memory`] or [`Reason::Limit`]).
    Reject,
    /// Refused and counted dropped ([`Reason::Dropped`]): the newest item is the one lost.
    DropNewest,
    /// The oldest queued items are displaced (counted dropped) until it fits.
    DropOldest,
    /// It waits for room (up to `queue_timeout`).
    Block,
    /// As [`Strategy::DropOldest`] when the queue's bytes reach `adaptive_threshold` × the byte
    /// budget or the item would pass the budget, else as [`Strategy::Block`] (so always, without
    /// a byte budget: there is no memory pressure to shed; a queue merely full by count blocks).
    Adaptive,
}

impl Strategy {
    /// The name Python uses.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Reject => "reject",
            Strategy::DropNewest => "drop_newest",
            Strategy::DropOldest => "drop_oldest",
            Strategy::Block => "block",
            Strategy::Adaptive => "adaptive",
        }
    }

    /// The strategy named `name` (as [`Strategy::name`] spells it).
    ///
    /// ```
    /// use seawall::backpressure::Strategy;
    ///
    /// assert_eq!(Strategy::parse("drop_oldest"), Some(Strategy::DropOldest));
    /// assert_eq!(Strategy::parse("newest"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        [
            Strategy::Reject,
            Strategy::DropNewest,
            Strategy::DropOldest,
            Strategy::Block,
            Strategy::Adaptive,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// Which queued item starts next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The oldest (fair; the default).
    Fifo,
    /// The newest (under overload, fresh work keeps its latency; stale work waits or times out).
    Lifo,
}

/// Why an item was refused (or ended without running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The queue holds `max_queue` items.
    QueueFull,
    /// The item does not fit in the byte budget.
    Memory,
    /// Every slot is busy and there is no queue (`max_queue == 0`).
    Limit,
    /// Dropped by the strategy.
    Dropped,
    /// It waited longer than `queue_timeout`.
    Timeout,
    /// The handler is closed.
    Closed,
}

impl Reason {
    /// The name Python uses (`Overloaded.reason`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::QueueFull => "queue_full",
            Reason::Memory => "memory",
            Reason::Limit => "limit",
            Reason::Dropped => "dropped",
            Reason::Timeout => "timeout",
            Reason::Closed => "closed",
        }
    }
}

/// How a running item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It returned.
    Success,
    /// It raised.
    Failure,
    /// It was cancelled.
    Cancelled,
}

/// The answer to [`Backpressure::try_admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Run it now; report its end with [`Backpressure::release`].
    Run(Ticket),
    /// It waits (in the queue, or blocked for room). `displaced`: the waiters dropped to make room,
    /// oldest first; they end with [`Reason::Dropped`].
    Queued {
        /// This item's ticket.
        ticket: Ticket,
        /// Waiters dropped for it.
        displaced: Vec<Ticket>,
    },
    /// Refused; `retry_after` estimates when room may appear (None: no estimate yet).
    Reject {
        /// Why.
        reason: Reason,
        /// Seconds-as-nanos estimate of the wait for room.
        retry_after: Option<Nanos>,
    },
}

/// A handler's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How many items run at once.
    pub capacity: Capacity,
    /// How many items may wait in the queue (0: none).
    pub max_queue: usize,
    /// The sum of queued items' sizes may not exceed this.
    pub max_queue_bytes: Option<u64>,
    /// What to do with an item that does not fit.
    pub strategy: Strategy,
    /// The longest an item waits from its submission (None: as long as its caller waits).
    pub queue_timeout: Option<Nanos>,
    /// Which queued item starts next.
    pub order: Order,
    /// [`Strategy::Adaptive`]'s pressure threshold, a fraction in (0, 1].
    pub adaptive_threshold: f64,
}

impl Config {
    /// The defaults (`max_queue` 100, [`Strategy::Block`], FIFO, no timeout, no byte budget)
    /// with `limit` items at once.
    pub fn with_limit(limit: usize) -> Self {
        Config {
            capacity: Capacity::Fixed(limit),
            max_queue: 100,
            max_queue_bytes: None,
            strategy: Strategy::Block,
            queue_timeout: None,
            order: Order::Fifo,
            adaptive_threshold: 0.9,
        }
    }

    /// Checks every setting's range; the error names the setting.
    ///
    /// ```
    /// use seawall::backpressure::Config;
    ///
    /// assert!(Config::with_limit(1).validate().is_ok());
    /// let e = Config::with_limit(0).validate().unwrap_err();
    /// assert!(e.to_string().starts_with("max_concurrency"));
    /// ```
    pub fn validate(self) -> Result<Self, Error> {
        if self.capacity.limit() == 0 {
            return Err(Error::invalid(
                "max_concurrency",
                "must be at least 1, got 0",
            ));
        }
        if !(self.adaptive_threshold > 0.0 && self.adaptive_threshold <= 1.0) {
            return Err(Error::invalid(
                "adaptive_threshold",
                format!(
                    "must be a fraction above 0 and at most 1, got {}",
                    self.adaptive_threshold
                ),
            ));
        }
        if self.max_queue_bytes == Some(0) {
            return Err(Error::invalid(
                "max_queue_bytes",
                "must be at least 1 (or None for no budget), got 0",
            ));
        }
        Ok(self)
    }
}

/// The handler: its settings and its state behind one lock, held only while deciding.
pub struct Backpressure {
    state: Mutex<State>,
}

impl Backpressure {
    /// A handler with `config` (checked).
    pub fn new(config: Config) -> Result<Self, Error> {
        Ok(Backpressure {
            state: Mutex::new(State::new(config.validate()?)),
        })
    }

    /// Admits an item of `size` bytes submitted at `now`: run it, queue it (maybe displacing
    /// others), or refuse it.
    ///
    /// ```
    /// use seawall::backpressure::{Admission, Backpressure, Config, Reason, Strategy};
    ///
    /// let config = Config { max_queue: 0, strategy: Strategy::Reject, ..Config::with_limit(1) };
    /// let bp = Backpressure::new(config).unwrap();
    /// assert!(matches!(bp.try_admit(0, 0), Admission::Run(_)));
    /// assert!(matches!(bp.try_admit(0, 0), Admission::Reject { reason: Reason::Limit, .. }));
    /// ```
    pub fn try_admit(&self, size: u64, now: Nanos) -> Admission {
        self.state.lock().try_admit(size, now)
    }

    /// Ends running item `ticket` with `outcome`; returns the waiters that start now (each now
    /// runs and must be released in turn). An unknown ticket is an error (released twice, or
    /// never started).
    pub fn release(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        now: Nanos,
    ) -> Result<Vec<Ticket>, Error> {
        self.state.lock().release(ticket, outcome, now)
    }

    /// Ends running item `ticket` as a failure that is also a loss (it was shed or timed out
    /// downstream): counted as failed, and an adaptive limit comes down. Otherwise as
    /// [`Backpressure::release`].
    pub fn release_lost(&self, ticket: Ticket, now: Nanos) -> Result<Vec<Ticket>, Error> {
        self.state.lock().end(ticket, Outcome::Failure, true, now)
    }

    /// A waiter gave up (its caller was cancelled): frees its place. Returns the waiters that
    /// start now, or `None` if `ticket` was not waiting (it has started, or ended already).
    ///
    /// ```
    /// use seawall::backpressure::{Admission, Backpressure, Config};
    ///
    /// let bp = Backpressure::new(Config::with_limit(1)).unwrap();
    /// let Admission::Run(run) = bp.try_admit(0, 0) else { panic!() };
    /// let Admission::Queued { ticket, .. } = bp.try_admit(0, 0) else { panic!() };
    /// assert_eq!(bp.cancel(ticket, 0), Some(vec![]));
    /// assert_eq!(bp.cancel(ticket, 0), None);
    /// assert_eq!(bp.cancel(run, 0), None);
    /// ```
    pub fn cancel(&self, ticket: Ticket, now: Nanos) -> Option<Vec<Ticket>> {
        self.state.lock().cancel(ticket, now)
    }

    /// Ends every waiter whose `queue_timeout` has passed at `now`; returns their tickets
    /// (oldest first). They end with [`Reason::Timeout`].
    ///
    /// ```
    /// use seawall::backpressure::{Admission, Backpressure, Config};
    ///
    /// let bp = Backpressure::new(Config { queue_timeout: Some(10), ..Config::with_limit(1) }).unwrap();
    /// bp.try_admit(0, 0);
    /// let Admission::Queued { ticket, .. } = bp.try_admit(0, 5) else { panic!() };
    /// assert_eq!(bp.next_deadline(), Some(15));
    /// assert!(bp.expire(14).is_empty());
    /// assert_eq!(bp.expire(15), vec![ticket]);
    /// ```
    pub fn expire(&self, now: Nanos) -> Vec<Ticket> {
        self.state.lock().expire(now)
    }

    /// When the next waiter times out (None: no waiter, or no `queue_timeout`).
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.state.lock().next_deadline()
    }

    /// Starts waiters while slots are free (after the limit grew); returns their tickets.
    pub fn start_ready(&self, now: Nanos) -> Vec<Ticket> {
        self.state.lock().fill(now)
    }

    /// Refuses every later item ([`Reason::Closed`]) and ends every waiter with it; returns
    /// their tickets. Running items go on.
    pub fn close(&self) -> Vec<Ticket> {
        self.state.lock().close()
    }

    /// The counts and gauges, read together.
    pub fn snapshot(&self) -> Snapshot {
        self.state.lock().snapshot()
    }

    /// Items running now.
    pub fn in_flight(&self) -> usize {
        self.state.lock().in_flight()
    }

    /// Items waiting (queued or blocked).
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting()
    }

    /// Items in the queue.
    pub fn queued(&self) -> usize {
        self.state.lock().queued()
    }

    /// The summed sizes of the queued items.
    pub fn queued_bytes(&self) -> u64 {
        self.state.lock().queued_bytes()
    }

    /// The concurrency limit now.
    pub fn limit(&self) -> usize {
        self.state.lock().limit()
    }
}
