//! The token bucket: up to `capacity` tokens, refilled continuously at `refill_rate` per second; a
//! request takes `cost` tokens or none.
//!
//! The state is one number, the moment the bucket will be full again (as in GCRA), kept in integer
//! units chosen so that arithmetic is exact: a token is `den * 10⁹` units and one nanosecond refills
//! `num` units, where `num / den` is the [`Rate`]. Refill is never stored, only computed from the
//! distance between now and that moment, so no error accumulates however often the bucket is read.

use super::rate::Rate;
use super::Decision;
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;

/// The largest capacity accepted.
pub const MAX_CAPACITY: u64 = 1_000_000_000_000;

/// A token bucket's parameters, and the transitions of its state.
///
/// ```
/// use seawall::algorithm::token_bucket::TokenBucket;
/// use seawall::clock::NANOS_PER_SEC;
///
/// // 3 tokens, one back every 100 ms, starting full.
/// let bucket = TokenBucket::new(3, 10.0, 3).unwrap();
/// let mut state = bucket.fresh(0);
/// assert!(bucket.try_acquire(&mut state, 0, 3));
/// assert!(!bucket.try_acquire(&mut state, 0, 1));
/// assert!(bucket.try_acquire(&mut state, NANOS_PER_SEC / 10, 1));
/// assert_eq!(bucket.tokens(&state, NANOS_PER_SEC / 10), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenBucket {
    capacity: u64,
    initial: u64,
    rate: Rate,
    /// Units per token.
    unit: u128,
    /// `capacity * unit`.
    capacity_units: u128,
}

/// A bucket's state: when it will be full again, in the bucket's units of scaled time. Stored as two
/// `u64` halves so that it packs at 8-byte alignment inside a store's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    hi: u64,
    lo: u64,
}

impl BucketState {
    /// The state as two words, for a store that keeps it outside this process.
    #[inline]
    pub fn to_words(self) -> [u64; 2] {
        [self.hi, self.lo]
    }

    /// The state [`BucketState::to_words`] gave.
    #[inline]
    pub fn from_words(words: [u64; 2]) -> Self {
        BucketState {
            hi: words[0],
            lo: words[1],
        }
    }

    #[inline]
    fn full_at(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    #[inline]
    fn set_full_at(&mut self, v: u128) {
        self.hi = (v >> 64) as u64;
        self.lo = v as u64;
    }
}

impl TokenBucket {
    /// Validates and builds the parameters. `initial` above `capacity` is lowered to it (as the
    /// pure-Python original did); every other out-of-range value is an [`Error`] naming it.
    pub fn new(capacity: u64, refill_rate: f64, initial: u64) -> Result<Self, Error> {
        let rate = Rate::from_per_second(refill_rate).ok_or_else(|| {
            Error::invalid(
                "refill_rate",
                format!(
                    "must be a finite number of tokens per second between {} and {}, or 0 for a \
                     bucket that never refills, got {refill_rate}",
                    super::rate::MIN_RATE,
                    super::rate::MAX_RATE
                ),
            )
        })?;
        Self::with_rate(capacity, rate, initial)
    }

    /// A bucket refilled at exactly `rate`: for limits written as a count per period, such as
    /// GCRA's "10 per 3 seconds", whose rate (10/3 per second) no `f64` holds exactly.
    pub fn with_rate(capacity: u64, rate: Rate, initial: u64) -> Result<Self, Error> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::invalid(
                "capacity",
                format!("must be between 1 and {MAX_CAPACITY}, got {capacity}"),
            ));
        }
        let unit = u128::from(rate.den()) * u128::from(NANOS_PER_SEC);
        Ok(TokenBucket {
            capacity,
            initial: initial.min(capacity),
            rate,
            unit,
            capacity_units: u128::from(capacity) * unit,
        })
    }

    /// The most tokens the bucket holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The tokens a new bucket starts with.
    pub fn initial(&self) -> u64 {
        self.initial
    }

    /// The refill rate, exactly.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    #[inline]
    fn scaled(&self, now: Nanos) -> u128 {
        u128::from(now) * u128::from(self.rate.num())
    }

    /// Units missing from a full bucket at `now` (a token is `den * 10⁹` units).
    #[inline]
    pub fn deficit(&self, state: &BucketState, now: Nanos) -> u128 {
        state.full_at().saturating_sub(self.scaled(now))
    }

    /// The state of a new bucket at `now`: `initial` tokens.
    pub fn fresh(&self, now: Nanos) -> BucketState {
        let mut s = BucketState::default();
        s.set_full_at(self.scaled(now) + u128::from(self.capacity - self.initial) * self.unit);
        s
    }

    /// Takes `cost` tokens if they are all there, and says whether it did. The hot path: no division.
    #[inline]
    pub fn try_acquire(&self, state: &mut BucketState, now: Nanos, cost: u64) -> bool {
        let t = self.scaled(now);
        let base = state.full_at().max(t);
        let need = u128::from(cost) * self.unit;
        if base - t + need <= self.capacity_units {
            state.set_full_at(base + need);
            true
        } else {
            false
        }
    }

    /// Whether `cost` tokens are there now, without taking them.
    #[inline]
    pub fn can_acquire(&self, state: &BucketState, now: Nanos, cost: u64) -> bool {
        self.deficit(state, now) + u128::from(cost) * self.unit <= self.capacity_units
    }

    /// The tokens in the bucket at `now`, fractions included.
    pub fn tokens(&self, state: &BucketState, now: Nanos) -> f64 {
        let have = self.capacity_units - self.deficit(state, now).min(self.capacity_units);
        let whole = have / self.unit;
        let frac = have % self.unit;
        whole as f64 + frac as f64 / self.unit as f64
    }

    /// Whether the bucket is full at `now`: its state is then the same as a bucket that was never
    /// used, so dropping it loses nothing.
    #[inline]
    pub fn is_full(&self, state: &BucketState, now: Nanos) -> bool {
        self.deficit(state, now) == 0
    }

    /// Nanoseconds from `now` until `units` more units have refilled (`Nanos::MAX` if never).
    fn time_to_refill(&self, units: u128) -> Nanos {
        if units == 0 {
            return 0;
        }
        if self.rate.num() == 0 {
            return Nanos::MAX;
        }
        Nanos::try_from(units.div_ceil(u128::from(self.rate.num()))).unwrap_or(Nanos::MAX)
    }

    /// Nanoseconds from `now` until the bucket is full again (`Nanos::MAX` if it never refills, or
    /// not within the clock's range).
    pub fn fresh_in(&self, state: &BucketState, now: Nanos) -> Nanos {
        self.time_to_refill(self.deficit(state, now))
    }

    /// The share of the capacity missing at `now`, as a fraction of 2³², rounded up (0 only when
    /// full): what evicting the bucket would give away, comparable between buckets of any size.
    pub(crate) fn missing_share(&self, state: &BucketState, now: Nanos) -> u128 {
        let deficit = self.deficit(state, now).min(self.capacity_units);
        (deficit << 32).div_ceil(self.capacity_units)
    }

    /// The moment the bucket is full again (`Nanos::MAX` if it never refills).
    pub fn full_at(&self, state: &BucketState, now: Nanos) -> Nanos {
        now.saturating_add(self.time_to_refill(self.deficit(state, now)))
    }

    /// Takes `cost` tokens if they are all there, and reports the full [`Decision`].
    pub fn decide(&self, state: &mut BucketState, now: Nanos, cost: u64) -> Decision {
        self.decide_with(state, now, cost, true)
    }

    /// [`TokenBucket::decide`], or with `commit` false only what it would decide, changing nothing.
    pub fn decide_with(
        &self,
        state: &mut BucketState,
        now: Nanos,
        cost: u64,
        commit: bool,
    ) -> Decision {
        let allowed = if commit {
            self.try_acquire(state, now, cost)
        } else {
            self.can_acquire(state, now, cost)
        };
        let deficit = self.deficit(state, now);
        let retry_after = if allowed {
            0
        } else {
            let need = u128::from(cost) * self.unit;
            if need > self.capacity_units {
                Nanos::MAX
            } else {
                self.time_to_refill(deficit + need - self.capacity_units)
            }
        };
        Decision {
            allowed,
            limit: self.capacity,
            remaining: ((self.capacity_units - deficit.min(self.capacity_units)) / self.unit)
                as u64,
            reset_after: self.time_to_refill(deficit),
            retry_after,
        }
    }

    /// The state under `self` of a bucket that had `state` under `old`: the same number of tokens
    /// (rounded down to `self`'s units), at most `self`'s capacity. Used when a key's configuration
    /// changes.
    pub fn rebase(&self, old: &TokenBucket, state: &BucketState, now: Nanos) -> BucketState {
        let have_old = old.capacity_units - old.deficit(state, now).min(old.capacity_units);
        // have_old * self.unit / old.unit without overflowing u128.
        let have = (have_old / old.unit) * self.unit + (have_old % old.unit) * self.unit / old.unit;
        let deficit = self.capacity_units - have.min(self.capacity_units);
        let mut s = BucketState::default();
        s.set_full_at(self.scaled(now) + deficit);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Nanos = NANOS_PER_SEC;
    const T0: Nanos = 1_700_000_000 * S;

    #[test]
    fn starts_with_initial_tokens_and_refills_to_capacity() {
        let b = TokenBucket::new(100, 10.0, 50).unwrap();
        let mut s = b.fresh(T0);
        assert_eq!(b.tokens(&s, T0), 50.0);
        assert!(!b.is_full(&s, T0));
        assert_eq!(b.tokens(&s, T0 + 5 * S), 100.0);
        assert!(b.is_full(&s, T0 + 5 * S));
        assert!(b.try_acquire(&mut s, T0 + 10 * S, 100));
        assert!(!b.try_acquire(&mut s, T0 + 10 * S, 1));
    }

    #[test]
    fn initial_above_capacity_is_lowered() {
        assert_eq!(TokenBucket::new(5, 1.0, 9).unwrap().initial(), 5);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let e = TokenBucket::new(0, 1.0, 0).unwrap_err();
        assert!(e.to_string().starts_with("capacity must be between 1"));
        let e = TokenBucket::new(1, f64::NAN, 0).unwrap_err();
        assert!(e.to_string().starts_with("refill_rate must be"));
    }

    #[test]
    fn no_drift_after_a_million_refills() {
        // A third of a token per second: refilled in a million steps of 3 ms each.
        let b = TokenBucket::new(1_000, 1.0 / 3.0, 0).unwrap();
        let mut s = b.fresh(T0);
        let mut now = T0;
        for _ in 0..1_000_000 {
            now += 3_000_000;
            assert!(b.can_acquire(&s, now, 0));
        }
        // 3000 s at 1/3 token per second is exactly 1000 tokens: full, not 999.99999.
        assert_eq!(b.tokens(&s, now), 1000.0);
        assert!(b.try_acquire(&mut s, now, 1000));
        // And a million consume-one/refill-one cycles at 10/s end exactly where they began.
        let b = TokenBucket::new(10, 10.0, 10).unwrap();
        let mut s = b.fresh(T0);
        let mut now = T0;
        for _ in 0..1_000_000 {
            assert!(b.try_acquire(&mut s, now, 1));
            now += S / 10;
        }
        assert_eq!(b.tokens(&s, now), 10.0);
        assert!(b.is_full(&s, now));
    }

    #[test]
    fn decision_reports_retry_after_and_reset() {
        let b = TokenBucket::new(2, 0.5, 2).unwrap();
        let mut s = b.fresh(T0);
        assert!(b.decide(&mut s, T0, 2).allowed);
        let d = b.decide(&mut s, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 2 * S);
        assert_eq!(d.reset_after, 4 * S);
        assert_eq!(d.remaining, 0);
        assert_eq!(b.decide(&mut s, T0, 3).retry_after, Nanos::MAX);
    }

    #[test]
    fn zero_rate_never_refills() {
        let b = TokenBucket::new(3, 0.0, 3).unwrap();
        let mut s = b.fresh(T0);
        assert!(b.try_acquire(&mut s, T0, 3));
        assert!(!b.try_acquire(&mut s, T0 + 1_000_000 * S, 1));
        assert_eq!(b.full_at(&s, T0), Nanos::MAX);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let b = TokenBucket::new(1, 1.0, 1).unwrap();
        let mut s = b.fresh(T0);
        assert!(b.try_acquire(&mut s, T0, 1));
        assert!(!b.try_acquire(&mut s, T0 - 10 * S, 1));
        assert!(b.try_acquire(&mut s, T0 + S, 1));
    }

    #[test]
    fn rebase_keeps_tokens_and_caps_at_new_capacity() {
        let old = TokenBucket::new(100, 10.0, 100).unwrap();
        let mut s = old.fresh(T0);
        assert!(old.try_acquire(&mut s, T0, 40));
        let smaller = TokenBucket::new(50, 1.0 / 3.0, 0).unwrap();
        let s2 = smaller.rebase(&old, &s, T0);
        assert_eq!(smaller.tokens(&s2, T0), 50.0);
        let larger = TokenBucket::new(1000, 1.0, 0).unwrap();
        let s3 = larger.rebase(&old, &s, T0);
        assert_eq!(larger.tokens(&s3, T0), 60.0);
    }

    /// The reference model: tokens as an exact fraction, refilled on every step and capped.
    struct Model {
        tokens_units: u128,
        last: Nanos,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn admits_exactly_what_the_reference_model_admits(
            capacity in 1u64..50,
            rate_tenths in 0u64..200,
            initial in 0u64..60,
            steps in proptest::collection::vec((0u64..3 * S, 1u64..8), 1..200),
        ) {
            let rate = rate_tenths as f64 / 10.0;
            let b = TokenBucket::new(capacity, rate, initial).unwrap();
            let r = b.rate();
            let unit = u128::from(r.den()) * u128::from(S);
            let cap = u128::from(capacity) * unit;
            let mut model = Model { tokens_units: u128::from(initial.min(capacity)) * unit, last: T0 };
            let mut state = b.fresh(T0);
            let mut now = T0;
            for (gap, cost) in steps {
                now += gap;
                let refill = u128::from(now - model.last) * u128::from(r.num());
                model.tokens_units = (model.tokens_units + refill).min(cap);
                model.last = now;
                let need = u128::from(cost) * unit;
                let expected = model.tokens_units >= need;
                if expected {
                    model.tokens_units -= need;
                }
                prop_assert_eq!(b.try_acquire(&mut state, now, cost), expected);
                let model_tokens = model.tokens_units as f64 / unit as f64;
                prop_assert!((b.tokens(&state, now) - model_tokens).abs() < 1e-9);
            }
        }
    }
}
