//! The host store: limits shared exactly by every process of one machine (the workers of an
//! app), kept in a named shared-memory segment ([`segment`]) and decided in place, at memory
//! speed, with no server to run.
//!
//! [`HostLimiter`] is the store's limiter: the same limits and arithmetic as
//! [`crate::limiter::memory_limiter::Limiter`] (each decision decodes the key's state from the
//! segment's words, runs [`LimitSet::decide`] on it, and writes it back under the slot's lock:
//! see [`table`] for the locks, crash safety and eviction). The sliding log keeps one entry per
//! request, which has no fixed size in shared memory: the host store takes every other
//! algorithm (GCRA, token and leaky buckets, fixed windows, sliding counters), up to six words
//! of state per key (three bucket limits, or three window limits, or two sliding counters).
//!
//! Time: every process reads [`crate::clock::SystemClock`], each anchored to the wall clock when
//! it started. Two processes may disagree by the skew of those anchors (microseconds, more if
//! NTP stepped the clock in between); the algorithms treat time that goes backwards as no time
//! (nothing extra is granted), so a skew can only make a limit stricter by that much.

pub mod segment;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::algorithm::fixed_window::WindowState;
use crate::algorithm::sliding_counter::CounterState;
use crate::algorithm::token_bucket::BucketState;
use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::limit::{AlgorithmKind, LimitDecision, LimitSet, LimitState};
use segment::{Layout, Segment};
use table::{Codec, State, Table, SLOT_BYTES, STATE_WORDS};

/// Limits per key with state in a shared-memory segment of this machine.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::store::host::{segment, HostLimiter};
///
/// let name = format!("doctest-{}", std::process::id());
/// let limits = LimitSet::parse("2/minute", AlgorithmKind::Gcra).unwrap();
/// let a = HostLimiter::open(&name, limits.clone(), 1000).unwrap();
/// let b = HostLimiter::open(&name, limits, 1000).unwrap(); // another worker, the same budgets
/// assert!(a.hit("k", 0, 1).unwrap().decision.allowed);
/// assert!(b.hit("k", 0, 1).unwrap().decision.allowed);
/// assert!(!a.hit("k", 0, 1).unwrap().decision.allowed);
/// assert!(segment::remove(&name).unwrap());
/// ```
pub struct HostLimiter {
    limits: Codes,
    table: Table,
    name: String,
    /// This process's decisions and refusals.
    decisions: AtomicU64,
    limited: AtomicU64,
}

/// A limit set as the table keeps it: where each limit's words start.
struct Codes {
    set: LimitSet,
    /// Per limit: its first word and how many.
    at: Vec<(usize, usize)>,
}

/// Limits a key has at most here.
const MAX_LIMITS: usize = 3;

impl Codes {
    fn new(set: LimitSet) -> Result<Self, Error> {
        let mut at = Vec::new();
        let mut next = 0;
        for l in set.limits() {
            let n =
                match l.kind() {
                    AlgorithmKind::SlidingLog => return Err(Error::invalid(
                        "algorithm",
                        "sliding_log keeps an entry per request, which a host store cannot hold \
                         in a fixed slot; use sliding_counter (or gcra) with store='host://…'",
                    )),
                    AlgorithmKind::FixedWindow => 2,
                    AlgorithmKind::SlidingCounter => 3,
                    _ => 2,
                };
            at.push((next, n));
            next += n;
        }
        if next > STATE_WORDS {
            return Err(Error::invalid(
                "limits",
                format!(
                    "are too many for a host store: a key keeps at most {STATE_WORDS} words of \
                     state (three bucket or fixed-window limits, two sliding counters), these \
                     need {next}"
                ),
            ));
        }
        Ok(Codes { set, at })
    }

    fn decode(&self, words: &State, out: &mut [LimitState; MAX_LIMITS]) -> usize {
        for (i, (l, &(at, _))) in self.set.limits().iter().zip(&self.at).enumerate() {
            out[i] = match l.kind() {
                AlgorithmKind::FixedWindow => {
                    LimitState::Fixed(WindowState::from_words([words[at], words[at + 1]]))
                }
                AlgorithmKind::SlidingCounter => LimitState::Counter(CounterState::from_words([
                    words[at],
                    words[at + 1],
                    words[at + 2],
                ])),
                _ => LimitState::Bucket(BucketState::from_words([words[at], words[at + 1]])),
            };
        }
        self.at.len()
    }

    fn encode_one(state: &LimitState, at: usize, out: &mut State) {
        match state {
            LimitState::Fixed(s) => out[at..at + 2].copy_from_slice(&s.to_words()),
            LimitState::Counter(s) => out[at..at + 3].copy_from_slice(&s.to_words()),
            LimitState::Bucket(s) => out[at..at + 2].copy_from_slice(&s.to_words()),
            // Refused in `new`.
            LimitState::Log(_) => {}
        }
    }

    fn encode(&self, states: &[LimitState], out: &mut State) {
        for (s, &(at, _)) in states.iter().zip(&self.at) {
            Self::encode_one(s, at, out);
        }
    }

    fn with<R>(&self, state: &State, f: impl FnOnce(&[LimitState]) -> R) -> R {
        let mut buf = empty();
        let n = self.decode(state, &mut buf);
        f(&buf[..n])
    }

    fn make(&self, f: impl Fn(usize) -> LimitState) -> State {
        let mut out = [0; STATE_WORDS];
        for (i, &(at, _)) in self.at.iter().enumerate() {
            Self::encode_one(&f(i), at, &mut out);
        }
        out
    }
}

fn empty() -> [LimitState; MAX_LIMITS] {
    std::array::from_fn(|_| LimitState::Bucket(BucketState::default()))
}

impl Codec for Codes {
    fn fresh(&self, now: Nanos) -> State {
        self.make(|i| self.set.fresh_state(i, now))
    }

    fn spent(&self, now: Nanos) -> State {
        self.make(|i| self.set.spent_state(i, now))
    }

    fn is_fresh(&self, state: &State, now: Nanos) -> bool {
        self.with(state, |s| self.set.states_are_fresh(s, now))
    }

    fn eviction_rank(&self, state: &State, now: Nanos) -> (Nanos, u128) {
        (0, self.with(state, |s| self.set.states_loss(s, now)))
    }
}

impl HostLimiter {
    /// Opens (or creates) the host store `name` for `limits`, with room for at least `max_keys`
    /// keys. Every process that opens one name must give the same limits and `max_keys`.
    pub fn open(name: &str, limits: LimitSet, max_keys: usize) -> Result<Self, Error> {
        let codes = Codes::new(limits)?;
        let capacity = capacity_for(max_keys)?;
        let layout = Layout {
            capacity: capacity as u64,
            slot_bytes: SLOT_BYTES,
            config: format!(
                "seawall {} host store: {:?}",
                env!("CARGO_PKG_VERSION"),
                codes.set.limits()
            ),
        };
        let segment = Segment::open(name, &layout)?;
        Ok(HostLimiter {
            limits: codes,
            table: Table::new(segment, capacity),
            name: name.to_owned(),
            decisions: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &LimitSet {
        &self.limits.set
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn decide(
        &self,
        key: &str,
        now: Nanos,
        cost: u64,
        commit: bool,
    ) -> Result<LimitDecision, Error> {
        let set = &self.limits.set;
        set.check_cost(cost)?;
        let run = |words: &mut State| {
            let mut buf = empty();
            let n = self.limits.decode(words, &mut buf);
            let (decision, i, binding_reset_after) = set.decide(&mut buf[..n], now, cost, commit);
            if commit {
                self.limits.encode(&buf[..n], words);
            }
            Ok::<_, Error>(LimitDecision {
                decision,
                binding: set.limits()[i].spec(),
                binding_reset_after,
            })
        };
        let d = if commit {
            self.table.update(&self.limits, key, now, run)?
        } else {
            let mut copy = None;
            self.table
                .read_with(&self.limits, key, now, |w| copy = Some(*w));
            let mut words = copy.unwrap_or_else(|| self.limits.fresh(now));
            run(&mut words)?
        };
        if commit {
            self.decisions.fetch_add(1, Ordering::Relaxed);
            if !d.decision.allowed {
                self.limited.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(d)
    }

    /// Decides `cost` for `key` at `now` against every limit, all or nothing, and counts it if
    /// admitted, exactly across every process of the store.
    pub fn hit(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        self.decide(key, now, cost, true)
    }

    /// What [`HostLimiter::hit`] would decide, changing nothing.
    pub fn test(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        self.decide(key, now, cost, false)
    }

    /// Makes `key` fresh again, for every process; whether it was held.
    pub fn reset(&self, key: &str, now: Nanos) -> bool {
        self.table.reset(&self.limits, key, now)
    }

    /// Keys held (a scan of the table).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Slots in the table: the most keys it holds.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Bytes of shared memory the segment takes (capacity × 72 bytes, and a 4 KiB header).
    pub fn bytes(&self) -> usize {
        self.table.segment().bytes()
    }

    /// Where the segment lives.
    pub fn path(&self) -> &std::path::Path {
        self.table.segment().path()
    }

    /// This process's decisions and refusals.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.decisions.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
        )
    }
}

/// Slots for `max_keys` keys: the power of two at or above it, at least 64. (Each key lives in
/// one of 16 slots from its home, so a table evicts a little before every slot is taken.)
fn capacity_for(max_keys: usize) -> Result<usize, Error> {
    const MOST: usize = 1 << 28;
    if max_keys == 0 || max_keys > MOST {
        return Err(Error::invalid(
            "max_keys",
            format!("must be between 1 and {MOST} for a host store, got {max_keys}"),
        ));
    }
    Ok(max_keys.next_power_of_two().max(64))
}
