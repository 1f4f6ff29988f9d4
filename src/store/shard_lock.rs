//! The lock of a [`super::memory::MemoryStore`] shard: a spin lock whose release is a plain store.
//!
//! A shard is held for one decision (tens of nanoseconds) and, from Python, nearly always by one
//! thread at a time (the GIL serialises the callers). A parking mutex pays two atomic
//! read-modify-writes per decision, taking it and releasing it, since the release must see
//! whether a thread sleeps on it; on x86 each costs as much as the decision itself. This lock
//! pays one: taking it is one atomic swap, releasing it is a release store (a plain `mov`).
//! A thread that finds it taken spins briefly, then yields its time slice until it is free, so a
//! holder that was preempted gets the CPU back.

use parking_lot::lock_api::{GuardSend, RawMutex};
use std::sync::atomic::{AtomicBool, Ordering};

/// The raw lock ([`parking_lot::lock_api`]'s protocol); see the module documentation.
pub struct RawSpinLock(AtomicBool);

/// Spins before the first yield: a decision is over in well under this many pauses.
const SPINS: u32 = 64;

unsafe impl RawMutex for RawSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawSpinLock(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        !self.0.swap(true, Ordering::Acquire)
    }

    #[inline]
    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl RawSpinLock {
    #[cold]
    fn lock_contended(&self) {
        loop {
            let mut spins = 0;
            while self.0.load(Ordering::Relaxed) {
                if spins < SPINS {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            if self.try_lock() {
                return;
            }
        }
    }
}

/// A value behind a [`RawSpinLock`].
///
/// ```
/// use seawall::store::shard_lock::Mutex;
///
/// let counter = Mutex::new(0u64);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| (0..1000).for_each(|_| *counter.lock() += 1));
///     }
/// });
/// assert_eq!(*counter.lock(), 4000);
/// ```
pub type Mutex<T> = parking_lot::lock_api::Mutex<RawSpinLock, T>;
/// The guard of a [`Mutex`].
pub type MutexGuard<'a, T> = parking_lot::lock_api::MutexGuard<'a, RawSpinLock, T>;

#[cfg(test)]
mod tests {
    use super::*;

    /// More threads than cores, each holding the lock across a yield now and then: every
    /// increment is counted (mutual exclusion), and a preempted holder does not stall the rest.
    #[test]
    fn excludes_under_contention() {
        let counter = Mutex::new((0u64, 0u64));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for i in 0..20_000 {
                        let mut g = counter.lock();
                        let before = g.0;
                        if i % 1000 == 0 {
                            std::thread::yield_now();
                        }
                        g.0 = before + 1;
                        g.1 += 1;
                    }
                });
            }
        });
        assert_eq!(*counter.lock(), (160_000, 160_000));
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = Mutex::new(());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        assert!(m.is_locked());
        drop(g);
        assert!(m.try_lock().is_some());
    }
}
