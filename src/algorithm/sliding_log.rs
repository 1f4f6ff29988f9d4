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

    /// Drops entries admitted at or before `now - window`.
    fn expire(&mut self, now: Nanos, window: Nanos) {
        while let Some(&(at, cost)) = self.entries.front() {
            if at.saturating_add(window) > now {
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
        state.expire(now, self.window);
        let allowed = cost <= self.limit - state.total.min(self.limit);
        if allowed && commit {
            match state.entries.back_mut() {
                Some((at, c)) if *at == now => *c += cost,
                _ => state.entries.push_back((now, cost)),
            }
            state.total += cost;
        }
        let retry_after = if allowed {
            0
        } else if cost > self.limit {
            Nanos::MAX
        } else {
            // Wait until enough of the oldest entries have left.
            let need = state.total + cost - self.limit;
            let mut freed = 0;
            let mut at_leave = now;
            for &(at, c) in &state.entries {
                freed += c;
                at_leave = at.saturating_add(self.window);
                if freed >= need {
                    break;
                }
            }
            at_leave.saturating_sub(now)
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - state.total.min(self.limit),
            reset_after: self.fresh_at(state, now).saturating_sub(now),
            retry_after,
        }
    }

    /// When the log will be empty.
    pub fn fresh_at(&self, state: &LogState, now: Nanos) -> Nanos {
        match state.entries.back() {
            Some(&(at, _)) => at.saturating_add(self.window).max(now),
            None => now,
        }
    }
}
