//! Two limiters decided as one: [`Limiter::hit_with`] counts a cost against a key in one limiter
//! and a key in another (a tool's per-client limit and a server-wide one) only if both admit it.

use super::all_or_nothing::{binding, decide_all};
use super::key_states::KeyStates;
use super::limit::{LimitDecision, LimitSet};
use super::memory_limiter::Limiter;
use crate::clock::Nanos;
use crate::error::Error;

/// `set`'s decision for `cost` on `state`, counted if `commit` (and admitted).
fn decide(
    set: &LimitSet,
    state: &mut KeyStates,
    now: Nanos,
    cost: u64,
    commit: bool,
) -> LimitDecision {
    let (decision, i, binding_reset_after) =
        state.with_mut(|state| set.decide(state, now, cost, commit));
    LimitDecision {
        decision,
        binding: set.limits()[i].spec(),
        binding_reset_after,
    }
}

/// The error for deciding one key against itself (`other` is this limiter and `other_key` is
/// `key`): it would count the request twice in one budget. Every `hit_with` checks it.
///
/// ```
/// use seawall::limiter::hit_with::same_key;
///
/// assert!(same_key(true, "k", "k").is_err());
/// assert!(same_key(true, "k", "j").is_ok() && same_key(false, "k", "k").is_ok());
/// ```
pub fn same_key(same_limiter: bool, key: &str, other_key: &str) -> Result<(), Error> {
    if same_limiter && key == other_key {
        return Err(Error::invalid(
            "other_key",
            format!("must differ from key when other is the same limiter, got {key:?}"),
        ));
    }
    Ok(())
}

impl Limiter {
    /// Decides `cost` for `key` here and for `other_key` in `other` at once, all or nothing:
    /// counted by both only if both admit it, by neither otherwise. Returns the binding
    /// decision: when admitted, the one with fewer units left; when refused, the one that
    /// refused (the later to admit again, if both did). A refusal is recorded in the statistics
    /// of the key that refused, as a refused [`Limiter::hit`] is.
    ///
    /// Both keys' shards are locked together (in address order: deadlock-free), so no other
    /// decision on either key comes in between. `other` may be this limiter, with another key.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::limiter::memory_limiter::Limiter;
    ///
    /// let per_client = Limiter::new(LimitSet::parse("2/minute", AlgorithmKind::FixedWindow).unwrap(), 100);
    /// let global = Limiter::new(LimitSet::parse("3/minute", AlgorithmKind::FixedWindow).unwrap(), 100);
    /// assert!(per_client.hit_with("alice", &global, "*", 0, 1).unwrap().decision.allowed);
    /// assert!(per_client.hit_with("alice", &global, "*", 0, 1).unwrap().decision.allowed);
    /// // alice is out: refused, and the global limit does not count it.
    /// assert!(!per_client.hit_with("alice", &global, "*", 0, 1).unwrap().decision.allowed);
    /// assert!(per_client.hit_with("bob", &global, "*", 0, 1).unwrap().decision.allowed);
    /// // Now the global limit is out, and bob's refused call is not counted for bob.
    /// let d = per_client.hit_with("bob", &global, "*", 0, 1).unwrap();
    /// assert!(!d.decision.allowed);
    /// assert_eq!(d.binding.count, 3);
    /// assert_eq!(per_client.test("bob", 0, 1).unwrap().decision.remaining, 1);
    /// ```
    pub fn hit_with(
        &self,
        key: &str,
        other: &Limiter,
        other_key: &str,
        now: Nanos,
        cost: u64,
    ) -> Result<LimitDecision, Error> {
        same_key(std::ptr::eq(self, other), key, other_key)?;
        self.store.with_pair(key, &other.store, other_key, |pair| {
            let mut parts: Vec<LimitDecision> = Vec::with_capacity(2);
            let allowed = decide_all(
                2,
                true,
                &mut parts,
                |i, commit| {
                    if commit {
                        pair.try_update(i, now, |set, state, stats| {
                            set.check_cost(cost)?;
                            let d = decide(set, state, now, cost, true);
                            stats.record(d.decision.allowed, now);
                            Ok(d)
                        })
                    } else {
                        pair.read(i, now, |set, state, _| {
                            set.check_cost(cost)?;
                            Ok(decide(set, &mut state.clone(), now, cost, false))
                        })
                    }
                },
                |t| t.decision.allowed,
            )?;
            if !allowed {
                for (i, part) in parts.iter().enumerate() {
                    if !part.decision.allowed {
                        let (limiter, refused) = if i == 0 {
                            (self, key)
                        } else {
                            (other, other_key)
                        };
                        limiter.top_limited.record(refused);
                        pair.try_update(i, now, |_, _, stats| {
                            stats.record(false, now);
                            Ok::<_, Error>(())
                        })?;
                    }
                }
            }
            Ok(parts[binding(&parts, allowed, |t| &t.decision)])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::limit::AlgorithmKind;

    const S: Nanos = 1_000_000_000;

    fn limiter(text: &str) -> Limiter {
        Limiter::new(
            LimitSet::parse(text, AlgorithmKind::FixedWindow).unwrap(),
            1000,
        )
    }

    #[test]
    fn counted_by_both_or_by_neither() {
        let tool = limiter("2/minute");
        let global = limiter("3/minute");
        let hit = |k| tool.hit_with(k, &global, "*", 0, 1).unwrap();
        assert!(hit("a").decision.allowed);
        assert!(hit("a").decision.allowed);
        let refused = hit("a");
        assert!(!refused.decision.allowed);
        assert_eq!(refused.binding.count, 2, "the tool's limit refused");
        assert_eq!(global.test("*", 0, 1).unwrap().decision.remaining, 1);
        assert!(hit("b").decision.allowed);
        let refused = hit("b");
        assert_eq!(refused.binding.count, 3, "the global limit refused");
        assert_eq!(tool.test("b", 0, 1).unwrap().decision.remaining, 1);
        let stats = tool.key_stats("b", 0).unwrap();
        assert_eq!(
            stats.total, 1,
            "bob's refusal is the global limit's, not bob's"
        );
        assert_eq!(global.key_stats("*", 0).unwrap().limited, 1);
    }

    #[test]
    fn admitted_reports_the_tighter_and_the_same_limiter_works_with_two_keys() {
        let l = limiter("5/minute");
        assert!(l.hit("x", 0, 3).unwrap().decision.allowed);
        let d = l.hit_with("y", &l, "x", 0, 1).unwrap();
        assert!(d.decision.allowed);
        assert_eq!(d.decision.remaining, 1, "x has fewer left");
        assert_eq!(l.test("y", 0, 1).unwrap().decision.remaining, 4);
        assert!(l.hit_with("x", &l, "x", 0, 1).is_err());
        // A cost above either limit is an error, and leaves nothing behind.
        let small = limiter("1/minute");
        assert!(l.hit_with("z", &small, "z", 0, 2).is_err());
        assert_eq!(l.test("z", 0, 1).unwrap().decision.remaining, 5);
    }

    #[test]
    fn opposite_orders_from_many_threads_neither_deadlock_nor_overcount() {
        // Small bounds: one shard each, so every call locks both shards.
        let a = std::sync::Arc::new(limiter("1000/minute"));
        let b = std::sync::Arc::new(limiter("300/minute"));
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (a, b, admitted) = (a.clone(), b.clone(), &admitted);
                s.spawn(move || {
                    for _ in 0..200 {
                        let d = if t % 2 == 0 {
                            a.hit_with("k", &b, "k", S, 1)
                        } else {
                            b.hit_with("k", &a, "k", S, 1)
                        };
                        if d.unwrap().decision.allowed {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let admitted = admitted.into_inner();
        assert_eq!(admitted, 300, "the tighter limit admits exactly its count");
        assert_eq!(a.test("k", S, 1).unwrap().decision.remaining, 1000 - 300);
        assert_eq!(b.test("k", S, 1).unwrap().decision.remaining, 0);
    }
}
