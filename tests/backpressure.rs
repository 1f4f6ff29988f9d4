//! The backpressure state machine against a plain reference model (vectors in arrival order,
//! linear scans), over random configurations and random sequences of admissions, releases,
//! cancellations, timeouts and closing: the same answers (run / queued with the same victims /
//! refused for the same reason), the same waiters started, the same counts; and the invariants
//! (the cap, the queue's bounds, every item accounted for) after every step.
//!
//! 2,000 cases per property (set PROPTEST_CASES to change it).

use proptest::prelude::*;

use seawall::backpressure::{
    Admission, Backpressure, Capacity, Config, Order, Outcome, Reason, Strategy as Kind, Ticket,
};

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig::with_cases(cases)
}

#[derive(Debug, Clone, Copy)]
struct Item {
    ticket: Ticket,
    size: u64,
    since: u64,
}

/// The reference: what the documentation says, written the obvious way.
#[derive(Default)]
struct Model {
    limit: usize,
    max_queue: usize,
    max_bytes: Option<u64>,
    strategy: Option<Kind>,
    timeout: Option<u64>,
    lifo: bool,
    threshold: f64,
    next: Ticket,
    running: Vec<Ticket>,
    queue: Vec<Item>,
    blocked: Vec<Item>,
    closed: bool,
    submitted: u64,
    admitted: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    dropped: u64,
    timed_out: u64,
    rejected: [u64; 4], // queue_full, memory, limit, closed
}

impl Model {
    fn bytes(&self) -> u64 {
        self.queue.iter().map(|i| i.size).sum()
    }

    fn fits(&self, size: u64) -> bool {
        self.queue.len() < self.max_queue && self.max_bytes.is_none_or(|b| self.bytes() + size <= b)
    }

    fn refuse(&mut self, reason: Reason) -> Admission {
        match reason {
            Reason::QueueFull => self.rejected[0] += 1,
            Reason::Memory => self.rejected[1] += 1,
            Reason::Limit => self.rejected[2] += 1,
            Reason::Closed => self.rejected[3] += 1,
            Reason::Dropped => self.dropped += 1,
            Reason::Timeout => unreachable!(),
        }
        Admission::Reject {
            reason,
            retry_after: None,
        }
    }

    fn admit(&mut self, size: u64, now: u64) -> Admission {
        self.submitted += 1;
        if self.closed {
            return self.refuse(Reason::Closed);
        }
        let ticket = self.next;
        self.next += 1;
        let item = Item {
            ticket,
            size,
            since: now,
        };
        if self.running.len() < self.limit && self.queue.is_empty() && self.blocked.is_empty() {
            self.running.push(ticket);
            self.admitted += 1;
            return Admission::Run(ticket);
        }
        if self.max_bytes.is_some_and(|b| size > b) {
            return self.refuse(Reason::Memory);
        }
        if self.blocked.is_empty() && self.fits(size) {
            self.queue.push(item);
            return Admission::Queued {
                ticket,
                displaced: vec![],
            };
        }
        let displace = match self.strategy.unwrap() {
            Kind::Reject => {
                let why = if self.max_queue == 0 {
                    Reason::Limit
                } else if self.queue.len() >= self.max_queue {
                    Reason::QueueFull
                } else {
                    Reason::Memory
                };
                return self.refuse(why);
            }
            Kind::DropNewest => return self.refuse(Reason::Dropped),
            Kind::DropOldest => true,
            Kind::Block => false,
            Kind::Adaptive => match self.max_bytes {
                Some(b) => {
                    self.bytes() as f64 >= self.threshold * b as f64 || self.bytes() + size > b
                }
                None => false,
            },
        };
        if !displace {
            self.blocked.push(item);
            return Admission::Queued {
                ticket,
                displaced: vec![],
            };
        }
        if self.max_queue == 0 {
            return self.refuse(Reason::Dropped);
        }
        let mut displaced = vec![];
        while !self.fits(size) && !self.queue.is_empty() {
            displaced.push(self.queue.remove(0).ticket);
            self.dropped += 1;
        }
        self.queue.push(item);
        Admission::Queued { ticket, displaced }
    }

    fn unblock(&mut self) {
        while let Some(first) = self.blocked.first() {
            if !self.fits(first.size) {
                break;
            }
            let item = self.blocked.remove(0);
            // The queue is in arrival order: an item blocked for long goes before newer ones.
            let at = self.queue.partition_point(|i| i.ticket < item.ticket);
            self.queue.insert(at, item);
        }
    }

    fn fill(&mut self) -> Vec<Ticket> {
        let mut started = vec![];
        while self.running.len() < self.limit {
            let item = if !self.queue.is_empty() {
                if self.lifo {
                    self.queue.pop().unwrap()
                } else {
                    self.queue.remove(0)
                }
            } else if !self.blocked.is_empty() {
                self.blocked.remove(0)
            } else {
                break;
            };
            self.running.push(item.ticket);
            self.admitted += 1;
            started.push(item.ticket);
        }
        self.unblock();
        started
    }

    fn release(&mut self, ticket: Ticket, outcome: Outcome) -> Vec<Ticket> {
        self.running.retain(|t| *t != ticket);
        match outcome {
            Outcome::Success => self.completed += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
        self.fill()
    }

    fn cancel(&mut self, ticket: Ticket) -> Option<Vec<Ticket>> {
        let before = self.queue.len() + self.blocked.len();
        self.queue.retain(|i| i.ticket != ticket);
        self.blocked.retain(|i| i.ticket != ticket);
        if self.queue.len() + self.blocked.len() == before {
            return None;
        }
        self.cancelled += 1;
        self.unblock();
        Some(self.fill())
    }

    fn expire(&mut self, now: u64) -> Vec<Ticket> {
        let Some(timeout) = self.timeout else {
            return vec![];
        };
        let due = |i: &Item| i.since + timeout <= now;
        let mut expired: Vec<Ticket> = self
            .queue
            .iter()
            .chain(self.blocked.iter())
            .filter(|i| due(i))
            .map(|i| i.ticket)
            .collect();
        expired.sort_unstable();
        self.queue.retain(|i| !due(i));
        self.blocked.retain(|i| !due(i));
        self.timed_out += expired.len() as u64;
        self.unblock();
        expired
    }

    fn close(&mut self) -> Vec<Ticket> {
        self.closed = true;
        let mut ended: Vec<Ticket> = self
            .queue
            .drain(..)
            .chain(self.blocked.drain(..))
            .map(|i| i.ticket)
            .collect();
        ended.sort_unstable();
        self.rejected[3] += ended.len() as u64;
        ended
    }
}

#[derive(Debug, Clone)]
enum Op {
    Admit { size: u64, dt: u64 },
    Release { pick: usize, outcome: u8 },
    Cancel { pick: usize },
    Expire { dt: u64 },
    Close,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0u64..8, 0u64..3).prop_map(|(size, dt)| Op::Admit { size, dt }),
        4 => (0usize..8, 0u8..3).prop_map(|(pick, outcome)| Op::Release { pick, outcome }),
        1 => (0usize..8).prop_map(|pick| Op::Cancel { pick }),
        1 => (0u64..6).prop_map(|dt| Op::Expire { dt }),
        1 => Just(Op::Close),
    ];
    proptest::collection::vec(op, 1..80)
}

fn strategies() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Reject),
        Just(Kind::DropNewest),
        Just(Kind::DropOldest),
        Just(Kind::Block),
        Just(Kind::Adaptive),
    ]
}

/// Admissions compared without the retry estimate (the model does not estimate).
fn shape(a: &Admission) -> Admission {
    match a {
        Admission::Reject { reason, .. } => Admission::Reject {
            reason: *reason,
            retry_after: None,
        },
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn matches_the_model(
        limit in 1usize..4,
        max_queue in 0usize..5,
        max_bytes in proptest::option::of(1u64..16),
        strategy in strategies(),
        timeout in proptest::option::of(1u64..8),
        lifo in any::<bool>(),
        threshold in prop_oneof![Just(0.5), Just(0.9), Just(1.0)],
        ops in ops(),
    ) {
        let config = Config {
            capacity: Capacity::Fixed(limit),
            max_queue,
            max_queue_bytes: max_bytes,
            strategy,
            queue_timeout: timeout,
            order: if lifo { Order::Lifo } else { Order::Fifo },
            adaptive_threshold: threshold,
        };
        let bp = Backpressure::new(config).unwrap();
        let mut m = Model {
            limit, max_queue, max_bytes, strategy: Some(strategy), timeout, lifo, threshold,
            ..Model::default()
        };
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Admit { size, dt } => {
                    now += dt;
                    let got = bp.try_admit(size, now);
                    prop_assert_eq!(shape(&got), m.admit(size, now));
                }
                Op::Release { pick, outcome } => {
                    if m.running.is_empty() {
                        continue;
                    }
                    let t = m.running[pick % m.running.len()];
                    let outcome = [Outcome::Success, Outcome::Failure, Outcome::Cancelled]
                        [outcome as usize];
                    prop_assert_eq!(bp.release(t, outcome, now).unwrap(), m.release(t, outcome));
                    prop_assert!(bp.release(t, outcome, now).is_err(), "released twice");
                }
                Op::Cancel { pick } => {
                    // Any ticket handed out: waiting ones are cancelled, others are not waiting.
                    let t = if m.next == 0 { 0 } else { pick as u64 % m.next };
                    prop_assert_eq!(bp.cancel(t, now), m.cancel(t));
                }
                Op::Expire { dt } => {
                    now += dt;
                    let deadline = bp.next_deadline();
                    let expired = bp.expire(now);
                    prop_assert_eq!(&expired, &m.expire(now));
                    if let Some(d) = deadline {
                        prop_assert_eq!(!expired.is_empty(), d <= now);
                    }
                }
                Op::Close => prop_assert_eq!(bp.close(), m.close()),
            }
            let s = bp.snapshot();
            prop_assert!(s.in_flight <= limit);
            prop_assert!(s.queued <= max_queue);
            prop_assert!(max_bytes.is_none_or(|b| s.queued_bytes <= b));
            prop_assert_eq!(s.in_flight, m.running.len());
            prop_assert_eq!(s.queued, m.queue.len());
            prop_assert_eq!(s.blocked, m.blocked.len());
            prop_assert_eq!(s.queued_bytes, m.bytes());
            prop_assert_eq!(
                (s.submitted, s.admitted, s.completed, s.failed, s.cancelled, s.dropped, s.timed_out),
                (m.submitted, m.admitted, m.completed, m.failed, m.cancelled, m.dropped, m.timed_out)
            );
            let r = &s.rejected;
            prop_assert_eq!([r.queue_full, r.memory, r.limit, r.closed], m.rejected);
            let ended = s.completed + s.failed + s.cancelled + s.dropped + s.timed_out
                + r.total();
            prop_assert_eq!(
                s.submitted,
                ended + (s.in_flight + s.queued + s.blocked) as u64,
                "every item accounted for"
            );
        }
    }
}

#[test]
fn waits_are_measured_on_the_given_clock() {
    let bp = Backpressure::new(Config::with_limit(1)).unwrap();
    let Admission::Run(first) = bp.try_admit(0, 0) else {
        panic!()
    };
    bp.try_admit(0, 1_000);
    bp.release(first, Outcome::Success, 3_000_000_000).unwrap();
    let s = bp.snapshot();
    // Two starts: one at once, one after almost 3 s.
    assert_eq!(s.wait_p50, 0.0);
    assert!((s.wait_p99 - 2.999999).abs() < 1e-9, "{}", s.wait_p99);
    assert_eq!(s.mean_run_time, 3.0);
}

#[test]
fn refusals_estimate_when_room_may_appear() {
    let config = Config {
        max_queue: 1,
        strategy: Kind::Reject,
        ..Config::with_limit(1)
    };
    let bp = Backpressure::new(config).unwrap();
    let Admission::Run(t) = bp.try_admit(0, 0) else {
        panic!()
    };
    // No run has ended: no estimate.
    bp.try_admit(0, 0);
    assert_eq!(
        bp.try_admit(0, 0),
        Admission::Reject {
            reason: Reason::QueueFull,
            retry_after: None
        }
    );
    let started = bp.release(t, Outcome::Success, 2_000).unwrap();
    bp.try_admit(0, 2_000);
    // Mean run 2,000 ns; one waiting and this one, one slot.
    assert_eq!(
        bp.try_admit(0, 2_000),
        Admission::Reject {
            reason: Reason::QueueFull,
            retry_after: Some(4_000)
        }
    );
    assert_eq!(started.len(), 1);
}

#[test]
fn bad_settings_are_named() {
    let bad = |c: Config| Backpressure::new(c).err().unwrap().to_string();
    assert!(bad(Config::with_limit(0)).starts_with("max_concurrency"));
    let c = Config {
        adaptive_threshold: 0.0,
        ..Config::with_limit(1)
    };
    assert!(bad(c).starts_with("adaptive_threshold"));
    let c = Config {
        max_queue_bytes: Some(0),
        ..Config::with_limit(1)
    };
    assert!(bad(c).starts_with("max_queue_bytes"));
}
