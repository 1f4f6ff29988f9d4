//! Where "now" comes from.
//!
//! Every algorithm in seawall takes the current time as an argument and never reads a clock itself;
//! a clock is only consulted at the edge (the store or the Python binding) and its reading is passed
//! down. Time is a [`Nanos`] count since the Unix epoch, so that windows can be aligned to the epoch
//! and a reading means the same thing on every host.
//!
//! Two clocks ship:
//!
//! * [`SystemClock`]: the wall clock read once at start-up, advanced by the monotonic clock after
//!   that. It never goes backwards, even when NTP steps the wall clock.
//! * [`ManualClock`]: moves only when told to, for tests. It starts at the system clock's reading, so
//!   switching a running limiter to it moves no state.
//!
//! ```
//! use seawall::clock::{Clock, ManualClock, NANOS_PER_SEC};
//!
//! let clock = ManualClock::at(10 * NANOS_PER_SEC);
//! clock.advance(NANOS_PER_SEC / 2);
//! assert_eq!(clock.now(), 10 * NANOS_PER_SEC + NANOS_PER_SEC / 2);
//! ```

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch. A `u64` lasts until the year 2554.
pub type Nanos = u64;

/// One second in [`Nanos`].
pub const NANOS_PER_SEC: Nanos = 1_000_000_000;

/// A source of the current time.
///
/// ```
/// use seawall::clock::{Clock, SystemClock};
///
/// let a = SystemClock.now();
/// let b = SystemClock.now();
/// assert!(b >= a);
/// ```
pub trait Clock: Send + Sync {
    /// The current time in nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
}

/// The wall clock, kept monotonic: the epoch time at the first reading plus the monotonic time
/// elapsed since.
///
/// ```
/// use seawall::clock::{Clock, SystemClock, NANOS_PER_SEC};
///
/// // Some time after 2020-01-01.
/// assert!(SystemClock.now() > 1_577_836_800 * NANOS_PER_SEC);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

struct Anchor {
    wall: Nanos,
    /// The monotonic source: the CPU's time-stamp counter where it is invariant (a few ns to
    /// read), the OS monotonic clock otherwise. Reading it is a third of a decision's cost with
    /// `std::time::Instant` on a VM, hence `quanta`.
    mono: quanta::Clock,
    start: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let mono = quanta::Clock::new();
        let start = mono.raw();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Anchor { wall, mono, start }
    })
}

impl Clock for SystemClock {
    #[inline(always)]
    fn now(&self) -> Nanos {
        let a = anchor();
        let elapsed = a.mono.delta_as_nanos(a.start, a.mono.raw());
        a.wall.saturating_add(elapsed)
    }
}

/// A clock that moves only when told to. Cloning shares the reading: advancing one clone advances
/// them all.
///
/// ```
/// use seawall::clock::{Clock, ManualClock, NANOS_PER_SEC};
///
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// let start = clock.now();
/// shared.advance(3 * NANOS_PER_SEC);
/// assert_eq!(clock.now() - start, 3 * NANOS_PER_SEC);
/// clock.set(start);
/// assert_eq!(shared.now(), start);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock that starts at the system clock's current reading.
    pub fn new() -> Self {
        Self::at(SystemClock.now())
    }

    /// A manual clock that starts at `nanos`.
    pub fn at(nanos: Nanos) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// Moves the clock forward by `nanos`, saturating at the end of time.
    pub fn advance(&self, nanos: Nanos) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(nanos))
            });
    }

    /// Sets the clock to `nanos`; it may move backwards, and every algorithm tolerates that.
    pub fn set(&self, nanos: Nanos) {
        self.nanos.store(nanos, Ordering::Release);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.nanos.load(Ordering::Acquire)
    }
}

/// The clock that objects built without an explicit clock follow: the [`ManualClock`] installed by
/// [`set_default_clock`] while there is one, the [`SystemClock`] otherwise. It is read at every
/// decision, so installing a manual clock reaches even objects that were built before it.
///
/// ```
/// use seawall::clock::{set_default_clock, Clock, DefaultClock, ManualClock};
///
/// let manual = ManualClock::at(42);
/// let previous = set_default_clock(Some(manual.clone()));
/// assert_eq!(DefaultClock.now(), 42);
/// set_default_clock(previous);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClock;

static DEFAULT_IS_MANUAL: AtomicBool = AtomicBool::new(false);
static DEFAULT_MANUAL: RwLock<Option<ManualClock>> = RwLock::new(None);

/// Makes `clock` the default clock (`None`: back to the system clock) and returns the one it
/// replaces, so that callers can restore it. The default is process-wide.
pub fn set_default_clock(clock: Option<ManualClock>) -> Option<ManualClock> {
    let mut slot = DEFAULT_MANUAL.write();
    DEFAULT_IS_MANUAL.store(clock.is_some(), Ordering::Release);
    std::mem::replace(&mut *slot, clock)
}

/// The manual clock installed as the default, if any.
pub fn default_clock() -> Option<ManualClock> {
    DEFAULT_MANUAL.read().clone()
}

impl Clock for DefaultClock {
    #[inline(always)]
    fn now(&self) -> Nanos {
        // One relaxed-cost load on the common path; the lock only while a manual clock is installed.
        if DEFAULT_IS_MANUAL.load(Ordering::Acquire) {
            if let Some(now) = default_manual_now() {
                return now;
            }
        }
        SystemClock.now()
    }
}

/// The installed manual clock's reading, out of the decision's line.
#[cold]
fn default_manual_now() -> Option<Nanos> {
    DEFAULT_MANUAL.read().as_ref().map(ManualClock::now)
}

/// Seconds as `f64` (the Python API's unit) to [`Nanos`], rounded to the nearest nanosecond.
/// Returns `None` for negative, NaN or infinite input, or one past the year 2554.
///
/// ```
/// use seawall::clock::secs_to_nanos;
///
/// assert_eq!(secs_to_nanos(0.1), Some(100_000_000));
/// assert_eq!(secs_to_nanos(-1.0), None);
/// assert_eq!(secs_to_nanos(f64::NAN), None);
/// ```
pub fn secs_to_nanos(secs: f64) -> Option<Nanos> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let nanos = (secs * NANOS_PER_SEC as f64).round();
    if nanos >= u64::MAX as f64 {
        return None;
    }
    Some(nanos as Nanos)
}

/// [`Nanos`] to seconds as `f64`.
///
/// ```
/// use seawall::clock::nanos_to_secs;
///
/// assert_eq!(nanos_to_secs(1_500_000_000), 1.5);
/// ```
pub fn nanos_to_secs(nanos: Nanos) -> f64 {
    // Split so that epoch-scale readings keep their sub-second digits as far as f64 allows.
    (nanos / NANOS_PER_SEC) as f64 + (nanos % NANOS_PER_SEC) as f64 / NANOS_PER_SEC as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let mut last = SystemClock.now();
        for _ in 0..10_000 {
            let now = SystemClock.now();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn manual_clock_starts_near_system_time() {
        let before = SystemClock.now();
        let manual = ManualClock::new();
        let after = SystemClock.now();
        assert!(manual.now() >= before && manual.now() <= after);
    }

    #[test]
    fn advance_saturates() {
        let clock = ManualClock::at(u64::MAX - 1);
        clock.advance(10);
        assert_eq!(clock.now(), u64::MAX);
    }

    #[test]
    fn seconds_round_trip() {
        assert_eq!(secs_to_nanos(1.25), Some(1_250_000_000));
        assert_eq!(secs_to_nanos(f64::INFINITY), None);
        assert_eq!(secs_to_nanos(1e12), None);
        assert_eq!(nanos_to_secs(secs_to_nanos(1234.5).unwrap()), 1234.5);
    }
}
