//! One key's states in the in-memory `Limiter`: a set of one limit with a two-word state (the
//! bucket algorithms, the fixed window) keeps it inline, so that the key's whole record is one
//! 64-byte cache line with no allocation; a single sliding counter boxes its three words alone;
//! any other set keeps one state per limit on the heap.

use super::limit::LimitState;

/// A key's state for each limit of its [`LimitSet`](super::limit::LimitSet), 24 bytes.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::limiter::key_states::KeyStates;
///
/// let one = LimitSet::parse("10/second", AlgorithmKind::Gcra).unwrap();
/// let two = LimitSet::parse("10/second; 100/day", AlgorithmKind::Gcra).unwrap();
/// let inline = KeyStates::new((0..1).map(|i| one.fresh_state(i, 0)).collect());
/// let boxed = KeyStates::new((0..2).map(|i| two.fresh_state(i, 0)).collect());
/// assert!(matches!(inline, KeyStates::Bucket(_)));
/// assert_eq!(boxed.with(|s| s.len()), 2);
/// assert_eq!(std::mem::size_of::<KeyStates>(), 24);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum KeyStates {
    /// The one limit is a bucket (GCRA, token bucket, leaky bucket).
    Bucket(crate::algorithm::token_bucket::BucketState),
    /// The one limit is a fixed window.
    Fixed(crate::algorithm::fixed_window::WindowState),
    /// The one limit is a sliding counter (24 bytes: boxed, in a 32-byte heap block rather than
    /// a 48-byte one for a one-state slice).
    Counter(Box<crate::algorithm::sliding_counter::CounterState>),
    /// Any other set: one state per limit, in order.
    Many(Box<[LimitState]>),
}

impl KeyStates {
    /// The states of each limit, in order, packed.
    pub fn new(states: Vec<LimitState>) -> Self {
        match <[LimitState; 1]>::try_from(states) {
            Ok([one]) => KeyStates::one(one),
            Err(states) => KeyStates::Many(states.into_boxed_slice()),
        }
    }

    /// The state of a set of one limit.
    #[inline]
    pub fn one(state: LimitState) -> Self {
        match state {
            LimitState::Bucket(s) => KeyStates::Bucket(s),
            LimitState::Fixed(s) => KeyStates::Fixed(s),
            LimitState::Counter(s) => KeyStates::Counter(Box::new(s)),
            other => KeyStates::Many(Box::new([other])),
        }
    }

    /// Runs `f` on the states, one per limit.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&[LimitState]) -> R) -> R {
        match self {
            KeyStates::Bucket(s) => f(&[LimitState::Bucket(*s)]),
            KeyStates::Fixed(s) => f(&[LimitState::Fixed(*s)]),
            KeyStates::Counter(s) => f(&[LimitState::Counter(**s)]),
            KeyStates::Many(states) => f(states),
        }
    }

    /// Runs `f` on the states, one per limit, keeping what it changes.
    #[inline]
    pub fn with_mut<R>(&mut self, f: impl FnOnce(&mut [LimitState]) -> R) -> R {
        let mut one = match self {
            KeyStates::Bucket(s) => [LimitState::Bucket(*s)],
            KeyStates::Fixed(s) => [LimitState::Fixed(*s)],
            KeyStates::Counter(s) => [LimitState::Counter(**s)],
            KeyStates::Many(states) => return f(states),
        };
        let r = f(&mut one);
        match (&mut *self, one) {
            // Written back in place: no new box per decision.
            (KeyStates::Counter(s), [LimitState::Counter(new)]) => **s = new,
            (_, [one]) => *self = KeyStates::one(one),
        }
        r
    }

    /// Heap bytes held outside the record.
    pub fn heap_bytes(&self) -> usize {
        match self {
            KeyStates::Counter(_) => {
                std::mem::size_of::<crate::algorithm::sliding_counter::CounterState>()
            }
            KeyStates::Many(states) => {
                std::mem::size_of_val::<[LimitState]>(states)
                    + states
                        .iter()
                        .map(|s| match s {
                            LimitState::Log(log) => log.heap_bytes(),
                            _ => 0,
                        })
                        .sum::<usize>()
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::limit::{AlgorithmKind, LimitSet};

    fn states(text: &str, kind: AlgorithmKind) -> KeyStates {
        let set = LimitSet::parse(text, kind).unwrap();
        KeyStates::new(
            (0..set.limits().len())
                .map(|i| set.fresh_state(i, 0))
                .collect(),
        )
    }

    #[test]
    fn one_two_word_limit_is_inline_and_the_rest_boxed() {
        for kind in AlgorithmKind::ALL {
            let one = states("5/second", kind);
            let inline = matches!(one, KeyStates::Bucket(_) | KeyStates::Fixed(_));
            let two_words = !matches!(
                kind,
                AlgorithmKind::SlidingLog | AlgorithmKind::SlidingCounter
            );
            assert_eq!(inline, two_words, "{kind:?}");
            assert_eq!(one.heap_bytes() == 0, two_words, "{kind:?}");
            assert_eq!(
                matches!(one, KeyStates::Counter(_)),
                kind == AlgorithmKind::SlidingCounter,
                "{kind:?}"
            );
            assert!(matches!(
                states("5/second; 9/minute", kind),
                KeyStates::Many(_)
            ));
        }
    }

    #[test]
    fn with_mut_keeps_what_it_changes() {
        let set = LimitSet::parse("2/second", AlgorithmKind::FixedWindow).unwrap();
        let mut s = states("2/second", AlgorithmKind::FixedWindow);
        let fresh = s.clone();
        assert!(s.with_mut(|st| set.decide(st, 0, 2, true).0.allowed));
        assert_ne!(s, fresh);
        assert!(!s.with_mut(|st| set.decide(st, 0, 1, true).0.allowed));
        // A state of another kind written through it is kept too, boxed.
        s.with_mut(|st| st[0] = set.fresh_state(0, 0));
        assert_eq!(s, fresh);
        let log = LimitSet::parse("2/second", AlgorithmKind::SlidingLog).unwrap();
        s.with_mut(|st| st[0] = log.fresh_state(0, 0));
        assert!(matches!(s, KeyStates::Many(_)));
    }

    #[test]
    fn a_sliding_counter_is_counted_through_its_box() {
        let set = LimitSet::parse("2/second", AlgorithmKind::SlidingCounter).unwrap();
        let mut s = states("2/second", AlgorithmKind::SlidingCounter);
        for _ in 0..2 {
            assert!(s.with_mut(|st| set.decide(st, 0, 1, true).0.allowed));
        }
        assert!(!s.with_mut(|st| set.decide(st, 0, 1, true).0.allowed));
        assert!(matches!(s, KeyStates::Counter(_)));
        assert_eq!(s.with(|st| set.usage(st, 0)[0].used), 2);
    }
}
