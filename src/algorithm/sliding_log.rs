//! The sliding window log: exact. It never admits more than `limit` within any interval of length
//! `window`, because it remembers when each admitted unit was admitted.
//!
//! Memory is bounded by `limit`, not by traffic: only admitted requests are logged, a weighted
//! request is one entry, and requests at the same nanosecond share an entry. Each decision is
//! amortised O(1): expired entries leave from the front, new ones join at the back.

use std::collections::VecDeque;

use super::Decision;
use crate::clock::Nanos;

/// At most `limit` per any `window` nanoseconds.
///
/// ```
/// use seawall::algorithm::sliding_log::SlidingLog;
///
/// let log = SlidingLog::new(2, 10);
/// let mut s = log.fresh(0);
/// assert!(log.decide(&mut s, 0, 1, true).allowed);
/// assert!(log.decide(&mut s, 6, 1, true).allowed);
/// let d = log.decide(&mut s, 9, 1, true);
/// assert!(!d.allowed);
/// assert_eq!(d.retry_after, 1); // the entry at 0 leaves at 10
/// assert!(log.decide(&mut s, 10, 1, true).allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlidingLog {
    limit: u64,
    window: Nanos,
}

/// The admitted entries of the last window, oldest first, and their total cost.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogState {
    entries: VecDeque<(Nanos, u64)>,
    total: u64,
}

impl LogState {
    /// Entries held; at most the limit.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(Nanos, u64)>()
    }

    /// The time the log decides at: `now`, or the latest entry's time if the clock has gone back
    /// since, so that entries stay in time order and a clock that goes back grants nothing.
    #[inline]
    fn time(&self, now: Nanos) -> Nanos {
        match self.entries.back() {
            Some(&(at, _)) => at.max(now),
            None => now,
        }
    }

    /// Drops entries admitted at or before `now - window` (exactly, even at the end of time).
    fn expire(&mut self, now: Nanos, window: Nanos) {
        while let Some(&(at, cost)) = self.entries.front() {
            if now.saturating_sub(at) < window {
                break;
            }
            self.entries.pop_front();
            self.total -= cost;
        }
        if self.entries.is_empty() && self.entries.capacity() > 64 {
            self.entries.shrink_to(8);
        }
    }
}

impl SlidingLog {
    /// `limit` ≥ 1 per `window` ≥ 1 ns (callers validate; zero is raised to one).
    pub fn new(limit: u64, window: Nanos) -> Self {
        SlidingLog {
            limit: limit.max(1),
            window: window.max(1),
        }
    }

    /// A key never seen: an empty log.
    pub fn fresh(&self, _now: Nanos) -> LogState {
        LogState::default()
    }

    /// Admits `cost` if the last window has room; with `commit` false only says what it would do
    /// (it still forgets expired entries, which changes nothing observable).
    pub fn decide(&self, state: &mut LogState, now: Nanos, cost: u64, commit: bool) -> Decision {
        let at = state.time(now);
        state.expire(at, self.window);
        let room = self.limit - state.total.min(self.limit);
        let allowed = cost <= room;
        if allowed && commit {
            match state.entries.back_mut() {
                Some((t, c)) if *t == at => *c += cost,
                _ => state.entries.push_back((at, cost)),
            }
            state.total += cost;
        }
        let retry_after = if allowed {
            0
        } else if cost > self.limit {
            Nanos::MAX
        } else {
            // Wait until enough of the oldest entries have left. The log may hold more than this
            // limit (a service deciding each call with its own limit), so in u128.
            let need = u128::from(state.total) + u128::from(cost) - u128::from(self.limit);
            let mut freed = 0u128;
            let mut leave_in = 0;
            for &(t, c) in &state.entries {
                freed += u128::from(c);
                leave_in = self.leave_in(t, now);
                if freed >= need {
                    break;
                }
            }
            leave_in
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - state.total.min(self.limit),
            reset_after: self.fresh_in(state, now),
            retry_after,
        }
    }

    /// Nanoseconds from `now` until an entry logged at `at` leaves; `Nanos::MAX` when that is past
    /// the end of the clock's range.
    fn leave_in(&self, at: Nanos, now: Nanos) -> Nanos {
        at.checked_add(self.window)
            .map_or(Nanos::MAX, |t| t.saturating_sub(now))
    }

    /// Nanoseconds from `now` until the log is empty: 0 if it is, `Nanos::MAX` when that is past the
    /// end of the clock's range.
    pub fn fresh_in(&self, state: &LogState, now: Nanos) -> Nanos {
        match state.entries.back() {
            Some(&(at, _)) => self.leave_in(at, now),
            None => 0,
        }
    }

    /// Whether the log is empty at `now`: dropping it loses nothing.
    pub fn is_fresh(&self, state: &LogState, now: Nanos) -> bool {
        self.fresh_in(state, now) == 0
    }

    /// What the log holds at `now`, as a store's eviction weighs it: the units logged and
    /// how long until they would have left (the midpoint of the oldest and newest entry's).
    pub(crate) fn held(&self, state: &LogState, now: Nanos) -> (u64, Nanos) {
        match (state.entries.front(), state.entries.back()) {
            (Some(&(first, _)), Some(&(last, _))) => {
                let (a, b) = (self.leave_in(first, now), self.leave_in(last, now));
                (state.total, a / 2 + b / 2)
            }
            _ => (0, 0),
        }
    }

    /// When the log will be empty (`Nanos::MAX` if past the end of the clock's range).
    pub fn fresh_at(&self, state: &LogState, now: Nanos) -> Nanos {
        now.saturating_add(self.fresh_in(state, now))
    }
}
