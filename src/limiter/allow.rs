//! [`Limiter::allow`]: [`Limiter::hit`] when only the verdict is wanted, as Python's
//! `Limiter.allow` wants it. The same decision, counted the same way, without the numbers a
//! [`crate::algorithm::Decision`] reports (a bucket's remaining tokens and reset time cost two
//! divisions; its verdict, a comparison).

use super::memory_limiter::Limiter;
use crate::clock::Nanos;
use crate::error::Error;

impl Limiter {
    /// Whether [`Limiter::hit`] admits `cost` for `key` at `now`, counting it if so: the same
    /// state change, key statistics and top-K record, only not the decision's numbers.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::memory_limiter::Limiter;
    ///
    /// let limiter = Limiter::new(LimitSet::parse("2/minute", AlgorithmKind::Gcra).unwrap(), 100);
    /// assert!(limiter.allow("k", 0, 1).unwrap());
    /// assert!(limiter.allow("k", 0, 1).unwrap());
    /// assert!(!limiter.allow("k", 0, 1).unwrap());
    /// assert!(limiter.allow("k", 0, 3).is_err(), "more than the limit can ever admit");
    /// ```
    #[inline]
    pub fn allow(&self, key: &str, now: Nanos, cost: u64) -> Result<bool, Error> {
        let allowed = self.store.try_update(key, now, |set, state, stats| {
            set.check_cost(cost)?;
            let allowed = set.admit_key(state, now, cost);
            stats.record(allowed, now);
            Ok::<_, Error>(allowed)
        })?;
        if !allowed {
            self.top_limited.record(key);
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NANOS_PER_SEC as S;
    use crate::limiter::limit::{AlgorithmKind, LimitSet};
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = AlgorithmKind> {
        prop::sample::select(AlgorithmKind::ALL.to_vec())
    }

    proptest! {
        /// `allow` and `hit` on the same calls: the same verdicts, the same state after (what
        /// `usage` shows), the same counters and the same keys refused most.
        #[test]
        fn allow_is_hit_without_the_numbers(
            kind in kind(),
            limits in prop::sample::select(vec!["3/second", "2/second; 5/10 seconds", "4/second; 6/minute; 9/hour"]),
            calls in prop::collection::vec((0u64..700, 1u64..=3, 0usize..3), 1..80),
        ) {
            let set = LimitSet::parse(limits, kind).unwrap();
            let by_hit = Limiter::new(set.clone(), 100).with_top_limited(4);
            let by_allow = Limiter::new(set, 100).with_top_limited(4);
            let mut now = 1_700_000_000 * S;
            for (step_ms, cost, key) in calls {
                now += step_ms * 1_000_000;
                let key = ["a", "b", "c"][key];
                let hit = by_hit.hit(key, now, cost).map(|d| d.decision.allowed);
                let allow = by_allow.allow(key, now, cost);
                prop_assert_eq!(hit.is_ok(), allow.is_ok());
                if let (Ok(hit), Ok(allow)) = (hit, allow) {
                    prop_assert_eq!(hit, allow, "{:?} at {}", kind, now);
                }
                for k in ["a", "b", "c"] {
                    prop_assert_eq!(by_hit.usage(k, now), by_allow.usage(k, now));
                    prop_assert_eq!(by_hit.key_stats(k, now), by_allow.key_stats(k, now));
                }
            }
            prop_assert_eq!(by_hit.totals(), by_allow.totals());
            let top = |l: &Limiter| {
                l.top_limited().top(4).into_iter().map(|t| (t.key.to_string(), t.count)).collect::<Vec<_>>()
            };
            prop_assert_eq!(top(&by_hit), top(&by_allow));
        }
    }

    #[test]
    fn a_refused_cost_creates_no_key() {
        let l = Limiter::new(
            LimitSet::parse("2/second", AlgorithmKind::Gcra).unwrap(),
            10,
        );
        assert!(l.allow("k", 0, 0).is_err());
        assert!(l.allow("k", 0, 3).is_err());
        assert!(l.is_empty());
    }
}
