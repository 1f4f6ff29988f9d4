//! seawall's own limiter: several limits on one key, each with its algorithm, decided together.
//!
//! A request is admitted only if every limit admits it, and then it is counted by every limit; a
//! request that any limit denies is counted by none (all or nothing). The combined decision reports
//! the binding limit: when admitted, the one with the fewest units left; when denied, the one
//! whose wait is longest, since the request needs every limit to have room.
//!
//! (About 600 lines: the four algorithms' parameters, states, eviction ranks and usage side by
//! side.)

use std::str::FromStr;

use super::all_or_nothing;
use super::key_states::KeyStates;
use super::spec::{parse_limits, LimitSpec};
use crate::algorithm::fixed_window::{FixedWindow, WindowState};
use crate::algorithm::gcra::{gcra, leaky_bucket};
use crate::algorithm::rate::{MAX_RATE, MIN_RATE};
use crate::algorithm::sliding_counter::{CounterState, SlidingCounter};
use crate::algorithm::sliding_log::{LogState, SlidingLog};
use crate::algorithm::token_bucket::{BucketState, TokenBucket, MAX_CAPACITY};
use crate::algorithm::Decision;
use crate::clock::Nanos;
use crate::error::Error;
use crate::store::memory::Keyed;

/// Which algorithm enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmKind {
    /// GCRA: smooth, bursts up to the count (or `burst`); one timestamp of state. The default.
    Gcra,
    /// A token bucket holding the count (or `burst`), refilled at count per period.
    TokenBucket,
    /// A leaky bucket (meter) as deep as the count (or `burst`), draining count per period.
    LeakyBucket,
    /// Epoch-aligned windows with a counter each.
    FixedWindow,
    /// An exact log of the last window's admissions.
    SlidingLog,
    /// A two-window weighted estimate of the sliding window.
    SlidingCounter,
}

impl AlgorithmKind {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [AlgorithmKind; 6] = [
        AlgorithmKind::Gcra,
        AlgorithmKind::TokenBucket,
        AlgorithmKind::LeakyBucket,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::SlidingLog,
        AlgorithmKind::SlidingCounter,
    ];

    /// The name users write.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmKind::Gcra => "gcra",
            AlgorithmKind::TokenBucket => "token_bucket",
            AlgorithmKind::LeakyBucket => "leaky_bucket",
            AlgorithmKind::FixedWindow => "fixed_window",
            AlgorithmKind::SlidingLog => "sliding_window_log",
            AlgorithmKind::SlidingCounter => "sliding_window_counter",
        }
    }
}

impl FromStr for AlgorithmKind {
    type Err = Error;

    /// ```
    /// use seawall::limiter::limit::AlgorithmKind;
    ///
    /// assert_eq!("sliding_log".parse::<AlgorithmKind>().unwrap(), AlgorithmKind::SlidingLog);
    /// assert!("fast".parse::<AlgorithmKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(
            match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "gcra" => AlgorithmKind::Gcra,
                "token_bucket" => AlgorithmKind::TokenBucket,
                "leaky_bucket" => AlgorithmKind::LeakyBucket,
                "fixed_window" => AlgorithmKind::FixedWindow,
                "sliding_window_log" | "sliding_log" | "moving_window" => AlgorithmKind::SlidingLog,
                "sliding_window_counter" | "sliding_counter" => AlgorithmKind::SlidingCounter,
                _ => {
                    return Err(Error::invalid(
                        "algorithm",
                        format!(
                            "must be one of gcra, token_bucket, leaky_bucket, fixed_window, \
                         sliding_window_log, sliding_window_counter; got '{s}'"
                        ),
                    ))
                }
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Alg {
    Bucket(TokenBucket),
    Fixed(FixedWindow),
    Log(SlidingLog),
    Counter(SlidingCounter),
}

/// A limit's parameters as [`Limit::params`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    /// GCRA, token bucket, leaky bucket: `capacity` tokens refilled at exactly `num / den` per
    /// second.
    Bucket {
        /// Tokens the bucket holds.
        capacity: u64,
        /// The refill rate's numerator.
        num: u64,
        /// The refill rate's denominator.
        den: u64,
    },
    /// Fixed window, sliding log, sliding counter: `limit` per `window` nanoseconds.
    Window {
        /// Units per window.
        limit: u64,
        /// The window in nanoseconds.
        window: Nanos,
    },
}

/// One limit's state for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitState {
    /// GCRA, token bucket, leaky bucket.
    Bucket(BucketState),
    /// Fixed window.
    Fixed(WindowState),
    /// Sliding window log.
    Log(LogState),
    /// Sliding window counter.
    Counter(CounterState),
}

/// One limit: a count per period, and the algorithm that enforces it.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, Limit};
///
/// let l = Limit::new("10/second".parse().unwrap(), AlgorithmKind::FixedWindow, None).unwrap();
/// assert_eq!(l.to_string(), "10/second (fixed_window)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    spec: LimitSpec,
    kind: AlgorithmKind,
    burst: Option<u64>,
    alg: Alg,
}

impl Limit {
    /// `spec` enforced by `kind`; `burst` sets the bucket size of the bucket algorithms (default:
    /// the count) and is refused for the others.
    pub fn new(spec: LimitSpec, kind: AlgorithmKind, burst: Option<u64>) -> Result<Self, Error> {
        if burst == Some(0) {
            return Err(Error::invalid("burst", "must be at least 1, got 0"));
        }
        let bucket = |capacity: u64, built: Result<TokenBucket, Error>| {
            if capacity > MAX_CAPACITY {
                return Err(match burst {
                    Some(b) => Error::invalid(
                        "burst",
                        format!("must be between 1 and {MAX_CAPACITY} for {}, got {b}", kind.name()),
                    ),
                    None => Error::invalid(
                        "limit",
                        format!(
                            "'{spec}' makes a bucket of {capacity}, more than {} holds (at most \
                             {MAX_CAPACITY}); give a smaller burst (Limit(..., burst=...)) or use a \
                             window algorithm",
                            kind.name()
                        ),
                    ),
                });
            }
            built.map_err(|_| {
                Error::invalid(
                    "limit",
                    format!(
                        "'{spec}' is a rate outside what {} supports ({MIN_RATE:e} to {MAX_RATE:e} \
                         per second)",
                        kind.name()
                    ),
                )
            })
        };
        let alg = match kind {
            AlgorithmKind::Gcra | AlgorithmKind::TokenBucket => {
                let capacity = burst.unwrap_or(spec.count);
                Alg::Bucket(bucket(capacity, gcra(spec.count, spec.period, burst))?)
            }
            AlgorithmKind::LeakyBucket => {
                let depth = burst.unwrap_or(spec.count);
                Alg::Bucket(bucket(depth, leaky_bucket(depth, spec.count, spec.period))?)
            }
            _ if burst.is_some() => {
                return Err(Error::invalid(
                    "burst",
                    format!(
                        "applies to gcra, token_bucket and leaky_bucket, not {}",
                        kind.name()
                    ),
                ))
            }
            AlgorithmKind::FixedWindow => Alg::Fixed(FixedWindow::new(spec.count, spec.period)),
            AlgorithmKind::SlidingLog => Alg::Log(SlidingLog::new(spec.count, spec.period)),
            AlgorithmKind::SlidingCounter => {
                if spec.period > SlidingCounter::MAX_WINDOW {
                    return Err(Error::invalid(
                        "limit",
                        format!(
                            "'{spec}' is too long for sliding_window_counter, which weighs two \
                             periods: at most {} seconds (about 292 years)",
                            SlidingCounter::MAX_WINDOW / crate::clock::NANOS_PER_SEC
                        ),
                    ));
                }
                Alg::Counter(SlidingCounter::new(spec.count, spec.period))
            }
        };
        Ok(Limit {
            spec,
            kind,
            burst,
            alg,
        })
    }

    /// The count and period.
    pub fn spec(&self) -> LimitSpec {
        self.spec
    }

    /// The algorithm.
    pub fn kind(&self) -> AlgorithmKind {
        self.kind
    }

    /// The bucket size, if set.
    pub fn burst(&self) -> Option<u64> {
        self.burst
    }

    /// The algorithm's own parameters, for stores that run the transitions elsewhere (Redis).
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, Limit, Params};
    ///
    /// let l = Limit::new("10/minute".parse().unwrap(), AlgorithmKind::Gcra, None).unwrap();
    /// // 10 tokens, refilled at 10/60 = 1/6 per second.
    /// assert_eq!(l.params(), Params::Bucket { capacity: 10, num: 1, den: 6 });
    /// ```
    pub fn params(&self) -> Params {
        match &self.alg {
            Alg::Bucket(b) => Params::Bucket {
                capacity: b.capacity(),
                num: b.rate().num(),
                den: b.rate().den(),
            },
            Alg::Fixed(_) | Alg::Log(_) | Alg::Counter(_) => Params::Window {
                limit: self.spec.count,
                window: self.spec.period,
            },
        }
    }

    /// The most one request may cost: more could never be admitted.
    pub fn max_cost(&self) -> u64 {
        match &self.alg {
            Alg::Bucket(b) => b.capacity(),
            _ => self.spec.count,
        }
    }

    fn fresh(&self, now: Nanos) -> LimitState {
        match &self.alg {
            Alg::Bucket(a) => LimitState::Bucket(a.fresh(now)),
            Alg::Fixed(a) => LimitState::Fixed(a.fresh(now)),
            Alg::Log(a) => LimitState::Log(a.fresh(now)),
            Alg::Counter(a) => LimitState::Counter(a.fresh(now)),
        }
    }

    fn decide(&self, state: &mut LimitState, now: Nanos, cost: u64, commit: bool) -> Decision {
        match (&self.alg, state) {
            (Alg::Bucket(a), LimitState::Bucket(s)) => a.decide_with(s, now, cost, commit),
            (Alg::Fixed(a), LimitState::Fixed(s)) => a.decide(s, now, cost, commit),
            (Alg::Log(a), LimitState::Log(s)) => a.decide(s, now, cost, commit),
            (Alg::Counter(a), LimitState::Counter(s)) => a.decide(s, now, cost, commit),
            (_, state) => {
                // Unreachable by construction (a key's states are built from its limits); recover
                // rather than panic.
                *state = self.fresh(now);
                self.decide(state, now, cost, commit)
            }
        }
    }

    /// Whether [`Limit::decide`] would admit `cost`, counting it if `commit`, without building
    /// the [`Decision`]: a bucket's admission is a comparison, its numbers need two divisions.
    #[inline]
    fn admit(&self, state: &mut LimitState, now: Nanos, cost: u64, commit: bool) -> bool {
        match (&self.alg, state) {
            (Alg::Bucket(a), LimitState::Bucket(s)) if commit => a.try_acquire(s, now, cost),
            (Alg::Bucket(a), LimitState::Bucket(s)) => a.can_acquire(s, now, cost),
            (_, state) => self.decide(state, now, cost, commit).allowed,
        }
    }

    fn is_fresh(&self, state: &LimitState, now: Nanos) -> bool {
        match (&self.alg, state) {
            (Alg::Bucket(a), LimitState::Bucket(s)) => a.is_full(s, now),
            (Alg::Fixed(a), LimitState::Fixed(s)) => a.is_fresh(s, now),
            (Alg::Log(a), LimitState::Log(s)) => a.is_fresh(s, now),
            (Alg::Counter(a), LimitState::Counter(s)) => a.is_fresh(s, now),
            _ => true,
        }
    }

    /// What evicting `state` gives away: the share of the limit it has used (in 2⁻³² units,
    /// rounded up) times how long, on average, until that share would have come back by itself.
    /// Shares make limits of any size comparable; 0 only when fresh.
    fn eviction_loss(&self, state: &LimitState, now: Nanos) -> u128 {
        let share = |used: u64| (u128::from(used) << 32).div_ceil(u128::from(self.spec.count));
        let (share, time) = match (&self.alg, state) {
            (Alg::Bucket(a), LimitState::Bucket(s)) => {
                // The missing tokens come back linearly: on average over half the refill time.
                (a.missing_share(s, now), a.fresh_in(s, now) / 2)
            }
            (Alg::Fixed(a), LimitState::Fixed(s)) => (share(a.used(s, now)), a.fresh_in(s, now)),
            (Alg::Log(a), LimitState::Log(s)) => {
                let (used, time) = a.held(s, now);
                (share(used), time)
            }
            (Alg::Counter(a), LimitState::Counter(s)) => {
                let (used, time) = a.held(s, now);
                (share(used), time)
            }
            _ => (0, 0),
        };
        share.saturating_mul(u128::from(time))
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.spec, self.kind.name())?;
        if let Some(b) = self.burst {
            write!(f, ", burst {b}")?;
        }
        write!(f, ")")
    }
}

/// The limits one key is held to.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSet {
    limits: Vec<Limit>,
    max_cost: u64,
}

impl LimitSet {
    /// At least one limit.
    pub fn new(limits: Vec<Limit>) -> Result<Self, Error> {
        let max_cost =
            limits.iter().map(Limit::max_cost).min().ok_or_else(|| {
                Error::invalid("limits", "must hold at least one limit, got none")
            })?;
        Ok(LimitSet { limits, max_cost })
    }

    /// Parses "10/second; 1000/day", every limit enforced by `kind`.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    ///
    /// let set = LimitSet::parse("10/second; 1000/day", AlgorithmKind::Gcra).unwrap();
    /// assert_eq!(set.limits().len(), 2);
    /// ```
    pub fn parse(text: &str, kind: AlgorithmKind) -> Result<Self, Error> {
        let limits = parse_limits(text)?
            .into_iter()
            .map(|spec| Limit::new(spec, kind, None))
            .collect::<Result<_, _>>()?;
        Self::new(limits)
    }

    /// The limits.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// The most one request may cost.
    pub fn max_cost(&self) -> u64 {
        self.max_cost
    }

    /// Checks that one request of `cost` could ever be admitted.
    pub fn check_cost(&self, cost: u64) -> Result<(), Error> {
        if cost == 0 || cost > self.max_cost {
            return Err(Error::invalid(
                "cost",
                format!(
                    "must be between 1 and the smallest limit ({}), got {cost}",
                    self.max_cost
                ),
            ));
        }
        Ok(())
    }

    /// Decides `cost` for a key in `state` across every limit, all or nothing. With `commit`
    /// false, changes nothing. Returns the combined decision, the binding limit's index, and when
    /// the binding limit alone is fresh again.
    pub fn decide(
        &self,
        state: &mut [LimitState],
        now: Nanos,
        cost: u64,
        commit: bool,
    ) -> (Decision, usize, Nanos) {
        if let ([limit], [s]) = (self.limits.as_slice(), &mut *state) {
            let d = limit.decide(s, now, cost, commit);
            return (d, 0, d.reset_after);
        }
        let mut decisions = Vec::with_capacity(self.limits.len());
        let all = all_or_nothing::decide_all(
            self.limits.len(),
            commit,
            &mut decisions,
            |i, commit| {
                Ok::<_, std::convert::Infallible>(self.limits[i].decide(
                    &mut state[i],
                    now,
                    cost,
                    commit,
                ))
            },
            |d| d.allowed,
        );
        let Ok(all) = all;
        combine(&decisions, all)
    }

    /// Whether [`LimitSet::decide`] with `commit` would admit `cost`, counting it (in every limit)
    /// if so, as that does, without building the combined decision: what `allow` needs.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    ///
    /// let set = LimitSet::parse("2/second; 3/minute", AlgorithmKind::Gcra).unwrap();
    /// let mut state: Vec<_> = (0..2).map(|i| set.fresh_state(i, 0)).collect();
    /// assert!(set.admit(&mut state, 0, 2));
    /// assert!(!set.admit(&mut state, 0, 1), "the second is spent");
    /// let s = 1_000_000_000;
    /// assert!(!set.admit(&mut state, s, 2), "the minute has one left");
    /// assert!(set.admit(&mut state, s, 1));
    /// ```
    #[inline]
    pub fn admit(&self, state: &mut [LimitState], now: Nanos, cost: u64) -> bool {
        if let ([limit], [s]) = (self.limits.as_slice(), &mut *state) {
            return limit.admit(s, now, cost, true);
        }
        // All or nothing, as `all_or_nothing::decide_all`: ask every limit without counting
        // (asking changes nothing, so the first refusal ends it), then count in each.
        let all = self
            .limits
            .iter()
            .zip(state.iter_mut())
            .all(|(l, s)| l.admit(s, now, cost, false));
        if all {
            for (l, s) in self.limits.iter().zip(state.iter_mut()) {
                l.admit(s, now, cost, true);
            }
        }
        all
    }

    /// [`LimitSet::admit`] on a key's record: a lone bucket is admitted in place, without
    /// copying its state out to a one-state slice and back (the hot path of `Limiter::allow`).
    #[inline]
    pub(crate) fn admit_key(&self, states: &mut KeyStates, now: Nanos, cost: u64) -> bool {
        if let ([limit], KeyStates::Bucket(s)) = (self.limits.as_slice(), &mut *states) {
            if let Alg::Bucket(a) = &limit.alg {
                return a.try_acquire(s, now, cost);
            }
        }
        states.with_mut(|states| self.admit(states, now, cost))
    }

    /// What each limit holds for a key in `state` at `now`, changing nothing: one [`Usage`] per
    /// limit, in order. What is left is what [`LimitSet::decide`] would see (a sliding counter's
    /// weighted estimate, a bucket's whole tokens).
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    ///
    /// let set = LimitSet::parse("5/minute; 20/hour", AlgorithmKind::SlidingLog).unwrap();
    /// let mut state: Vec<_> = (0..2).map(|i| set.fresh_state(i, 0)).collect();
    /// set.decide(&mut state, 0, 3, true);
    /// let u = set.usage(&state, 0);
    /// assert_eq!((u[0].used, u[0].remaining), (3, 2));
    /// assert_eq!((u[1].used, u[1].remaining), (3, 17));
    /// ```
    pub fn usage(&self, state: &[LimitState], now: Nanos) -> Vec<Usage> {
        self.limits
            .iter()
            .zip(state.iter())
            .map(|(l, s)| Usage::of(l.spec(), l.decide(&mut s.clone(), now, 1, false)))
            .collect()
    }

    fn fresh_states(&self, now: Nanos) -> Box<[LimitState]> {
        self.limits.iter().map(|l| l.fresh(now)).collect()
    }

    /// Limit `i`'s state for a key seen for the first time at `now`.
    pub fn fresh_state(&self, i: usize, now: Nanos) -> LimitState {
        self.limits[i].fresh(now)
    }

    /// Limit `i`'s state with the whole limit spent at `now`: no state a key can reach by
    /// requests admits more (what a store falls back to when it cannot trust what it holds).
    pub fn spent_state(&self, i: usize, now: Nanos) -> LimitState {
        let limit = &self.limits[i];
        let mut state = limit.fresh(now);
        limit.decide(&mut state, now, limit.max_cost(), true);
        state
    }

    /// Whether `state` (one per limit) is, at `now`, the same as a new key's.
    pub fn states_are_fresh(&self, state: &[LimitState], now: Nanos) -> bool {
        self.limits
            .iter()
            .zip(state.iter())
            .all(|(l, s)| l.is_fresh(s, now))
    }

    /// What dropping `state` (one per limit) gives away at `now` (see [`Keyed::eviction_rank`]).
    pub fn states_loss(&self, state: &[LimitState], now: Nanos) -> u128 {
        self.limits
            .iter()
            .zip(state.iter())
            .map(|(l, s)| l.eviction_loss(s, now))
            .fold(0u128, u128::saturating_add)
    }
}

fn combine(decisions: &[Decision], allowed: bool) -> (Decision, usize, Nanos) {
    let binding = all_or_nothing::binding(decisions, allowed, |d| d);
    let b = decisions[binding];
    (
        Decision {
            allowed,
            limit: b.limit,
            remaining: if allowed {
                b.remaining
            } else {
                decisions.iter().map(|d| d.remaining).min().unwrap_or(0)
            },
            reset_after: decisions.iter().map(|d| d.reset_after).max().unwrap_or(0),
            retry_after: if allowed { 0 } else { b.retry_after },
        },
        binding,
        b.reset_after,
    )
}

impl Keyed for LimitSet {
    type State = KeyStates;

    fn fresh(&self, now: Nanos) -> Self::State {
        match self.limits.as_slice() {
            [one] => KeyStates::one(one.fresh(now)),
            _ => KeyStates::Many(self.fresh_states(now)),
        }
    }

    fn is_fresh(&self, state: &Self::State, now: Nanos) -> bool {
        state.with(|s| self.states_are_fresh(s, now))
    }

    /// The sum of what each limit gives away ([`Limit`]'s share of the limit used × time until it
    /// comes back), as the second element; the first is always 0, so that the sum alone decides.
    fn eviction_rank(&self, state: &Self::State, now: Nanos) -> (Nanos, u128) {
        (0, state.with(|s| self.states_loss(s, now)))
    }

    fn state_heap_bytes(&self, state: &Self::State) -> usize {
        state.heap_bytes()
    }

    fn heap_bytes(&self) -> usize {
        self.limits.capacity() * std::mem::size_of::<Limit>()
    }

    fn rebase(&self, old: &Self, state: &Self::State, now: Nanos) -> Self::State {
        // A limit that stays keeps its state; a new one starts fresh.
        KeyStates::new(state.with(|state| {
            self.limits
                .iter()
                .map(|l| {
                    old.limits
                        .iter()
                        .position(|o| o == l)
                        .map(|i| state[i].clone())
                        .unwrap_or_else(|| l.fresh(now))
                })
                .collect()
        }))
    }
}

/// A combined decision with the limit that bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDecision {
    /// The combined decision.
    pub decision: Decision,
    /// The binding limit's count and period.
    pub binding: LimitSpec,
    /// Nanoseconds until the binding limit alone is fresh again (the combined `reset_after` is
    /// until every limit is): what a per-policy header such as `RateLimit: ...;t=` reports.
    pub binding_reset_after: Nanos,
}

/// One limit's use by one key at one moment ([`LimitSet::usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The limit's count and period.
    pub spec: LimitSpec,
    /// The most the key can have at once (a bucket's capacity, a window's count).
    pub limit: u64,
    /// Units in use: `limit - remaining`.
    pub used: u64,
    /// Whole units left now.
    pub remaining: u64,
    /// Nanoseconds until this limit alone is fresh again.
    pub reset_after: Nanos,
    /// Nanoseconds until one more unit would be admitted by this limit (0: now).
    pub retry_after: Nanos,
}

impl Usage {
    /// The usage that a decision of one unit, made without committing, reports.
    pub fn of(spec: LimitSpec, d: Decision) -> Self {
        let remaining = d.remaining.min(d.limit);
        Usage {
            spec,
            limit: d.limit,
            used: d.limit - remaining,
            remaining,
            reset_after: d.reset_after,
            retry_after: d.retry_after,
        }
    }
}
