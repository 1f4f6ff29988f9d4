//! The concurrency limiter's accounting under random operations: permits never exceed the limit
//! when given, partitions' guarantees hold, every waiter is resolved once, releases balance.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use seawall::concurrency::{
    Admission, AimdConfig, ConcurrencyLimiter, GradientConfig, LimitConfig, LimiterConfig, Outcome,
    Permit,
};

#[derive(Debug, Clone)]
enum Op {
    TryAcquire(Option<usize>),
    Acquire(Option<usize>, Option<u64>),
    Release(usize, u8, Option<u64>),
    Cancel(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let partition = prop::option::of(0usize..2);
    prop_oneof![
        partition.clone().prop_map(Op::TryAcquire),
        (partition, prop::option::of(1u64..50_000_000)).prop_map(|(p, t)| Op::Acquire(p, t)),
        (0usize..64, 0u8..3, prop::option::of(1u64..100_000_000))
            .prop_map(|(i, o, r)| Op::Release(i, o, r)),
        (0usize..64).prop_map(Op::Cancel),
        (0u64..30_000_000).prop_map(Op::Advance),
    ]
}

fn limit() -> impl Strategy<Value = LimitConfig> {
    prop_oneof![
        (1u32..8).prop_map(LimitConfig::Fixed),
        (1u32..12).prop_map(|initial| LimitConfig::Aimd(AimdConfig {
            initial,
            max_limit: 16,
            timeout: 40_000_000,
            ..AimdConfig::default()
        })),
        (1u32..12).prop_map(|initial| LimitConfig::Gradient(GradientConfig {
            initial,
            max_limit: 16,
            long_window: 20,
            ..GradientConfig::default()
        })),
    ]
}

const NAMES: [&str; 2] = ["critical", "batch"];

/// Permits the partitions other than `p` are guaranteed and do not hold.
fn owed_to_others(limiter: &ConcurrencyLimiter, p: Option<usize>) -> u32 {
    limiter
        .partitions()
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != p)
        .map(|(_, (_, _, guaranteed, held))| guaranteed.saturating_sub(*held))
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn accounting_holds(
        limit in limit(),
        max_queue in 0u32..6,
        partitioned in any::<bool>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let partitions = if partitioned {
            vec![(NAMES[0].to_owned(), 0.5), (NAMES[1].to_owned(), 0.25)]
        } else {
            Vec::new()
        };
        let limiter = ConcurrencyLimiter::new(LimiterConfig {
            limit,
            max_queue,
            queue_timeout: Some(20_000_000),
            partitions,
        })
        .unwrap();
        let part = |p: Option<usize>| if partitioned { p } else { None };
        let mut now = 1_000_000_000u64;
        let mut held: Vec<(Permit, Option<usize>)> = Vec::new();
        let mut waiting: HashMap<u64, Option<usize>> = HashMap::new();
        let mut resolved: HashSet<u64> = HashSet::new();
        let mut tickets: Vec<u64> = Vec::new();
        let mut given = 0u64;
        let mut returned = 0u64;
        let check_grant = |held: &Vec<(Permit, Option<usize>)>| {
            prop_assert_eq!(limiter.in_flight(), held.len() as u32);
            Ok(())
        };
        for op in ops {
            match op {
                Op::TryAcquire(p) => {
                    let (limit, before) = (limiter.limit(), limiter.in_flight());
                    let owed = owed_to_others(&limiter, part(p));
                    if let Some(permit) = limiter.try_acquire(part(p), now) {
                        prop_assert!(before < limit);
                        // What stays free still covers what the other partitions are owed.
                        prop_assert!(limit - before > owed);
                        held.push((permit, part(p)));
                        given += 1;
                    }
                    check_grant(&held)?;
                }
                Op::Acquire(p, timeout) => {
                    let (limit, before) = (limiter.limit(), limiter.in_flight());
                    let owed = owed_to_others(&limiter, part(p));
                    let (admission, expired) = limiter.acquire(part(p), now, timeout);
                    for t in expired {
                        prop_assert!(waiting.remove(&t).is_some());
                        prop_assert!(resolved.insert(t));
                    }
                    match admission {
                        Admission::Granted(permit) => {
                            prop_assert!(before < limit);
                            prop_assert!(limit - before > owed);
                            held.push((permit, part(p)));
                            given += 1;
                        }
                        Admission::Queued(t) => {
                            waiting.insert(t, part(p));
                            tickets.push(t);
                        }
                        Admission::Rejected => {}
                    }
                    prop_assert!(limiter.queued() <= max_queue);
                    check_grant(&held)?;
                }
                Op::Release(i, outcome, rtt) if !held.is_empty() => {
                    let (permit, _) = held.remove(i % held.len());
                    let outcome = [Outcome::Success, Outcome::Dropped, Outcome::Ignore][outcome as usize];
                    let woken = limiter.release(permit, outcome, rtt, now);
                    returned += 1;
                    // A second release of the same permit changes nothing.
                    prop_assert!(limiter.release(permit, Outcome::Success, None, now).is_empty());
                    for t in woken.expired {
                        prop_assert!(waiting.remove(&t).is_some());
                        prop_assert!(resolved.insert(t));
                    }
                    if !woken.granted.is_empty() {
                        // Waiters are given permits only up to the (new) limit.
                        prop_assert!(limiter.in_flight() <= limiter.limit());
                    }
                    for (t, permit) in woken.granted {
                        let p = waiting.remove(&t);
                        prop_assert!(p.is_some(), "granted a ticket that was not waiting");
                        prop_assert!(resolved.insert(t));
                        held.push((permit, p.unwrap()));
                        given += 1;
                    }
                    check_grant(&held)?;
                }
                Op::Cancel(i) if !tickets.is_empty() => {
                    let t = tickets[i % tickets.len()];
                    let was_waiting = waiting.contains_key(&t);
                    prop_assert_eq!(limiter.cancel(t, false), was_waiting);
                    if was_waiting {
                        waiting.remove(&t);
                        prop_assert!(resolved.insert(t));
                    }
                }
                Op::Advance(d) => now += d,
                _ => {}
            }
            prop_assert_eq!(limiter.queued() as usize, waiting.len());
        }
        // Releasing everything balances the books.
        let mut to_return: Vec<Permit> = held.drain(..).map(|(p, _)| p).collect();
        while let Some(permit) = to_return.pop() {
            let woken = limiter.release(permit, Outcome::Ignore, None, now);
            returned += 1;
            for (t, permit) in woken.granted {
                prop_assert!(waiting.remove(&t).is_some());
                given += 1;
                to_return.push(permit);
            }
        }
        prop_assert_eq!(limiter.in_flight(), 0);
        prop_assert_eq!(given, returned);
        let stats = limiter.stats();
        prop_assert_eq!(stats.acquired, given);
        prop_assert_eq!(stats.successes + stats.dropped + stats.ignored, returned);
    }
}
