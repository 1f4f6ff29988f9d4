//! The state machine behind [`super::Backpressure`]: who runs, who waits where, and the counts.
//!
//! Tickets are handed out in submission order and the clock is clamped so that it never moves
//! back here, so ordering waiters by ticket orders them by arrival, and the waiters that time out
//! first are always the first of each map.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use super::stats::{Counts, Snapshot};
use super::{Admission, Config, Order, Outcome, Reason, Strategy, Ticket};
use crate::clock::Nanos;
use crate::concurrency::Sample;
use crate::error::Error;

#[derive(Debug, Clone, Copy)]
struct Waiter {
    size: u64,
    since: Nanos,
    /// Items running when it started, itself included (0 while it waits).
    in_flight: u32,
}

pub(super) struct State {
    config: Config,
    next_ticket: Ticket,
    /// Running items: when they started, their size.
    running: HashMap<Ticket, Waiter, foldhash::fast::RandomState>,
    running_bytes: u64,
    /// Waiting for a slot.
    queue: BTreeMap<Ticket, Waiter>,
    queued_bytes: u64,
    /// Waiting for room in the queue (block, adaptive).
    blocked: BTreeMap<Ticket, Waiter>,
    last_now: Nanos,
    closed: bool,
    counts: Counts,
}

impl State {
    pub(super) fn new(config: Config) -> Self {
        State {
            config,
            next_ticket: 0,
            running: HashMap::default(),
            running_bytes: 0,
            queue: BTreeMap::new(),
            queued_bytes: 0,
            blocked: BTreeMap::new(),
            last_now: 0,
            closed: false,
            counts: Counts::default(),
        }
    }

    fn now(&mut self, now: Nanos) -> Nanos {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    pub(super) fn limit(&self) -> usize {
        self.config.capacity.limit()
    }

    pub(super) fn in_flight(&self) -> usize {
        self.running.len()
    }

    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn waiting(&self) -> usize {
        self.queue.len() + self.blocked.len()
    }

    pub(super) fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    fn fits_queue(&self, size: u64) -> bool {
        self.queue.len() < self.config.max_queue
            && self
                .config
                .max_queue_bytes
                .is_none_or(|b| self.queued_bytes.saturating_add(size) <= b)
    }

    pub(super) fn try_admit(&mut self, size: u64, now: Nanos) -> Admission {
        let now = self.now(now);
        self.counts.submitted += 1;
        if self.closed {
            return self.refuse(Reason::Closed);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let item = Waiter {
            size,
            since: now,
            in_flight: 0,
        };
        if self.running.len() < self.limit() && self.queue.is_empty() && self.blocked.is_empty() {
            self.start(ticket, item, now);
            return Admission::Run(ticket);
        }
        if self.config.max_queue_bytes.is_some_and(|b| size > b) {
            return self.refuse(Reason::Memory);
        }
        if self.blocked.is_empty() && self.fits_queue(size) {
            return self.enqueue(ticket, item, Vec::new());
        }
        match self.config.strategy {
            Strategy::Reject => self.refuse(self.why_not()),
            Strategy::DropNewest => {
                self.counts.dropped += 1;
                Admission::Reject {
                    reason: Reason::Dropped,
                    retry_after: self.retry_after(),
                }
            }
            Strategy::DropOldest => self.displace(ticket, item),
            Strategy::Block => self.block(ticket, item),
            Strategy::Adaptive => {
                if self.pressured(size) {
                    self.displace(ticket, item)
                } else {
                    self.block(ticket, item)
                }
            }
        }
    }

    /// Why an item that must wait does not fit in the queue.
    fn why_not(&self) -> Reason {
        if self.config.max_queue == 0 {
            Reason::Limit
        } else if self.queue.len() >= self.config.max_queue {
            Reason::QueueFull
        } else {
            Reason::Memory
        }
    }

    /// Adaptive's test: the queue is (nearly) full by bytes. Never without a byte budget.
    fn pressured(&self, size: u64) -> bool {
        let t = self.config.adaptive_threshold;
        self.config.max_queue_bytes.is_some_and(|b| {
            self.queued_bytes as f64 >= t * b as f64 || self.queued_bytes + size > b
        })
    }

    fn refuse(&mut self, reason: Reason) -> Admission {
        self.counts.rejected.add(reason);
        let retry_after = match reason {
            Reason::Closed => None,
            _ => self.retry_after(),
        };
        Admission::Reject {
            reason,
            retry_after,
        }
    }

    /// The mean run time times the waiters ahead, per slot: when room may appear.
    fn retry_after(&self) -> Option<Nanos> {
        let mean = self.counts.mean_run()?;
        let ahead = (self.waiting() + 1) as u64;
        Some(mean.saturating_mul(ahead) / self.limit().max(1) as u64)
    }

    fn enqueue(&mut self, ticket: Ticket, item: Waiter, displaced: Vec<Ticket>) -> Admission {
        self.queued_bytes += item.size;
        self.queue.insert(ticket, item);
        Admission::Queued { ticket, displaced }
    }

    fn block(&mut self, ticket: Ticket, item: Waiter) -> Admission {
        self.blocked.insert(ticket, item);
        Admission::Queued {
            ticket,
            displaced: Vec::new(),
        }
    }

    /// Drops the oldest queued items until `item` fits (the size was checked against the budget);
    /// with no queue at all, `item` is the one dropped.
    fn displace(&mut self, ticket: Ticket, item: Waiter) -> Admission {
        if self.config.max_queue == 0 {
            self.counts.dropped += 1;
            return Admission::Reject {
                reason: Reason::Dropped,
                retry_after: self.retry_after(),
            };
        }
        let mut displaced = Vec::new();
        while !self.fits_queue(item.size) {
            let Some((t, w)) = self.queue.pop_first() else {
                break;
            };
            self.queued_bytes -= w.size;
            self.counts.dropped += 1;
            displaced.push(t);
        }
        self.enqueue(ticket, item, displaced)
    }

    fn start(&mut self, ticket: Ticket, item: Waiter, now: Nanos) {
        self.counts.admitted += 1;
        self.counts.waited(now.saturating_sub(item.since));
        self.running_bytes += item.size;
        let in_flight = u32::try_from(self.running.len() + 1).unwrap_or(u32::MAX);
        self.running.insert(
            ticket,
            Waiter {
                size: item.size,
                since: now,
                in_flight,
            },
        );
    }

    /// Moves blocked items into the queue, in arrival order, while the first fits.
    fn admit_blocked(&mut self) {
        while let Some((_, w)) = self.blocked.first_key_value() {
            if !self.fits_queue(w.size) {
                break;
            }
            let Some((t, w)) = self.blocked.pop_first() else {
                break;
            };
            self.queued_bytes += w.size;
            self.queue.insert(t, w);
        }
    }

    /// Starts waiters while slots are free: the queue's next by order, then (the queue empty)
    /// blocked items in arrival order; then lets blocked items into the queue.
    pub(super) fn fill(&mut self, now: Nanos) -> Vec<Ticket> {
        let now = self.now(now);
        let mut started = Vec::new();
        while self.running.len() < self.limit() {
            let next = match self.config.order {
                Order::Fifo => self.queue.pop_first(),
                Order::Lifo => self.queue.pop_last(),
            };
            let (t, w) = match next {
                Some((t, w)) => {
                    self.queued_bytes -= w.size;
                    (t, w)
                }
                None => match self.blocked.pop_first() {
                    Some(tw) => tw,
                    None => break,
                },
            };
            self.start(t, w, now);
            started.push(t);
        }
        self.admit_blocked();
        started
    }

    pub(super) fn release(
        &mut self,
        ticket: Ticket,
        outcome: Outcome,
        now: Nanos,
    ) -> Result<Vec<Ticket>, Error> {
        self.end(ticket, outcome, false, now)
    }

    /// Ends a running item; `lost`: a failure that is the loss signal for an adaptive limit.
    pub(super) fn end(
        &mut self,
        ticket: Ticket,
        outcome: Outcome,
        lost: bool,
        now: Nanos,
    ) -> Result<Vec<Ticket>, Error> {
        let now = self.now(now);
        let Some(run) = self.running.remove(&ticket) else {
            return Err(Error::invalid(
                "ticket",
                format!("{ticket} is not running (released twice, or never started)"),
            ));
        };
        self.running_bytes -= run.size;
        self.counts.ended(outcome, now.saturating_sub(run.since));
        if outcome == Outcome::Success || lost {
            self.config.capacity.on_sample(Sample {
                start: run.since,
                rtt: now.saturating_sub(run.since),
                in_flight: run.in_flight,
                dropped: lost,
            });
        }
        Ok(self.fill(now))
    }

    pub(super) fn cancel(&mut self, ticket: Ticket, now: Nanos) -> Option<Vec<Ticket>> {
        if let Some(w) = self.queue.remove(&ticket) {
            self.queued_bytes -= w.size;
        } else {
            self.blocked.remove(&ticket)?;
        }
        self.counts.cancelled += 1;
        self.admit_blocked();
        Some(self.fill(now))
    }

    pub(super) fn expire(&mut self, now: Nanos) -> Vec<Ticket> {
        let Some(timeout) = self.config.queue_timeout else {
            return Vec::new();
        };
        let now = self.now(now);
        let due = |w: &Waiter| w.since.saturating_add(timeout) <= now;
        let mut expired = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if !due(entry.get()) {
                break;
            }
            let (t, w) = entry.remove_entry();
            self.queued_bytes -= w.size;
            expired.push(t);
        }
        while let Some(entry) = self.blocked.first_entry() {
            if !due(entry.get()) {
                break;
            }
            expired.push(entry.remove_entry().0);
        }
        expired.sort_unstable();
        self.counts.timed_out += expired.len() as u64;
        self.admit_blocked();
        expired
    }

    pub(super) fn next_deadline(&self) -> Option<Nanos> {
        let timeout = self.config.queue_timeout?;
        let first = |m: &BTreeMap<Ticket, Waiter>| m.first_key_value().map(|(_, w)| w.since);
        let since = match (first(&self.queue), first(&self.blocked)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(since.saturating_add(timeout))
    }

    pub(super) fn close(&mut self) -> Vec<Ticket> {
        self.closed = true;
        let mut ended: Vec<Ticket> = self
            .queue
            .keys()
            .chain(self.blocked.keys())
            .copied()
            .collect();
        ended.sort_unstable();
        self.queue.clear();
        self.blocked.clear();
        self.queued_bytes = 0;
        self.counts.rejected.closed += ended.len() as u64;
        ended
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        self.counts.snapshot(
            self.limit(),
            self.running.len(),
            self.queue.len(),
            self.blocked.len(),
            self.queued_bytes,
            self.running_bytes,
            self.closed,
        )
    }
}
