//! A latency histogram of fixed, log-spaced buckets (50 µs to 5 s), counted with relaxed
//! atomics: recording is a short scan of 16 bounds and two `fetch_add`s, with no lock and no
//! allocation, so it can sit on a hot path. Read as a [`HistogramSnapshot`] (cumulative counts,
//! as Prometheus and OpenTelemetry take them).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::clock::{nanos_to_secs, Nanos};

/// The upper bounds of the buckets, in nanoseconds (a last bucket, `+Inf`, holds the rest).
pub const BOUNDS: [Nanos; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Durations counted per bucket of [`BOUNDS`]. Thread-safe: every method takes `&self`.
///
/// ```
/// use seawall::metrics::histogram::Histogram;
///
/// let h = Histogram::new();
/// h.record(40_000); // 40 µs: the first bucket (≤ 50 µs)
/// h.record(3_000_000); // 3 ms: ≤ 5 ms
/// h.record(9_000_000_000); // 9 s: only +Inf
/// let s = h.snapshot();
/// assert_eq!(s.count, 3);
/// assert_eq!(s.cumulative[0], 1); // ≤ 50 µs
/// assert_eq!(s.cumulative[6], 2); // ≤ 5 ms
/// assert_eq!(s.cumulative[15], 2); // ≤ 5 s
/// assert_eq!(*s.cumulative.last().unwrap(), 3); // +Inf
/// assert_eq!(s.bounds[0], 0.00005);
/// assert!((s.sum - 9.00304).abs() < 1e-9);
/// ```
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; BOUNDS.len() + 1],
    /// The sum of the recorded durations, in nanoseconds.
    sum: AtomicU64,
}

/// One read of a [`Histogram`], in seconds.
///
/// The buckets are read one after the other without a lock: under concurrent recording `count`
/// is the last cumulative count, but `sum` may include (or not yet include) a duration recorded
/// while the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// The finite upper bounds, in seconds.
    pub bounds: Vec<f64>,
    /// Cumulative counts: one per bound, then the `+Inf` bucket (every duration).
    pub cumulative: Vec<u64>,
    /// The sum of the durations, in seconds.
    pub sum: f64,
    /// How many durations were recorded.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one duration of `nanos`.
    #[inline]
    pub fn record(&self, nanos: Nanos) {
        let i = BOUNDS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(nanos, Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            bounds: BOUNDS.iter().map(|&b| nanos_to_secs(b)).collect(),
            cumulative,
            sum: nanos_to_secs(self.sum.load(Relaxed)),
            count: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_increasing() {
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
        let h = Histogram::new();
        for &b in &BOUNDS {
            h.record(b);
        }
        h.record(0);
        let s = h.snapshot();
        // Each bound in its own bucket (≤), and 0 in the first.
        assert_eq!(s.cumulative[0], 2);
        for (i, c) in s.cumulative.iter().enumerate().skip(1).take(15) {
            assert_eq!(*c, i as u64 + 2);
        }
        assert_eq!(s.cumulative.len(), BOUNDS.len() + 1);
        assert_eq!(s.count, 17);
    }
}
