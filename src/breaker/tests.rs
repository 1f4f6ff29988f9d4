use super::*;
use proptest::prelude::*;

const S: Nanos = NANOS_PER_SEC;

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        jitter: 0.0,
        recovery_timeout: 10 * S,
        probe_timeout: 5 * S,
        ..BreakerConfig::default()
    }
}

fn fail(b: &Breaker, now: Nanos) {
    let p = b.try_acquire(now);
    b.record(p, Outcome::Failure, 0, now);
}

#[test]
fn opens_after_consecutive_failures_only() {
    let b = Breaker::new(config(), 0).unwrap();
    fail(&b, 0);
    fail(&b, 0);
    let p = b.try_acquire(0);
    b.record(p, Outcome::Success, 0, 0);
    fail(&b, 0);
    fail(&b, 0);
    assert_eq!(b.state(0), State::Closed);
    // Ignored calls neither reset nor extend the run.
    let p = b.try_acquire(0);
    b.record(p, Outcome::Ignored, 0, 0);
    fail(&b, 0);
    assert_eq!(b.state(0), State::Open);
    assert_eq!(b.last_transition().unwrap().reason, "failure_threshold");
    assert_eq!(b.retry_after(4 * S), 6 * S);
}

#[test]
fn half_open_admits_exactly_the_probe_slots_and_frees_hung_ones() {
    let cfg = BreakerConfig {
        half_open_max_calls: 2,
        success_threshold: 2,
        ..config()
    };
    let b = Breaker::new(cfg, 0).unwrap();
    for _ in 0..3 {
        fail(&b, 0);
    }
    let probes: Vec<_> = (0..10).map(|_| b.try_acquire(10 * S)).collect();
    assert_eq!(probes.iter().filter(|&&p| p > 0).count(), 2);
    assert_eq!(b.retry_after(10 * S), 5 * S);
    // Both hang; after the probe timeout their slots are free again.
    let again = b.try_acquire(15 * S);
    assert!(again > 0);
    // A late report from a timed-out probe changes nothing.
    b.record(probes[0], Outcome::Failure, 0, 15 * S);
    assert_eq!(b.state(15 * S), State::HalfOpen);
    b.record(again, Outcome::Success, 0, 15 * S);
    let last = b.try_acquire(15 * S);
    b.record(last, Outcome::Success, 0, 15 * S);
    assert_eq!(b.state(15 * S), State::Closed);
}

#[test]
fn failed_probes_back_off_up_to_the_cap() {
    let cfg = BreakerConfig {
        max_recovery_timeout: 35 * S,
        ..config()
    };
    let b = Breaker::new(cfg, 0).unwrap();
    for _ in 0..3 {
        fail(&b, 0);
    }
    let mut now = 0;
    for expected in [20, 35, 35] {
        now += b.retry_after(now);
        fail(&b, now);
        assert_eq!(b.retry_after(now), expected * S);
    }
    now += b.retry_after(now);
    let p = b.try_acquire(now);
    b.record(p, Outcome::Success, 0, now);
    fail(&b, now);
    fail(&b, now);
    fail(&b, now);
    assert_eq!(b.retry_after(now), 10 * S, "closing forgets the backoff");
}

#[test]
fn rate_windows_need_their_minimum() {
    let cfg = BreakerConfig {
        failure_threshold: 100,
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        window: WindowKind::Count(4),
        ..config()
    };
    let b = Breaker::new(cfg, 0).unwrap();
    fail(&b, 0);
    fail(&b, 0);
    assert_eq!(b.state(0), State::Closed, "two calls are below the minimum");
    for _ in 0..2 {
        let p = b.try_acquire(0);
        b.record(p, Outcome::Success, 0, 0);
    }
    assert_eq!(b.state(0), State::Open);
    assert_eq!(b.last_transition().unwrap().reason, "failure_rate");
}

#[test]
fn slow_calls_open_by_their_own_rate() {
    let cfg = BreakerConfig {
        slow_call_rate_threshold: Some(1.0),
        slow_call_duration: Some(S),
        minimum_calls: 2,
        window: WindowKind::Time(10 * S),
        ..config()
    };
    let b = Breaker::new(cfg, 0).unwrap();
    let p = b.try_acquire(0);
    b.record(p, Outcome::Success, 2 * S, 0);
    // 11 s later the first slow call has left the window.
    let p = b.try_acquire(11 * S);
    b.record(p, Outcome::Success, 2 * S, 11 * S);
    assert_eq!(b.state(11 * S), State::Closed);
    let p = b.try_acquire(12 * S);
    b.record(p, Outcome::Success, 2 * S, 12 * S);
    assert_eq!(b.state(12 * S), State::Open);
    assert_eq!(b.stats(12 * S).0.slow_calls, 3);
}

#[test]
fn forced_modes_and_reset() {
    let b = Breaker::new(config(), 0).unwrap();
    b.force_open(0);
    assert_eq!(b.try_acquire(1000 * S), REJECTED);
    assert_eq!(b.retry_after(0), Nanos::MAX);
    b.force_closed(0);
    for _ in 0..10 {
        fail(&b, 0);
    }
    assert_eq!(b.state(0), State::Closed);
    b.reset(0);
    for _ in 0..3 {
        fail(&b, 0);
    }
    assert_eq!(b.state(0), State::Open);
    let (stats, _, time_in) = b.stats(5 * S);
    assert_eq!(stats.rejections, 1);
    assert_eq!(time_in[State::Open.index()], 5 * S);
}

#[test]
fn jitter_stays_within_its_fraction() {
    let cfg = BreakerConfig {
        jitter: 0.5,
        ..config()
    };
    let mut waits = std::collections::HashSet::new();
    for _ in 1..50u64 {
        // Made at the same instant, they still draw different jitter.
        let b = Breaker::new(cfg.clone(), 0).unwrap();
        for _ in 0..3 {
            fail(&b, 0);
        }
        let wait = b.retry_after(0);
        assert!((5 * S..=15 * S).contains(&wait), "{wait}");
        waits.insert(wait);
    }
    assert!(waits.len() > 40);
}

#[test]
fn a_count_window_smaller_than_minimum_calls_is_refused_with_a_rate() {
    // A window of 5 calls never holds 10: the rate would never be judged, silently.
    let small = |rates: (Option<f64>, Option<f64>)| BreakerConfig {
        failure_rate_threshold: rates.0,
        slow_call_rate_threshold: rates.1,
        slow_call_duration: Some(S),
        minimum_calls: 10,
        window: WindowKind::Count(5),
        ..config()
    };
    for rates in [(Some(0.5), None), (None, Some(0.5))] {
        let message = small(rates).validate().unwrap_err().to_string();
        assert!(message.starts_with("minimum_calls"), "{message}");
        assert!(message.contains("window_size (5)"), "{message}");
    }
    // Without a rate, with a time window, or with a minimum the window can hold: accepted.
    assert!(small((None, None)).validate().is_ok());
    let time = BreakerConfig {
        window: WindowKind::Time(5 * S),
        ..small((Some(0.5), None))
    };
    assert!(time.validate().is_ok());
    let within = BreakerConfig {
        minimum_calls: 5,
        ..small((Some(0.5), None))
    };
    assert!(within.validate().is_ok());
}

#[test]
fn bad_settings_name_themselves() {
    for (cfg, name) in [
        (
            BreakerConfig {
                success_threshold: 0,
                ..config()
            },
            "success_threshold",
        ),
        (
            BreakerConfig {
                failure_rate_threshold: Some(1.5),
                ..config()
            },
            "failure_rate_threshold",
        ),
        (
            BreakerConfig {
                slow_call_rate_threshold: Some(0.5),
                ..config()
            },
            "slow_call_duration",
        ),
        (
            BreakerConfig {
                window: WindowKind::Count(0),
                ..config()
            },
            "window_size",
        ),
        (
            BreakerConfig {
                backoff_multiplier: 0.5,
                ..config()
            },
            "backoff_multiplier",
        ),
        (
            BreakerConfig {
                jitter: 1.0,
                ..config()
            },
            "jitter",
        ),
        (
            BreakerConfig {
                max_recovery_timeout: S,
                ..config()
            },
            "max_recovery_timeout",
        ),
    ] {
        assert!(
            Breaker::new(cfg, 0)
                .err()
                .unwrap()
                .to_string()
                .starts_with(name),
            "{name}"
        );
    }
}

/// The reference model: the same rules, written plainly, with the window recomputed from the
/// whole history of closed-state calls.
struct Model {
    cfg: BreakerConfig,
    state: State,
    consecutive: u32,
    history: Vec<(Nanos, bool, bool)>,
    open_until: Nanos,
    reopens: u32,
    probes: Vec<(Permit, Nanos)>,
    successes: u32,
    next: Permit,
}

impl Model {
    fn refresh(&mut self, now: Nanos) {
        if self.state == State::Open && now >= self.open_until {
            self.state = State::HalfOpen;
            self.successes = 0;
            self.probes.clear();
        }
        if self.state == State::HalfOpen {
            let t = self.cfg.probe_timeout;
            self.probes.retain(|&(_, s)| s + t > now);
        }
    }

    fn open(&mut self, now: Nanos) {
        let t = (self.cfg.recovery_timeout as f64
            * self.cfg.backoff_multiplier.powi(self.reopens as i32))
        .min(self.cfg.max_recovery_timeout as f64);
        self.open_until = now + t as Nanos;
        self.state = State::Open;
        self.probes.clear();
    }

    fn acquire(&mut self, now: Nanos) -> Permit {
        self.refresh(now);
        match self.state {
            State::Closed => 0,
            State::Open => -1,
            State::HalfOpen if self.probes.len() < self.cfg.half_open_max_calls as usize => {
                let id = self.next;
                self.next += 1;
                self.probes.push((id, now));
                id
            }
            State::HalfOpen => -1,
        }
    }

    fn record(&mut self, permit: Permit, outcome: Outcome, duration: Nanos, now: Nanos) {
        let slow = self.cfg.slow_call_duration.is_some_and(|s| duration >= s);
        if permit > 0 {
            let Some(i) = self.probes.iter().position(|&(id, _)| id == permit) else {
                return;
            };
            self.probes.remove(i);
            if self.state != State::HalfOpen {
                return;
            }
            match outcome {
                Outcome::Failure => {
                    self.reopens += 1;
                    self.open(now);
                }
                Outcome::Success => {
                    self.successes += 1;
                    if self.successes >= self.cfg.success_threshold {
                        self.state = State::Closed;
                        self.consecutive = 0;
                        self.reopens = 0;
                        self.history.clear();
                    }
                }
                Outcome::Ignored => {}
            }
            return;
        }
        if outcome == Outcome::Ignored || self.state != State::Closed {
            return;
        }
        let failed = outcome == Outcome::Failure;
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        self.history.push((now, failed, slow));
        let window: Vec<_> = match self.cfg.window {
            WindowKind::Count(n) => self
                .history
                .iter()
                .rev()
                .take(n as usize)
                .copied()
                .collect(),
            WindowKind::Time(d) => {
                let oldest = now.saturating_sub(d) / S;
                self.history
                    .iter()
                    .filter(|(t, _, _)| t / S > oldest)
                    .copied()
                    .collect()
            }
        };
        let total = window.len() as f64;
        let failures = window.iter().filter(|w| w.1).count() as f64;
        let slows = window.iter().filter(|w| w.2).count() as f64;
        let over = |count: f64, t: Option<f64>| t.is_some_and(|t| count >= t * total);
        if self.consecutive >= self.cfg.failure_threshold
            || (window.len() as u32 >= self.cfg.minimum_calls
                && (over(failures, self.cfg.failure_rate_threshold)
                    || over(slows, self.cfg.slow_call_rate_threshold)))
        {
            self.open(now);
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Acquire,
    Report {
        which: usize,
        outcome: u8,
        slow: bool,
    },
}

fn steps() -> impl Strategy<Value = Vec<(u64, Step)>> {
    proptest::collection::vec(
        (
            0u64..4_000,
            prop_oneof![
                Just(Step::Acquire),
                (any::<usize>(), 0u8..3, any::<bool>()).prop_map(|(which, outcome, slow)| {
                    Step::Report {
                        which,
                        outcome,
                        slow,
                    }
                }),
            ],
        ),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(10_000)
    ))]

    #[test]
    fn the_state_machine_matches_the_reference_model(
        failure_threshold in 1u32..5,
        success_threshold in 1u32..3,
        half_open_max_calls in 1u32..3,
        rate in proptest::option::of(prop_oneof![Just(0.5), Just(1.0)]),
        slow_rate in proptest::option::of(Just(0.5)),
        time_window in any::<bool>(),
        steps in steps(),
    ) {
        let cfg = BreakerConfig {
            failure_threshold,
            success_threshold,
            half_open_max_calls,
            recovery_timeout: 3 * S,
            probe_timeout: 2 * S,
            failure_rate_threshold: rate,
            slow_call_rate_threshold: slow_rate,
            slow_call_duration: slow_rate.map(|_| S),
            window: if time_window { WindowKind::Time(5 * S) } else { WindowKind::Count(4) },
            minimum_calls: 3,
            backoff_multiplier: 2.0,
            max_recovery_timeout: 10 * S,
            jitter: 0.0,
        };
        let b = Breaker::new(cfg.clone(), 0).unwrap();
        let mut m = Model {
            cfg, state: State::Closed, consecutive: 0, history: vec![], open_until: 0,
            reopens: 0, probes: vec![], successes: 0, next: 1,
        };
        let mut outstanding: Vec<Permit> = Vec::new();
        let mut now = 0;
        for (gap_ms, step) in steps {
            now += gap_ms * 1_000_000;
            match step {
                Step::Acquire => {
                    let got = b.try_acquire(now);
                    prop_assert_eq!(got, m.acquire(now));
                    if got >= 0 { outstanding.push(got); }
                }
                Step::Report { which, outcome, slow } if !outstanding.is_empty() => {
                    let permit = outstanding.remove(which % outstanding.len());
                    let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][outcome as usize];
                    let duration = if slow { 2 * S } else { 0 };
                    b.record(permit, outcome, duration, now);
                    m.record(permit, outcome, duration, now);
                }
                Step::Report { .. } => {}
            }
            m.refresh(now);
            prop_assert_eq!(b.state(now), m.state);
            if m.state == State::HalfOpen {
                prop_assert!(m.probes.len() <= half_open_max_calls as usize);
            }
        }
    }
}
