//! Python's `Limiter`: keys held to a [`LimitSet`] in a bounded in-memory store, with per-key
//! overrides. Each decision is one [`LimitSet::decide`] on the key's state, atomic under the
//! key's shard lock.

use super::limit::{LimitDecision, LimitSet, Usage};
use crate::clock::Nanos;
use crate::error::Error;
use crate::metrics::top_limited::TopLimited;
use crate::store::memory::{KeyStats, MemoryStore, StoreTotals};

/// Several limits per key, in a bounded in-memory store, with per-key overrides.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::limiter::memory_limiter::Limiter;
/// use seawall::clock::NANOS_PER_SEC as S;
///
/// let limiter = Limiter::new(LimitSet::parse("2/second; 3/minute", AlgorithmKind::Gcra).unwrap(), 1000);
/// assert!(limiter.hit("k", 0, 2).unwrap().decision.allowed);
/// // One more per second is fine, but the minute has room for only one more.
/// assert!(!limiter.hit("k", S, 2).unwrap().decision.allowed);
/// assert!(limiter.hit("k", S, 1).unwrap().decision.allowed);
/// ```
pub struct Limiter {
    pub(super) store: MemoryStore<LimitSet>,
    /// The keys refused most (off unless [`Limiter::with_top_limited`]).
    pub(super) top_limited: TopLimited,
}

impl Limiter {
    /// Keys held to `limits`, at most `max_keys` keys held.
    pub fn new(limits: LimitSet, max_keys: usize) -> Self {
        Limiter {
            store: MemoryStore::new(limits, max_keys),
            top_limited: TopLimited::default(),
        }
    }

    /// Counts the keys it refuses in a [`TopLimited`] of `capacity` keys (0: not at all, the
    /// default). Only refusals pay for it.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::memory_limiter::Limiter;
    ///
    /// let limiter = Limiter::new(LimitSet::parse("1/minute", AlgorithmKind::Gcra).unwrap(), 100)
    ///     .with_top_limited(10);
    /// for _ in 0..3 {
    ///     limiter.hit("greedy", 0, 1).unwrap();
    /// }
    /// limiter.hit("modest", 0, 1).unwrap();
    /// let top = limiter.top_limited().top(10);
    /// assert_eq!((top[0].key.as_str(), top[0].count), ("greedy", 2));
    /// assert_eq!(top.len(), 1); // modest was never refused
    /// ```
    pub fn with_top_limited(mut self, capacity: usize) -> Self {
        self.top_limited = TopLimited::new(capacity);
        self
    }

    /// The keys it refused most.
    pub fn top_limited(&self) -> &TopLimited {
        &self.top_limited
    }

    /// The default limits.
    pub fn limits(&self) -> LimitSet {
        self.store.default_config()
    }

    /// The bound on keys held.
    pub fn max_keys(&self) -> usize {
        self.store.max_keys()
    }

    /// Decides `cost` for `key` and counts it if admitted.
    #[inline]
    pub fn hit(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        let d = self.store.try_update(key, now, |set, state, stats| {
            set.check_cost(cost)?;
            let (decision, i, binding_reset_after) =
                state.with_mut(|state| set.decide(state, now, cost, true));
            stats.record(decision.allowed, now);
            Ok(LimitDecision {
                decision,
                binding: set.limits()[i].spec(),
                binding_reset_after,
            })
        })?;
        if !d.decision.allowed {
            self.top_limited.record(key);
        }
        Ok(d)
    }

    /// What [`Limiter::hit`] would decide, changing nothing and creating no key.
    pub fn test(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        self.store.read(key, now, |set, state, _| {
            set.check_cost(cost)?;
            let (decision, i, binding_reset_after) = state
                .clone()
                .with_mut(|scratch| set.decide(scratch, now, cost, false));
            Ok(LimitDecision {
                decision,
                binding: set.limits()[i].spec(),
                binding_reset_after,
            })
        })
    }

    /// Back to fresh, counters zeroed; false if `key` is not held.
    pub fn reset(&self, key: &str, now: Nanos) -> bool {
        self.store.reset(key, now)
    }

    /// Holds `key` to `limits` instead of the default; limits it had before keep their state.
    /// The default limits clear the override. Refused when `max_keys` keys have overrides already
    /// (the overrides are bounded as the keys are): clear some first.
    pub fn set_override(&self, key: &str, limits: LimitSet, now: Nanos) -> Result<(), Error> {
        if self.store.set_override(key, limits, now) {
            Ok(())
        } else {
            Err(Error::invalid(
                "max_keys",
                format!(
                    "reached: {} keys have their own limits already; clear_override() one first \
                     or raise max_keys",
                    self.store.max_keys()
                ),
            ))
        }
    }

    /// Puts `key` back on the default limits (limits it keeps keep their state) and frees its
    /// override; false if it had none.
    pub fn clear_override(&self, key: &str, now: Nanos) -> bool {
        self.store.clear_override(key, now)
    }

    /// Keys with their own limits.
    pub fn overrides(&self) -> usize {
        self.store.overrides()
    }

    /// Heap bytes held: the keys' records, their states, the index and the overrides.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
    }

    /// Drops every key that is back to fresh (lossless); returns how many.
    pub fn cleanup(&self, now: Nanos) -> usize {
        self.store.cleanup(now)
    }

    /// What each of `key`'s limits holds at `now` ([`LimitSet::usage`]), changing nothing and
    /// creating no key: a key not held shows every limit unused.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::memory_limiter::Limiter;
    ///
    /// let limiter = Limiter::new(LimitSet::parse("5/minute; 100/day", AlgorithmKind::FixedWindow).unwrap(), 10);
    /// limiter.hit("k", 0, 2).unwrap();
    /// let u = limiter.usage("k", 0);
    /// assert_eq!((u[0].used, u[0].remaining, u[1].remaining), (2, 3, 98));
    /// assert_eq!(limiter.usage("other", 0)[0].used, 0);
    /// ```
    pub fn usage(&self, key: &str, now: Nanos) -> Vec<Usage> {
        self.store
            .read(key, now, |set, state, _| state.with(|s| set.usage(s, now)))
    }

    /// `key`'s counters, if held.
    pub fn key_stats(&self, key: &str, now: Nanos) -> Option<KeyStats> {
        self.store.read(key, now, |_, _, stats| stats.copied())
    }

    /// Store-wide counters.
    pub fn totals(&self) -> StoreTotals {
        self.store.totals()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Whether `key` is held: its hash, its shard's lock and a probe of the shard's index, the
    /// part of every decision that is not the decision.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::memory_limiter::Limiter;
    ///
    /// let limiter = Limiter::new(LimitSet::parse("2/minute", AlgorithmKind::Gcra).unwrap(), 100);
    /// assert!(!limiter.contains("k"));
    /// limiter.hit("k", 0, 1).unwrap();
    /// assert!(limiter.contains("k"));
    /// ```
    pub fn contains(&self, key: &str) -> bool {
        self.store.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NANOS_PER_SEC as S;
    use crate::limiter::limit::{AlgorithmKind, Limit};
    use crate::limiter::spec::LimitSpec;

    fn limiter(text: &str, kind: AlgorithmKind) -> Limiter {
        Limiter::new(LimitSet::parse(text, kind).unwrap(), 1000)
    }

    #[test]
    fn a_denied_request_is_counted_by_no_limit() {
        for kind in [
            AlgorithmKind::Gcra,
            AlgorithmKind::FixedWindow,
            AlgorithmKind::SlidingLog,
            AlgorithmKind::SlidingCounter,
        ] {
            let l = limiter("5/second; 6/minute", kind);
            assert!(l.hit("k", 0, 5).unwrap().decision.allowed);
            // The second is full: this is denied by it and must not use the minute's last unit.
            let d = l.hit("k", 0, 1).unwrap();
            assert!(!d.decision.allowed, "{kind:?}");
            assert_eq!(d.binding.count, 5);
            // Two seconds on, even the sliding counter's previous second weighs nothing.
            assert!(l.hit("k", 2 * S, 1).unwrap().decision.allowed, "{kind:?}");
            let d = l.hit("k", 2 * S, 1).unwrap();
            assert!(!d.decision.allowed, "{kind:?}");
            assert_eq!(d.binding.count, 6, "{kind:?}: the minute binds now");
        }
    }

    /// `usage` reports, per limit, what `test` sees: the binding limit's remaining is the
    /// smallest, each limit's used and remaining add up to its count, and nothing is spent.
    #[test]
    fn usage_agrees_with_test_and_spends_nothing() {
        for kind in AlgorithmKind::ALL {
            let l = limiter("4/second; 10/minute", kind);
            for step in 0..40u64 {
                let now = step * S / 3;
                if step % 4 != 3 {
                    l.hit("k", now, 1).unwrap();
                }
                let u = l.usage("k", now);
                let t = l.test("k", now, 1).unwrap().decision;
                assert_eq!(
                    u.iter().map(|u| u.remaining).min(),
                    Some(t.remaining),
                    "{kind:?}"
                );
                assert_eq!(t.allowed, u.iter().all(|u| u.remaining >= 1), "{kind:?}");
                for (u, count) in u.iter().zip([4, 10]) {
                    assert_eq!(u.used + u.remaining, count, "{kind:?}");
                }
                assert_eq!(l.usage("k", now), u, "{kind:?}: usage spent something");
            }
        }
    }

    #[test]
    fn test_changes_nothing() {
        let l = limiter("1/second", AlgorithmKind::SlidingLog);
        for _ in 0..3 {
            assert!(l.test("k", 0, 1).unwrap().decision.allowed);
        }
        assert!(l.is_empty());
        assert!(l.hit("k", 0, 1).unwrap().decision.allowed);
        assert!(!l.test("k", 0, 1).unwrap().decision.allowed);
    }

    #[test]
    fn cost_above_the_smallest_limit_is_an_error() {
        let l = limiter("5/second; 100/minute", AlgorithmKind::Gcra);
        let e = l.hit("k", 0, 6).unwrap_err();
        assert!(e.to_string().contains("smallest limit (5)"), "{e}");
        assert!(l.hit("k", 0, 0).is_err());
    }

    #[test]
    fn overrides_keep_the_state_of_limits_that_stay() {
        let l = limiter("2/minute", AlgorithmKind::FixedWindow);
        assert!(l.hit("vip", 0, 2).unwrap().decision.allowed);
        let more = LimitSet::parse("2/minute; 100/day", AlgorithmKind::FixedWindow).unwrap();
        l.set_override("vip", more, 0).unwrap();
        assert!(!l.hit("vip", 0, 1).unwrap().decision.allowed);
        let other = LimitSet::parse("10/minute", AlgorithmKind::FixedWindow).unwrap();
        l.set_override("vip", other, 0).unwrap();
        assert!(l.hit("vip", 0, 10).unwrap().decision.allowed);
    }

    #[test]
    fn unknown_algorithms_and_bursts_are_refused() {
        assert!("nope".parse::<AlgorithmKind>().is_err());
        let spec: LimitSpec = "1/second".parse().unwrap();
        assert!(Limit::new(spec, AlgorithmKind::FixedWindow, Some(5)).is_err());
        assert!(Limit::new(spec, AlgorithmKind::Gcra, Some(0)).is_err());
        assert_eq!(
            Limit::new(spec, AlgorithmKind::Gcra, Some(5))
                .unwrap()
                .max_cost(),
            5
        );
    }

    /// Issue 11 #19: at the bound, a window key that has used most of its budget is not the one
    /// to go while keys that used less are there to take: evicting it would give it back.
    #[test]
    fn at_the_bound_window_keys_are_ranked_by_what_evicting_them_gives_away() {
        for kind in [
            AlgorithmKind::FixedWindow,
            AlgorithmKind::SlidingLog,
            AlgorithmKind::SlidingCounter,
        ] {
            // Small enough that every eviction samples every key.
            let l = Limiter::new(LimitSet::parse("5/10 seconds", kind).unwrap(), 10);
            let t = 1_800_000_000 * S;
            assert!(l.hit("victim", t, 4).unwrap().decision.allowed);
            for i in 0..200 {
                l.hit(&format!("flood-{i}"), t + S, 1).unwrap();
            }
            assert_eq!(l.len(), 10);
            let d = l.hit("victim", t + S, 1).unwrap().decision;
            assert!(d.allowed, "{kind:?}");
            assert!(
                !l.hit("victim", t + S, 1).unwrap().decision.allowed,
                "{kind:?}: the victim came back with a fresh budget"
            );
            assert_eq!(l.totals().evicted_early, 191, "{kind:?}");
        }
    }

    /// Issue 11 #21: clearing an override frees it; the store counts what overrides hold.
    #[test]
    fn clearing_overrides_frees_them() {
        let l = limiter("10/second", AlgorithmKind::Gcra);
        let vip = LimitSet::parse("100/second", AlgorithmKind::Gcra).unwrap();
        let base = l.heap_bytes();
        for i in 0..10_000 {
            let key = format!("customer-number-{i}");
            l.set_override(&key, vip.clone(), 0).unwrap();
            l.clear_override(&key, 0);
        }
        assert_eq!(l.overrides(), 0);
        assert!(l.heap_bytes() <= base + 4096, "{} > {base}", l.heap_bytes());
        for i in 0..100 {
            l.set_override(&format!("customer-number-{i}"), vip.clone(), 0)
                .unwrap();
        }
        assert_eq!(l.overrides(), 100);
        assert!(l.heap_bytes() >= base + 100 * 16, "overrides are counted");
        // Setting the default limits is clearing.
        l.set_override("customer-number-0", l.limits(), 0).unwrap();
        assert_eq!(l.overrides(), 99);
    }

    /// Issue 11 #21: overrides are bounded by `max_keys`, like the keys they configure.
    #[test]
    fn overrides_are_bounded_by_max_keys() {
        let l = Limiter::new(LimitSet::parse("1/second", AlgorithmKind::Gcra).unwrap(), 3);
        let vip = LimitSet::parse("5/second", AlgorithmKind::Gcra).unwrap();
        for key in ["a", "b", "c"] {
            l.set_override(key, vip.clone(), 0).unwrap();
        }
        // Replacing one that is there is fine; a fourth is refused, naming the bound.
        l.set_override("a", vip.clone(), 0).unwrap();
        let e = l.set_override("d", vip.clone(), 0).unwrap_err();
        assert!(e.to_string().starts_with("max_keys"), "{e}");
        l.clear_override("b", 0);
        l.set_override("d", vip, 0).unwrap();
    }
}
