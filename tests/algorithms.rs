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
