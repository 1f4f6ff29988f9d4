//! The circuit breaker's state machine: closed, open, half-open.
//!
//! Python decides what counts as a failure; this module decides the state. A call asks for a
//! permit ([`Breaker::try_acquire`]) and reports how it went ([`Breaker::record`]); nothing is
//! held while the call runs, so calls through one breaker run in parallel.
//!
//! * **Closed**: every call is admitted. The breaker opens after `failure_threshold` failures in
//!   a row, or when, over the window (the last `n` calls, or the calls of the last `d` seconds) and
//!   with at least `minimum_calls` in it, the failure rate or the slow-call rate reaches its
//!   threshold.
//! * **Open**: every call is rejected until the open time has passed: `recovery_timeout`, times
//!   `backoff_multiplier` for each time a probe failed since the breaker last closed, at most
//!   `max_recovery_timeout`, with `± jitter` so that many clients do not probe in step.
//! * **Half-open**: at most `half_open_max_calls` probes run at once; the rest are rejected. A
//!   probe that fails opens the breaker again (with backoff); `success_threshold` successful probes
//!   close it. A probe that is never reported frees its slot after `probe_timeout`, so a hung call
//!   cannot leave the breaker half-open for ever.
//!
//! (One file of ~750 lines: the state machine's transitions and the counting windows they read
//! are one invariant; split them with care, in its own change. Its tests are in `tests.rs`.)

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;

pub mod host_record;
pub mod shared;

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass.
    Closed,
    /// Calls are rejected.
    Open,
    /// A few probes pass.
    HalfOpen,
}

impl State {
    /// The name Python sees.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed in a way the breaker counts.
    Failure,
    /// Neither (an excluded exception, a cancellation): only statistics see it.
    Ignored,
}

/// Which calls the rate window holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowKind {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `d` nanoseconds, in one-second buckets.
    Time(Nanos),
}

/// A breaker's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// Successful probes that close it.
    pub success_threshold: u32,
    /// Open time before the first probe.
    pub recovery_timeout: Nanos,
    /// Concurrent probes in half-open.
    pub half_open_max_calls: u32,
    /// A probe not reported within this frees its slot.
    pub probe_timeout: Nanos,
    /// Opens when failures / calls over the window reach this (0 < r ≤ 1).
    pub failure_rate_threshold: Option<f64>,
    /// Opens when slow calls / calls over the window reach this (0 < r ≤ 1).
    pub slow_call_rate_threshold: Option<f64>,
    /// A call at least this long is slow.
    pub slow_call_duration: Option<Nanos>,
    /// The rate window.
    pub window: WindowKind,
    /// Rates are judged only with at least this many calls in the window (with a rate
    /// threshold and a count window, at most the window's size).
    pub minimum_calls: u32,
    /// Each failed probe multiplies the next open time by this (≥ 1).
    pub backoff_multiplier: f64,
    /// The open time never exceeds this.
    pub max_recovery_timeout: Nanos,
    /// Open times vary by ± this fraction (0 ≤ j < 1).
    pub jitter: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            success_threshold: 1,
            recovery_timeout: 30 * NANOS_PER_SEC,
            half_open_max_calls: 1,
            probe_timeout: 30 * NANOS_PER_SEC,
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration: None,
            window: WindowKind::Count(100),
            minimum_calls: 10,
            backoff_multiplier: 2.0,
            max_recovery_timeout: 600 * NANOS_PER_SEC,
            jitter: 0.1,
        }
    }
}

impl BreakerConfig {
    /// Checks every setting's range; the error names the setting.
    ///
    /// ```
    /// use seawall::breaker::BreakerConfig;
    ///
    /// assert!(BreakerConfig::default().validate().is_ok());
    /// let bad = BreakerConfig { failure_threshold: 0, ..BreakerConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().starts_with("failure_threshold"));
    /// ```
    pub fn validate(self) -> Result<Self, Error> {
        let at_least_one = |name: &'static str, v: u32| {
            if v == 0 {
                Err(Error::invalid(name, "must be at least 1, got 0"))
            } else {
                Ok(())
            }
        };
        at_least_one("failure_threshold", self.failure_threshold)?;
        at_least_one("success_threshold", self.success_threshold)?;
        at_least_one("half_open_max_calls", self.half_open_max_calls)?;
        at_least_one("minimum_calls", self.minimum_calls)?;
        let rate = |name: &'static str, v: Option<f64>| match v {
            Some(r) if !(r > 0.0 && r <= 1.0) => Err(Error::invalid(
                name,
                format!("must be a fraction above 0 and at most 1, got {r}"),
            )),
            _ => Ok(()),
        };
        rate("failure_rate_threshold", self.failure_rate_threshold)?;
        rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.slow_call_rate_threshold.is_some() && self.slow_call_duration.is_none() {
            return Err(Error::invalid(
                "slow_call_duration",
                "is needed with slow_call_rate_threshold",
            ));
        }
        match self.window {
            WindowKind::Count(0) => {
                return Err(Error::invalid("window_size", "must be at least 1, got 0"))
            }
            WindowKind::Time(d) if d < NANOS_PER_SEC => {
                return Err(Error::invalid(
                    "window_duration",
                    "must be at least 1 second (the window counts in one-second buckets)",
                ))
            }
            WindowKind::Count(n)
                if n < self.minimum_calls
                    && (self.failure_rate_threshold.is_some()
                        || self.slow_call_rate_threshold.is_some()) =>
            {
                return Err(Error::invalid(
                    "minimum_calls",
                    format!(
                        "({}) must be at most window_size ({n}) with a rate threshold: a window \
                         of {n} calls never holds {} calls, so the rate would never be judged",
                        self.minimum_calls, self.minimum_calls
                    ),
                ));
            }
            _ => {}
        }
        if !(self.backoff_multiplier.is_finite() && self.backoff_multiplier >= 1.0) {
            return Err(Error::invalid(
                "backoff_multiplier",
                format!(
                    "must be a finite number of at least 1, got {}",
                    self.backoff_multiplier
                ),
            ));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(Error::invalid(
                "jitter",
                format!("must be at least 0 and below 1, got {}", self.jitter),
            ));
        }
        if self.probe_timeout == 0 {
            return Err(Error::invalid(
                "probe_timeout",
                "must be positive: a zero timeout would free every probe slot at once",
            ));
        }
        if self.max_recovery_timeout < self.recovery_timeout {
            return Err(Error::invalid(
                "max_recovery_timeout",
                "must be at least recovery_timeout",
            ));
        }
        Ok(self)
    }
}

/// A permit: what [`Breaker::try_acquire`] grants.
pub type Permit = i64;
/// The permit of a call admitted in the closed state.
pub const CLOSED_CALL: Permit = 0;
/// No permit: the call is rejected.
pub const REJECTED: Permit = -1;

/// Counters since the breaker was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Calls reported.
    pub calls: u64,
    /// Successes.
    pub successes: u64,
    /// Failures.
    pub failures: u64,
    /// Calls that counted as neither.
    pub ignored: u64,
    /// Slow calls.
    pub slow_calls: u64,
    /// Calls rejected.
    pub rejections: u64,
    /// Times it opened.
    pub opened_count: u64,
    /// State changes by the state moved to (closed, open, half-open).
    pub transitions_to: [u64; 3],
}

/// A state change, for listeners and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Why.
    pub reason: &'static str,
    /// When.
    pub at: Nanos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    ForcedOpen,
    ForcedClosed,
}

#[derive(Debug, Default)]
struct Window {
    /// Count window: one entry per call (bit 0 failed, bit 1 slow).
    calls: VecDeque<u8>,
    /// Time window: (second, calls, failures, slow calls).
    buckets: VecDeque<(u64, u32, u32, u32)>,
    total: u64,
    failures: u64,
    slow: u64,
}

impl Window {
    fn clear(&mut self) {
        *self = Window::default();
    }

    fn expire(&mut self, kind: WindowKind, now: Nanos) {
        if let WindowKind::Time(d) = kind {
            let oldest = now.saturating_sub(d) / NANOS_PER_SEC;
            while let Some(&(sec, c, f, s)) = self.buckets.front() {
                if sec > oldest || (sec == oldest && d % NANOS_PER_SEC != 0) {
                    break;
                }
                self.buckets.pop_front();
                self.total -= u64::from(c);
                self.failures -= u64::from(f);
                self.slow -= u64::from(s);
            }
        }
    }

    fn push(&mut self, kind: WindowKind, now: Nanos, failed: bool, slow: bool) {
        match kind {
            WindowKind::Count(n) => {
                if self.calls.len() == n as usize {
                    if let Some(old) = self.calls.pop_front() {
                        self.total -= 1;
                        self.failures -= u64::from(old & 1);
                        self.slow -= u64::from(old >> 1);
                    }
                }
                self.calls
                    .push_back(u8::from(failed) | (u8::from(slow) << 1));
            }
            WindowKind::Time(_) => {
                self.expire(kind, now);
                let sec = now / NANOS_PER_SEC;
                match self.buckets.back_mut() {
                    Some(b) if b.0 == sec => {
                        b.1 += 1;
                        b.2 += u32::from(failed);
                        b.3 += u32::from(slow);
                    }
                    _ => self
                        .buckets
                        .push_back((sec, 1, u32::from(failed), u32::from(slow))),
                }
            }
        }
        self.total += 1;
        self.failures += u64::from(failed);
        self.slow += u64::from(slow);
    }
}

struct Inner {
    cfg: BreakerConfig,
    state: State,
    mode: Mode,
    consecutive_failures: u32,
    probe_successes: u32,
    open_until: Nanos,
    reopens: u32,
    probes: Vec<(Permit, Nanos)>,
    next_probe: Permit,
    window: Window,
    stats: BreakerStats,
    rng: u64,
    transitions: u64,
    last: Option<Transition>,
    since: Nanos,
    time_in: [Nanos; 3],
    delta: Delta,
}

/// What a breaker saw since the last [`Breaker::take_delta`]: what a process tells the others
/// when breakers share their state ([`shared`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    /// Calls reported in the closed state.
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow calls.
    pub slow: u64,
    /// Failures in a row at the end (since the last success).
    pub trailing_failures: u64,
    /// Whether any of them succeeded.
    pub success_seen: bool,
    /// If it opened on its own: for how long.
    pub opened_for: Option<Nanos>,
    /// Whether its probes closed it.
    pub closed: bool,
}

/// A circuit breaker, safe to share between threads.
///
/// ```
/// use seawall::breaker::{Breaker, BreakerConfig, Outcome, State, REJECTED};
/// use seawall::clock::NANOS_PER_SEC as S;
///
/// let config = BreakerConfig { failure_threshold: 2, jitter: 0.0, ..BreakerConfig::default() };
/// let b = Breaker::new(config, 0).unwrap();
/// for _ in 0..2 {
///     let p = b.try_acquire(0);
///     b.record(p, Outcome::Failure, 0, 0);
/// }
/// assert_eq!(b.state(0), State::Open);
/// assert_eq!(b.try_acquire(S), REJECTED);
/// let probe = b.try_acquire(30 * S); // recovery_timeout passed: half-open, one probe
/// assert!(probe > 0);
/// assert_eq!(b.try_acquire(30 * S), REJECTED);
/// b.record(probe, Outcome::Success, 0, 30 * S);
/// assert_eq!(b.state(30 * S), State::Closed);
/// ```
pub struct Breaker {
    inner: Mutex<Inner>,
}

impl Inner {
    fn move_to(&mut self, to: State, reason: &'static str, now: Nanos) {
        let from = self.state;
        self.time_in[from.index()] += now.saturating_sub(self.since);
        self.since = now;
        self.state = to;
        self.transitions += 1;
        self.stats.transitions_to[to.index()] += 1;
        self.last = Some(Transition {
            from,
            to,
            reason,
            at: now,
        });
    }

    fn jitter(&mut self) -> f64 {
        // xorshift64*: only spreads open times.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let unit = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + self.cfg.jitter * (2.0 * unit - 1.0)
    }

    fn open(&mut self, reason: &'static str, now: Nanos) {
        let base = self.cfg.recovery_timeout as f64
            * self
                .cfg
                .backoff_multiplier
                .powi(self.reopens.min(64) as i32);
        let capped = base.min(self.cfg.max_recovery_timeout as f64);
        let timeout = (capped * self.jitter()).max(0.0) as Nanos;
        self.open_until = now.saturating_add(timeout);
        self.delta.opened_for = Some(timeout);
        self.stats.opened_count += 1;
        self.probes.clear();
        self.move_to(State::Open, reason, now);
    }

    fn close(&mut self, reason: &'static str, now: Nanos) {
        self.consecutive_failures = 0;
        self.reopens = 0;
        self.window.clear();
        self.probes.clear();
        self.move_to(State::Closed, reason, now);
    }

    /// Time-driven moves: open → half-open when due; forgotten probes free their slots.
    fn refresh(&mut self, now: Nanos) {
        if self.mode != Mode::Normal {
            return;
        }
        if self.state == State::Open && now >= self.open_until {
            self.probe_successes = 0;
            self.probes.clear();
            self.move_to(State::HalfOpen, "recovery_timeout", now);
        }
        if self.state == State::HalfOpen {
            let timeout = self.cfg.probe_timeout;
            self.probes
                .retain(|&(_, started)| started.saturating_add(timeout) > now);
        }
    }

    fn judge_window(&mut self, now: Nanos) {
        let w = &self.window;
        if w.total < u64::from(self.cfg.minimum_calls) {
            return;
        }
        let reached = |count: u64, threshold: Option<f64>| {
            threshold.is_some_and(|t| count as f64 >= t * w.total as f64)
        };
        if reached(w.failures, self.cfg.failure_rate_threshold) {
            self.open("failure_rate", now);
        } else if reached(w.slow, self.cfg.slow_call_rate_threshold) {
            self.open("slow_call_rate", now);
        }
    }
}

impl Breaker {
    /// A closed breaker, made at `now`.
    pub fn new(config: BreakerConfig, now: Nanos) -> Result<Self, Error> {
        let cfg = config.validate()?;
        Ok(Breaker {
            inner: Mutex::new(Inner {
                cfg,
                state: State::Closed,
                mode: Mode::Normal,
                consecutive_failures: 0,
                probe_successes: 0,
                open_until: 0,
                reopens: 0,
                probes: Vec::new(),
                next_probe: 1,
                window: Window::default(),
                stats: BreakerStats::default(),
                rng: {
                    // Distinct seeds for breakers made at the same instant (tests with one
                    // manual clock), so that their jitter differs.
                    static MADE: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (now ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
                },
                transitions: 0,
                last: None,
                since: now,
                time_in: [0; 3],
                delta: Delta::default(),
            }),
        })
    }

    /// A permit for one call, or [`REJECTED`].
    #[inline]
    pub fn try_acquire(&self, now: Nanos) -> Permit {
        let mut g = self.inner.lock();
        match g.mode {
            Mode::ForcedClosed => return CLOSED_CALL,
            Mode::ForcedOpen => {
                g.stats.rejections += 1;
                return REJECTED;
            }
            Mode::Normal => {}
        }
        if g.state != State::Closed {
            g.refresh(now);
        }
        match g.state {
            State::Closed => CLOSED_CALL,
            State::Open => {
                g.stats.rejections += 1;
                REJECTED
            }
            State::HalfOpen => {
                if g.probes.len() < g.cfg.half_open_max_calls as usize {
                    let id = g.next_probe;
                    g.next_probe += 1;
                    g.probes.push((id, now));
                    id
                } else {
                    g.stats.rejections += 1;
                    REJECTED
                }
            }
        }
    }

    /// Reports how a call with `permit` went; `duration` (ns) decides whether it was slow.
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome, duration: Nanos, now: Nanos) {
        let mut g = self.inner.lock();
        let slow = g.cfg.slow_call_duration.is_some_and(|s| duration >= s);
        g.stats.calls += 1;
        match outcome {
            Outcome::Success => g.stats.successes += 1,
            Outcome::Failure => g.stats.failures += 1,
            Outcome::Ignored => g.stats.ignored += 1,
        }
        if slow && outcome != Outcome::Ignored {
            g.stats.slow_calls += 1;
        }
        if permit > CLOSED_CALL {
            // A probe: only one still holding its slot moves the state machine.
            let Some(i) = g.probes.iter().position(|&(id, _)| id == permit) else {
                return;
            };
            g.probes.swap_remove(i);
            if g.state != State::HalfOpen || g.mode != Mode::Normal {
                return;
            }
            match outcome {
                Outcome::Ignored => {}
                Outcome::Failure => {
                    g.reopens = g.reopens.saturating_add(1);
                    g.open("probe_failed", now);
                }
                Outcome::Success => {
                    g.probe_successes += 1;
                    if g.probe_successes >= g.cfg.success_threshold {
                        g.delta.closed = true;
                        g.close("probes_succeeded", now);
                    }
                }
            }
            return;
        }
        if permit != CLOSED_CALL
            || outcome == Outcome::Ignored
            || g.state != State::Closed
            || g.mode != Mode::Normal
        {
            return;
        }
        let failed = outcome == Outcome::Failure;
        let d = &mut g.delta;
        d.calls += 1;
        d.slow += u64::from(slow);
        if failed {
            d.failures += 1;
            d.trailing_failures += 1;
        } else {
            d.success_seen = true;
            d.trailing_failures = 0;
        }
        g.consecutive_failures = if failed {
            g.consecutive_failures.saturating_add(1)
        } else {
            0
        };
        let kind = g.cfg.window;
        g.window.push(kind, now, failed, slow);
        if g.consecutive_failures >= g.cfg.failure_threshold {
            g.open("failure_threshold", now);
        } else {
            g.judge_window(now);
        }
    }

    /// The state at `now` (an open breaker whose time has come is half-open).
    pub fn state(&self, now: Nanos) -> State {
        let mut g = self.inner.lock();
        g.refresh(now);
        g.state
    }

    /// Nanoseconds until a call could be admitted (`Nanos::MAX` when forced open).
    pub fn retry_after(&self, now: Nanos) -> Nanos {
        let mut g = self.inner.lock();
        g.refresh(now);
        match (g.mode, g.state) {
            (Mode::ForcedOpen, _) => Nanos::MAX,
            (Mode::ForcedClosed, _) | (_, State::Closed) => 0,
            (_, State::Open) => g.open_until.saturating_sub(now),
            (_, State::HalfOpen) if g.probes.len() < g.cfg.half_open_max_calls as usize => 0,
            (_, State::HalfOpen) => {
                let first = g.probes.iter().map(|&(_, s)| s).min().unwrap_or(now);
                first
                    .saturating_add(g.cfg.probe_timeout)
                    .saturating_sub(now)
            }
        }
    }

    /// Transitions so far.
    pub fn transitions(&self) -> u64 {
        self.inner.lock().transitions
    }

    /// The last transition.
    pub fn last_transition(&self) -> Option<Transition> {
        self.inner.lock().last
    }

    /// Counters, consecutive failures, and time spent in each state up to `now`.
    pub fn stats(&self, now: Nanos) -> (BreakerStats, u32, [Nanos; 3]) {
        let mut g = self.inner.lock();
        g.refresh(now);
        let mut time_in = g.time_in;
        time_in[g.state.index()] += now.saturating_sub(g.since);
        (g.stats, g.consecutive_failures, time_in)
    }

    /// Closed, normal mode, window and backoff cleared.
    pub fn reset(&self, now: Nanos) {
        let mut g = self.inner.lock();
        g.mode = Mode::Normal;
        g.close("reset", now);
    }

    /// Open until [`Breaker::reset`] or [`Breaker::force_closed`].
    pub fn force_open(&self, now: Nanos) {
        let mut g = self.inner.lock();
        g.mode = Mode::ForcedOpen;
        g.probes.clear();
        g.stats.opened_count += 1;
        g.move_to(State::Open, "forced_open", now);
    }

    /// What it saw since the last call, for sharing; starts a new delta.
    pub fn take_delta(&self) -> Delta {
        std::mem::take(&mut self.inner.lock().delta)
    }

    /// Puts back a delta that could not be shared, ahead of what was seen since.
    pub fn return_delta(&self, earlier: Delta) {
        let mut g = self.inner.lock();
        let later = g.delta;
        g.delta = Delta {
            calls: earlier.calls + later.calls,
            failures: earlier.failures + later.failures,
            slow: earlier.slow + later.slow,
            trailing_failures: if later.success_seen {
                later.trailing_failures
            } else {
                earlier.trailing_failures + later.trailing_failures
            },
            success_seen: earlier.success_seen || later.success_seen,
            opened_for: later.opened_for.or(earlier.opened_for),
            closed: earlier.closed || later.closed,
        };
    }

    /// The settings.
    pub fn config(&self) -> BreakerConfig {
        self.inner.lock().cfg.clone()
    }

    /// Whether it opened on its own since the last [`Breaker::take_delta`].
    #[inline]
    pub fn opened_since_delta(&self) -> bool {
        self.inner.lock().delta.opened_for.is_some()
    }

    /// Opens it for `remaining` because another process's breaker opened (or tripped on the
    /// outcomes all processes share), without counting it as a reopen of its own; an open one
    /// stays open at least that long. Forced modes are left alone.
    ///
    /// ```
    /// use seawall::breaker::{Breaker, BreakerConfig, State};
    /// use seawall::clock::NANOS_PER_SEC as S;
    ///
    /// let b = Breaker::new(BreakerConfig::default(), 0).unwrap();
    /// b.adopt_open(5 * S, S);
    /// assert_eq!(b.state(2 * S), State::Open);
    /// assert_eq!(b.state(6 * S), State::HalfOpen);
    /// ```
    pub fn adopt_open(&self, remaining: Nanos, now: Nanos) {
        let mut g = self.inner.lock();
        if g.mode != Mode::Normal || remaining == 0 {
            return;
        }
        g.refresh(now);
        let until = now.saturating_add(remaining);
        match g.state {
            State::Open => g.open_until = g.open_until.max(until),
            State::Closed | State::HalfOpen => {
                g.open_until = until;
                g.probes.clear();
                g.stats.opened_count += 1;
                g.move_to(State::Open, "shared_open", now);
            }
        }
    }

    /// Closed, and never opens, until [`Breaker::reset`].
    pub fn force_closed(&self, now: Nanos) {
        let mut g = self.inner.lock();
        g.mode = Mode::ForcedClosed;
        g.close("forced_closed", now);
    }
}

#[cfg(test)]
mod tests;
