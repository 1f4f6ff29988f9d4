//! Every algorithm against a simple reference model, over random arrival times and costs.
//!
//! 10,000 cases per property (set PROPTEST_CASES to change it).

use proptest::prelude::*;
use std::collections::HashMap;

use seawall::algorithm::fixed_window::FixedWindow;
use seawall::algorithm::gcra::{gcra, leaky_bucket};
use seawall::algorithm::sliding_counter::SlidingCounter;
use seawall::algorithm::sliding_log::SlidingLog;
use seawall::algorithm::Decision;
use seawall::clock::Nanos;

const T0: Nanos = 1_700_000_000_000_000_000;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig::with_cases(cases)
}

/// Arrivals: (gap since the previous one, cost), in units of `window / 8` so windows get crossed.
fn arrivals() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec((0u64..12, 1u64..6), 1..60)
}

/// What every algorithm must satisfy beside its model, checked on the state after the decision: a denied request with a finite retry_after
/// is admitted after exactly that long and not a nanosecond before; `remaining` more units fit now
/// and one more does not.
fn check_decision<S: Clone>(
    d: &Decision,
    state: &S,
    now: Nanos,
    cost: u64,
    mut peek: impl FnMut(&mut S, Nanos, u64) -> Decision,
) -> Result<(), TestCaseError> {
    if !d.allowed && d.retry_after != Nanos::MAX {
        prop_assert!(d.retry_after > 0);
        prop_assert!(
            peek(&mut state.clone(), now + d.retry_after, cost).allowed,
            "not admitted at retry_after"
        );
        prop_assert!(
            !peek(&mut state.clone(), now + d.retry_after - 1, cost).allowed,
            "admitted before retry_after"
        );
    }
    if d.remaining > 0 {
        prop_assert!(
            peek(&mut state.clone(), now, d.remaining).allowed,
            "remaining does not fit"
        );
    }
    prop_assert!(
        !peek(&mut state.clone(), now, d.remaining + 1).allowed,
        "more than remaining fits"
    );
    Ok(())
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn fixed_window_matches_per_window_counts(limit in 1u64..20, window in 1u64..1_000, steps in arrivals()) {
        let w = FixedWindow::new(limit, window);
        let mut state = w.fresh(T0);
        let mut counts: HashMap<u64, u64> = HashMap::new();
        let mut now = T0;
        for (gap, cost) in steps {
            now += gap * window / 8;
            let slot = counts.entry(now / window).or_default();
            let expected = *slot + cost <= limit;
                        let d = w.decide(&mut state, now, cost, true);
            prop_assert_eq!(d.allowed, expected);
            if expected { *slot += cost; }
            check_decision(&d, &state, now, cost, |s, t, c| w.decide(s, t, c, false))?;
        }
    }

    #[test]
    fn sliding_log_matches_the_full_history(limit in 1u64..20, window in 1u64..1_000, steps in arrivals()) {
        let log = SlidingLog::new(limit, window);
        let mut state = log.fresh(T0);
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        let mut now = T0;
        for (gap, cost) in steps {
            now += gap * window / 8;
            let in_window: u64 = admitted.iter().filter(|(t, _)| t + window > now).map(|(_, c)| c).sum();
            let expected = in_window + cost <= limit;
                        let d = log.decide(&mut state, now, cost, true);
            prop_assert_eq!(d.allowed, expected);
            if expected { admitted.push((now, cost)); }
            prop_assert!(state.len() as u64 <= limit, "memory bounded by the limit");
            check_decision(&d, &state, now, cost, |s, t, c| log.decide(s, t, c, false))?;
        }
        // Exact: no interval of length `window` holds more than `limit`.
        for &(t, _) in &admitted {
            let held: u64 = admitted.iter().filter(|(u, _)| *u >= t && *u < t + window).map(|(_, c)| c).sum();
            prop_assert!(held <= limit);
        }
    }

    #[test]
    fn sliding_counter_matches_the_weighted_formula_and_its_bound(
        limit in 1u64..20, window in 1u64..1_000, steps in arrivals(),
    ) {
        let c = SlidingCounter::new(limit, window);
        let mut state = c.fresh(T0);
        let mut counts: HashMap<u64, u64> = HashMap::new();
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        let mut now = T0;
        for (gap, cost) in steps {
            now += gap * window / 8;
            let idx = now / window;
            let elapsed = u128::from(now % window);
            let prev = u128::from(*counts.get(&(idx - 1)).unwrap_or(&0));
            let cur = u128::from(*counts.get(&idx).unwrap_or(&0));
            let w = u128::from(window);
            let expected = prev * (w - elapsed) + (cur + u128::from(cost)) * w <= u128::from(limit) * w;
                        let d = c.decide(&mut state, now, cost, true);
            prop_assert_eq!(d.allowed, expected);
            if expected {
                *counts.entry(idx).or_default() += cost;
                admitted.push((now, cost));
            }
            check_decision(&d, &state, now, cost, |s, t, k| c.decide(s, t, k, false))?;
        }
        // The documented worst case: fewer than twice the limit in any interval of one window.
        for &(t, _) in &admitted {
            let held: u64 = admitted.iter().filter(|(u, _)| *u >= t && *u < t + window).map(|(_, c)| c).sum();
            prop_assert!(held < 2 * limit, "{} admitted within one window", held);
        }
    }

    #[test]
    fn gcra_and_leaky_bucket_match_an_exact_meter(
        count in 1u64..20, period_s in 1u64..5, burst in proptest::option::of(1u64..30),
        steps in proptest::collection::vec((0u64..3_000_000_000, 1u64..6), 1..60),
    ) {
        let period = period_s * 1_000_000_000;
        for (alg, depth) in [
            (gcra(count, period, burst).unwrap(), burst.unwrap_or(count)),
            (leaky_bucket(burst.unwrap_or(count), count, period).unwrap(), burst.unwrap_or(count)),
        ] {
            // The model: a level in units of 1/count ns-periods, draining `count` per `period`.
            // level × period is kept in integers: level_scaled = level × period.
            let mut level_scaled: u128 = 0;
            let mut last = T0;
            let mut state = alg.fresh(T0);
            let mut now = T0;
            for &(gap, cost) in &steps {
                now += gap;
                let drained = u128::from(now - last) * u128::from(count);
                level_scaled = level_scaled.saturating_sub(drained);
                last = now;
                let add = u128::from(cost) * u128::from(period);
                let expected = level_scaled + add <= u128::from(depth) * u128::from(period);
                                let d = alg.decide(&mut state, now, cost);
                prop_assert_eq!(d.allowed, expected);
                if expected { level_scaled += add; }
                check_decision(&d, &state, now, cost, |s, t, k| alg.decide_with(s, t, k, false))?;
            }
        }
    }
}

// ---- Arithmetic edges: a clock that goes back, the end of the clock's range, huge numbers. ----

use seawall::limiter::limit::{AlgorithmKind, Limit, LimitSet};
use seawall::limiter::memory_limiter::Limiter;

const S: Nanos = 1_000_000_000;

/// Issue 11 #24: entries logged out of order (the clock went back) must not make `cleanup()` drop
/// a key whose budget is spent, and a denial must report when the key is fresh again.
#[test]
fn sliding_log_cleanup_after_the_clock_went_back_keeps_a_spent_key() {
    let limiter = Limiter::new(
        LimitSet::parse("2/10 seconds", AlgorithmKind::SlidingLog).unwrap(),
        100,
    );
    assert!(limiter.hit("k", 1000 * S, 1).unwrap().decision.allowed);
    assert!(limiter.hit("k", 999 * S, 1).unwrap().decision.allowed);
    let now = 1009 * S + S / 2;
    let denied = limiter.test("k", now, 2).unwrap().decision;
    assert!(!denied.allowed);
    assert!(
        denied.reset_after > 0,
        "a denied key is not fresh: {denied:?}"
    );
    assert!(denied.reset_after >= denied.retry_after, "{denied:?}");
    assert_eq!(limiter.cleanup(now), 0, "the key's budget is spent");
    // The entry of 1000 s (and the one logged after it) hold until 1010 s: at most one more fits.
    let admitted = (0..2)
        .filter(|_| limiter.hit("k", now, 1).unwrap().decision.allowed)
        .count();
    assert!(admitted <= 1, "{admitted} admitted with the budget spent");
}

/// Issue 11 #24: at the very end of the clock's range (a `ManualClock` saturates there), every
/// algorithm still holds its limit, and a denial never says "retry now".
#[test]
fn every_algorithm_holds_its_limit_at_the_end_of_time() {
    for kind in AlgorithmKind::ALL {
        for now in [Nanos::MAX, Nanos::MAX - 1, Nanos::MAX - 3 * S] {
            let limiter = Limiter::new(LimitSet::parse("2/10 seconds", kind).unwrap(), 100);
            let admitted = (0..3)
                .filter(|_| limiter.hit("k", now, 1).unwrap().decision.allowed)
                .count();
            assert_eq!(admitted, 2, "{kind:?} at {now}");
            let d = limiter.hit("k", now, 1).unwrap().decision;
            assert!(!d.allowed && d.retry_after > 0, "{kind:?} at {now}: {d:?}");
            assert!(d.reset_after > 0, "{kind:?} at {now}: {d:?}");
            assert_eq!(
                limiter.cleanup(now),
                0,
                "{kind:?} at {now}: spent, not fresh"
            );
        }
    }
}

/// Issue 11 #25: a sliding counter cannot weigh two windows of more than half the clock's range:
/// such a limit is refused, naming it, rather than wrapping.
#[test]
fn sliding_counter_refuses_periods_it_cannot_weigh() {
    let spec = "1/400 years".parse().unwrap();
    let e = Limit::new(spec, AlgorithmKind::SlidingCounter, None).unwrap_err();
    assert!(e.to_string().contains("1/400 years"), "{e}");
    // The buckets refuse the rate (one per 400 years is below 1e-9 per second), quoting it; the
    // other windows compute such a period exactly.
    for kind in [
        AlgorithmKind::Gcra,
        AlgorithmKind::TokenBucket,
        AlgorithmKind::LeakyBucket,
    ] {
        let e = Limit::new(spec, kind, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("limit '1/400 years' is a rate outside"),
            "{e}"
        );
    }
    for kind in [AlgorithmKind::FixedWindow, AlgorithmKind::SlidingLog] {
        {
            let limit = Limit::new(spec, kind, None).unwrap();
            let l = Limiter::new(LimitSet::new(vec![limit]).unwrap(), 10);
            assert!(l.hit("k", 1_800_000_000 * S, 1).unwrap().decision.allowed);
            assert!(!l.hit("k", 1_800_000_000 * S, 1).unwrap().decision.allowed);
        }
    }
}

/// Issue 11 #25: counts near 2⁶⁴ are exact, not wrapped.
#[test]
fn huge_counts_and_costs_are_exact() {
    let big = u64::MAX;
    let cost = (1u64 << 63) - 1;
    for kind in [
        AlgorithmKind::FixedWindow,
        AlgorithmKind::SlidingLog,
        AlgorithmKind::SlidingCounter,
    ] {
        let limiter = Limiter::new(LimitSet::parse(&format!("{big}/second"), kind).unwrap(), 10);
        let now = 1_800_000_000 * S;
        assert!(
            limiter.hit("k", now, cost).unwrap().decision.allowed,
            "{kind:?}"
        );
        assert!(
            limiter.hit("k", now, cost).unwrap().decision.allowed,
            "{kind:?}"
        );
        let d = limiter.hit("k", now, cost).unwrap().decision;
        assert!(!d.allowed, "{kind:?}: 3 × (2⁶³ − 1) > 2⁶⁴ − 1");
        assert_eq!(d.remaining, 1, "{kind:?}");
        assert!(
            d.retry_after > 0 && d.retry_after <= 2 * S,
            "{kind:?}: {d:?}"
        );
    }
}

/// Arrivals that may go back in time: (signed gap in units of `window / 8`, cost).
fn wandering_arrivals() -> impl Strategy<Value = Vec<(i64, u64)>> {
    proptest::collection::vec((-10i64..12, 1u64..6), 1..60)
}

fn step(now: Nanos, gap: i64, window: Nanos, lo: Nanos) -> Nanos {
    let d = gap.unsigned_abs() * window / 8;
    if gap < 0 {
        now.saturating_sub(d).max(lo)
    } else {
        now.saturating_add(d)
    }
}

proptest! {
    #![proptest_config(cases())]

    /// A clock that goes back grants nothing extra. The specification, checked against the full
    /// history: a fixed window decides at the later of now and its last admission; a sliding log at
    /// the later of now and its newest admission still in the window (so its entries stay in
    /// order). At that time each decides exactly as with a clock that only moves forward, and
    /// `cleanup` drops a key only when every admission has left the window *at now*.
    #[test]
    fn a_clock_that_goes_back_grants_nothing(
        limit in 1u64..20, window_s in 1u64..20, steps in wandering_arrivals(),
        near_end in any::<bool>(),
    ) {
        let window = window_s * S;
        let t0 = if near_end { Nanos::MAX - 40 * window } else { T0 };
        for kind in [AlgorithmKind::SlidingLog, AlgorithmKind::FixedWindow] {
            let log = kind == AlgorithmKind::SlidingLog;
            let set = LimitSet::parse(&format!("{limit}/{window_s} seconds"), kind).unwrap();
            let limiter = Limiter::new(set, 10);
            // Admissions since the key was last dropped, at the time they were decided at.
            let mut admitted: Vec<(Nanos, u64)> = Vec::new();
            // The latest time a decision was made at since then.
            let mut latest: Nanos = 0;
            let mut now = t0;
            for &(gap, cost) in &steps {
                now = step(now, gap, window, t0);
                if cost > limit {
                    continue;
                }
                // The newest admission the key still remembers.
                let newest = admitted.last().map(|&(t, _)| t).filter(|&t| !log || latest - t < window);
                let in_window = |at: Nanos, t: Nanos| if log { at - t < window } else { at / window == t / window };
                if !admitted.is_empty() {
                    let fresh = match newest {
                        None => true,
                        Some(t) if log => now >= t && now - t >= window,
                        Some(t) => !in_window(now.max(t), t),
                    };
                    let dropped = limiter.cleanup(now) == 1;
                    prop_assert_eq!(dropped, fresh, "{:?}: cleanup at {}", kind, now);
                    if dropped {
                        admitted.clear();
                        latest = 0;
                    }
                }
                let newest = admitted.last().map(|&(t, _)| t).filter(|&t| !log || latest - t < window);
                let at = newest.map_or(now, |t| t.max(now));
                latest = latest.max(at);
                // A log has forgotten what left the window at any time it decided at.
                let used: u64 = admitted
                    .iter()
                    .filter(|&&(t, _)| if log { latest - t < window } else { in_window(at, t) })
                    .map(|(_, c)| c)
                    .sum();
                let d = limiter.hit("k", now, cost).unwrap().decision;
                prop_assert_eq!(d.allowed, used + cost <= limit, "{:?} at {} (decided at {})", kind, now, at);
                if d.allowed {
                    admitted.push((at, cost));
                } else {
                    prop_assert!(d.retry_after > 0 && d.reset_after >= d.retry_after, "{:?}", d);
                }
            }
        }
    }

    /// The sliding counter with counts and costs up to 2⁶⁴ − 1 matches the weighted formula
    /// computed with no overflow.
    #[test]
    fn sliding_counter_is_exact_for_huge_counts(
        limit in prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), (1u64 << 62)..=u64::MAX],
        window in 1u64..(1 << 40),
        steps in proptest::collection::vec((0u64..12, 1u64..=u64::MAX), 1..30),
    ) {
        let c = SlidingCounter::new(limit, window);
        let mut state = c.fresh(T0);
        let mut counts: HashMap<u64, u128> = HashMap::new();
        let mut now = T0;
        for (gap, cost) in steps {
            now += gap * window / 8;
            let idx = now / window;
            let elapsed = u128::from(now % window);
            let prev = *counts.get(&(idx - 1)).unwrap_or(&0);
            let cur = *counts.get(&idx).unwrap_or(&0);
            let w = u128::from(window);
            let expected = prev * (w - elapsed) + (cur + u128::from(cost)) * w <= u128::from(limit) * w;
            let d = c.decide(&mut state, now, cost, true);
            prop_assert_eq!(d.allowed, expected);
            if expected {
                *counts.entry(idx).or_default() += u128::from(cost);
            }
        }
    }
}
