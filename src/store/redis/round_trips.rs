//! What a Redis-backed decider's calls cost: round trips, the decisions they carried (so that
//! decisions per round trip can be told) and their latency. Shared by a decider's tokio path,
//! its blocking path and its direct connection ([`super::batcher`]), so one read covers all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::clock::Nanos;
use crate::metrics::histogram::{Histogram, HistogramSnapshot};

/// Counters of the script calls that brought replies back. Thread-safe; relaxed atomics only.
///
/// ```
/// use seawall::store::redis::round_trips::RoundTrips;
///
/// let rt = RoundTrips::default();
/// rt.record(3, 200_000); // one call carrying three decisions, 200 µs
/// rt.record(1, 80_000);
/// let s = rt.snapshot();
/// assert_eq!((s.round_trips, s.decisions), (2, 4));
/// assert_eq!(s.seconds.count, 2);
/// ```
#[derive(Debug, Default)]
pub struct RoundTrips {
    round_trips: AtomicU64,
    decisions: AtomicU64,
    seconds: Histogram,
}

/// One read of [`RoundTrips`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundTripsSnapshot {
    /// Script calls answered.
    pub round_trips: u64,
    /// Decisions those calls carried.
    pub decisions: u64,
    /// How long they took, from the write to the reply.
    pub seconds: HistogramSnapshot,
}

impl RoundTrips {
    /// Counts one answered call carrying `decisions`, that took `took`.
    #[inline]
    pub fn record(&self, decisions: usize, took: Nanos) {
        self.round_trips.fetch_add(1, Relaxed);
        self.decisions.fetch_add(decisions as u64, Relaxed);
        self.seconds.record(took);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RoundTripsSnapshot {
        RoundTripsSnapshot {
            round_trips: self.round_trips.load(Relaxed),
            decisions: self.decisions.load(Relaxed),
            seconds: self.seconds.snapshot(),
        }
    }
}
