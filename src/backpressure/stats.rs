//! What a handler counts, and the snapshot it is read as.

use serde::Serialize;

use super::{Outcome, Reason};
use crate::clock::{nanos_to_secs, Nanos};
use crate::metrics::histogram::{Histogram, HistogramSnapshot};

/// How many recent waits the percentiles are taken over.
const WAIT_SAMPLES: usize = 1024;

/// Items refused, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The queue was full.
    pub queue_full: u64,
    /// The byte budget had no room.
    pub memory: u64,
    /// Every slot was busy and there is no queue.
    pub limit: u64,
    /// The handler was closed (later items, and the waiters it ended).
    pub closed: u64,
}

impl Rejected {
    pub(super) fn add(&mut self, reason: Reason) {
        match reason {
            Reason::QueueFull => self.queue_full += 1,
            Reason::Memory => self.memory += 1,
            Reason::Limit => self.limit += 1,
            Reason::Closed => self.closed += 1,
            // Counted as dropped and timed out, not here.
            Reason::Dropped | Reason::Timeout => {}
        }
    }

    /// Every refusal.
    pub fn total(&self) -> u64 {
        self.queue_full + self.memory + self.limit + self.closed
    }
}

/// A handler's counts and gauges, read at one instant. Times are in seconds on its clock.
///
/// Once nothing runs or waits, `submitted = completed + failed + cancelled + rejected.total() +
/// dropped + timed_out`; before, `in_flight + queued + blocked` make up the difference.
///
/// ```
/// use seawall::backpressure::{Backpressure, Config, Outcome, Admission};
///
/// let bp = Backpressure::new(Config::with_limit(2)).unwrap();
/// let Admission::Run(t) = bp.try_admit(100, 0) else { panic!() };
/// bp.release(t, Outcome::Failure, 2_000_000_000).unwrap();
/// let s = bp.snapshot();
/// assert_eq!((s.submitted, s.failed, s.in_flight), (1, 1, 0));
/// assert_eq!(s.mean_run_time, 2.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The concurrency limit.
    pub limit: usize,
    /// Running.
    pub in_flight: usize,
    /// Waiting in the queue.
    pub queued: usize,
    /// Waiting for room in the queue.
    pub blocked: usize,
    /// The summed sizes of the queued items.
    pub queued_bytes: u64,
    /// The summed sizes of the running items.
    pub in_flight_bytes: u64,
    /// Every item offered.
    pub submitted: u64,
    /// Items started (at once or after waiting).
    pub admitted: u64,
    /// Items that ran and returned.
    pub completed: u64,
    /// Items that ran and raised.
    pub failed: u64,
    /// Items whose caller was cancelled while they waited or ran.
    pub cancelled: u64,
    /// Items dropped by the strategy (the newest refused, or the oldest waiters displaced).
    pub dropped: u64,
    /// Waiters that waited longer than the queue timeout.
    pub timed_out: u64,
    /// Items refused, by reason.
    pub rejected: Rejected,
    /// The median wait before starting, over the last 1,024 items started.
    pub wait_p50: f64,
    /// The 99th percentile of the same waits.
    pub wait_p99: f64,
    /// Every started item's wait, as a histogram (seconds on the handler's clock).
    pub wait_seconds: HistogramSnapshot,
    /// The mean run time of the items that ended.
    pub mean_run_time: f64,
    /// Whether it is closed.
    pub closed: bool,
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) submitted: u64,
    pub(super) admitted: u64,
    pub(super) completed: u64,
    pub(super) failed: u64,
    pub(super) cancelled: u64,
    pub(super) dropped: u64,
    pub(super) timed_out: u64,
    pub(super) rejected: Rejected,
    run_total: u128,
    runs: u64,
    waits: Vec<Nanos>,
    next_wait: usize,
    wait_histogram: Histogram,
}

impl Counts {
    pub(super) fn waited(&mut self, wait: Nanos) {
        self.wait_histogram.record(wait);
        if self.waits.len() < WAIT_SAMPLES {
            self.waits.push(wait);
        } else {
            self.waits[self.next_wait] = wait;
        }
        self.next_wait = (self.next_wait + 1) % WAIT_SAMPLES;
    }

    pub(super) fn ended(&mut self, outcome: Outcome, ran: Nanos) {
        match outcome {
            Outcome::Success => self.completed += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
        self.run_total += u128::from(ran);
        self.runs += 1;
    }

    pub(super) fn mean_run(&self) -> Option<Nanos> {
        (self.runs > 0).then(|| (self.run_total / u128::from(self.runs)) as Nanos)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn snapshot(
        &self,
        limit: usize,
        in_flight: usize,
        queued: usize,
        blocked: usize,
        queued_bytes: u64,
        in_flight_bytes: u64,
        closed: bool,
    ) -> Snapshot {
        let mut waits = self.waits.clone();
        waits.sort_unstable();
        Snapshot {
            limit,
            in_flight,
            queued,
            blocked,
            queued_bytes,
            in_flight_bytes,
            submitted: self.submitted,
            admitted: self.admitted,
            completed: self.completed,
            failed: self.failed,
            cancelled: self.cancelled,
            dropped: self.dropped,
            timed_out: self.timed_out,
            rejected: self.rejected.clone(),
            wait_p50: percentile(&waits, 0.50),
            wait_p99: percentile(&waits, 0.99),
            wait_seconds: self.wait_histogram.snapshot(),
            mean_run_time: self.mean_run().map_or(0.0, nanos_to_secs),
            closed,
        }
    }
}

/// Nearest-rank percentile of sorted waits, in seconds (0 with no sample).
fn percentile(sorted: &[Nanos], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    nanos_to_secs(sorted[rank.clamp(1, sorted.len()) - 1])
}
