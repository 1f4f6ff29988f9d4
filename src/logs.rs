//! Rate-limited log events: the core writes what an operator should hear of (Redis failing and
//! recovering, a breaker around a store opening, rules sync failing, a host-store lock taken
//! over from a dead process) through the `log` crate, on `seawall::*` targets, with key-values.
//! Each call site of [`event!`](crate::event) writes at most one record per [`INTERVAL`]; the
//! next record says how many it held back (`suppressed`), so a flood of failing decisions gives
//! a handful of records, not one per decision.
//!
//! In the extension module the records reach Python's `logging` (loggers `seawall.redis`, ...)
//! through `pyo3-log`, but never from where they are written: they are queued and handed over
//! later on a thread that holds the GIL and no seawall lock (`src/python/logs.rs`), so writing
//! one is safe under any lock and on any thread. Without a logger (`cargo test`), nothing is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use log as __log;

/// The least time between two records of one call site.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Records admitted at or before this time (see [`Throttle`]'s `last`) no longer hold back
/// the next one: [`reset_all`].
static RESET: AtomicU64 = AtomicU64::new(0);

/// Every throttle admits its next record, as if none had been written (tests start clean).
pub fn reset_all() {
    RESET.store(epoch().elapsed().as_nanos() as u64 + 1, Ordering::Relaxed);
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// At most one record per interval, and a count of those held back since the last one.
///
/// ```
/// use std::time::Duration;
/// use seawall::logs::Throttle;
///
/// static T: Throttle = Throttle::new();
/// assert_eq!(T.admit(Duration::from_secs(60)), Some(0));
/// assert_eq!(T.admit(Duration::from_secs(60)), None);
/// assert_eq!(T.admit(Duration::from_secs(60)), None);
/// assert_eq!(T.admit(Duration::ZERO), Some(2)); // two were held back
/// ```
#[derive(Debug, Default)]
pub struct Throttle {
    /// When the last record was admitted: nanoseconds since the process's epoch, plus one
    /// (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    /// A throttle that admits its first record.
    pub const fn new() -> Self {
        Throttle {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last record)` if a record is due now, else `None` (and it
    /// counts as held back). Lock-free: two atomics.
    pub fn admit(&self, interval: Duration) -> Option<u64> {
        let now = epoch().elapsed().as_nanos() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let fresh = last == 0 || last <= RESET.load(Ordering::Relaxed);
        let due = fresh || now.saturating_sub(last) >= interval.as_nanos() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let held = self.suppressed.swap(0, Ordering::AcqRel);
            return Some(if fresh { 0 } else { held });
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Writes a rate-limited record with key-values: at most one per [`INTERVAL`] from this call
/// site, with `event` and `suppressed` (records held back since the last) among its fields.
/// Cheap when no logger takes the level (`log::log_enabled!`); safe under a lock (see the
/// module).
///
/// ```
/// seawall::event!(log::Level::Warn, "seawall::redis", "redis_failed",
///     { url = "redis://host:6379" }, "Redis at {} failed", "redis://host:6379");
/// ```
#[macro_export]
macro_rules! event {
    ($level:expr, $target:literal, $event:literal, { $($k:ident = $v:expr),* $(,)? }, $($msg:tt)+) => {{
        static THROTTLE: $crate::logs::Throttle = $crate::logs::Throttle::new();
        if $crate::logs::__log::log_enabled!(target: $target, $level) {
            if let Some(suppressed) = THROTTLE.admit($crate::logs::INTERVAL) {
                $crate::logs::__log::log!(target: $target, $level,
                    event = $event, suppressed = suppressed $(, $k = $v)*; $($msg)+);
            }
        }
    }};
}
