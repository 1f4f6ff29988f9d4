//! The fixed window: at most `limit` per window, windows aligned to the Unix epoch, so that
//! "1000/day" resets at 00:00 UTC and every host agrees on the boundaries.
//!
//! Cheap (two integers of state) but bursty at the edges: up to `2 × limit` can pass within one
//! window's length straddling a boundary.

use super::Decision;
use crate::clock::Nanos;

/// At most `limit` per `window` nanoseconds, counted in epoch-aligned windows.
///
/// ```
/// use seawall::algorithm::fixed_window::FixedWindow;
///
/// let w = FixedWindow::new(2, 10);
/// let mut s = w.fresh(0);
/// assert!(w.decide(&mut s, 3, 1, true).allowed);
/// assert!(w.decide(&mut s, 4, 1, true).allowed);
/// let d = w.decide(&mut s, 5, 1, true);
/// assert!(!d.allowed);
/// assert_eq!(d.retry_after, 5); // the next window starts at 10
/// assert!(w.decide(&mut s, 10, 1, true).allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedWindow {
    limit: u64,
    window: Nanos,
}

/// The current window's start and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowState {
    start: Nanos,
    count: u64,
}

impl WindowState {
    /// The state as two words, for a store that keeps it outside this process.
    #[inline]
    pub fn to_words(self) -> [u64; 2] {
        [self.start, self.count]
    }

    /// The state [`WindowState::to_words`] gave.
    #[inline]
    pub fn from_words(words: [u64; 2]) -> Self {
        WindowState {
            start: words[0],
            count: words[1],
        }
    }
}

impl FixedWindow {
    /// `limit` ≥ 1 per `window` ≥ 1 ns (callers validate; zero is raised to one).
    pub fn new(limit: u64, window: Nanos) -> Self {
        FixedWindow {
            limit: limit.max(1),
            window: window.max(1),
        }
    }

    /// A key never seen: an empty window.
    pub fn fresh(&self, now: Nanos) -> WindowState {
        WindowState {
            start: now - now % self.window,
            count: 0,
        }
    }

    /// The state seen from `now`: a later window starts empty. A clock that went back stays in
    /// the window it was in, so it grants nothing extra.
    fn current(&self, state: &WindowState, now: Nanos) -> WindowState {
        let start = now - now % self.window;
        if start > state.start {
            WindowState { start, count: 0 }
        } else {
            *state
        }
    }

    /// Admits `cost` if the window has room; with `commit` false only says what it would do.
    pub fn decide(&self, state: &mut WindowState, now: Nanos, cost: u64, commit: bool) -> Decision {
        let mut cur = self.current(state, now);
        let allowed = cost <= self.limit - cur.count.min(self.limit);
        if allowed && commit {
            cur.count += cost;
            *state = cur;
        }
        // Nanoseconds to the window's end; Nanos::MAX when it ends past the clock's range.
        let to_end = cur
            .start
            .checked_add(self.window)
            .map_or(Nanos::MAX, |end| end.saturating_sub(now));
        let retry_after = match (allowed, cost > self.limit) {
            (true, _) => 0,
            (false, true) => Nanos::MAX,
            (false, false) => to_end,
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - cur.count.min(self.limit),
            reset_after: if cur.count == 0 { 0 } else { to_end },
            retry_after,
        }
    }

    /// Nanoseconds from `now` until the state is back to fresh: 0 if empty, else to the end of its
    /// window (`Nanos::MAX` when that is past the end of the clock's range).
    pub fn fresh_in(&self, state: &WindowState, now: Nanos) -> Nanos {
        let cur = self.current(state, now);
        if cur.count == 0 {
            0
        } else {
            cur.start
                .checked_add(self.window)
                .map_or(Nanos::MAX, |end| end.saturating_sub(now))
        }
    }

    /// Whether the state is fresh at `now`: dropping it loses nothing.
    pub fn is_fresh(&self, state: &WindowState, now: Nanos) -> bool {
        self.current(state, now).count == 0
    }

    /// The units used in the window that holds `now`.
    pub(crate) fn used(&self, state: &WindowState, now: Nanos) -> u64 {
        self.current(state, now).count
    }

    /// When the state is back to fresh: now if empty, else the end of its window (`Nanos::MAX` if
    /// past the end of the clock's range).
    pub fn fresh_at(&self, state: &WindowState, now: Nanos) -> Nanos {
        now.saturating_add(self.fresh_in(state, now))
    }
}
