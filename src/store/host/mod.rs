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
//! of state per key (three bucket or fixed-window limits, or two sliding counters).
//!
//! Time: every process reads [`crate::clock::SystemClock`], each anchored to the wall clock when
//! it started. Two processes may disagree by the skew of those anchors (microseconds, more if
//! NTP stepped the clock in between); the algorithms treat time that goes backwards as no time
//! (nothing extra is granted), so a skew can only make a limit stricter by that much.

pub mod segment;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::algorithm::fixed_window::WindowState;
use crate::algorithm::sliding_counter::CounterState;
use crate::algorithm::token_bucket::BucketState;
use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::limit::{AlgorithmKind, Limit, LimitDecision, LimitSet, LimitState};
use crate::limiter::spec::LimitSpec;
use segment::{Layout, Record, Segment, RECORD_BYTES};
use table::{Codec, Kind, State, Table, SLOT_BYTES, STATE_WORDS};

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
    budgets: HostBudgets,
    /// This process's decisions and refusals.
    decisions: AtomicU64,
    limited: AtomicU64,
    /// The keys this process saw refused most (off unless [`HostLimiter::with_top_limited`]).
    top_limited: crate::metrics::top_limited::TopLimited,
}

/// Several limit sets ("budgets") in one host segment, each key held to one of them: the store
/// of [`HostLimiter`] (one budget) and of the HTTP policy (a budget per route rule, the default
/// limits and the global ones). A request's two budgets are decided together, all or nothing.
pub struct HostBudgets {
    codec: Budgets,
    table: Table,
    name: String,
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
                     state (three bucket or fixed-window limits, or two sliding counters), \
                     these need {next}"
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

    fn make(&self, f: impl Fn(usize) -> LimitState) -> State {
        let mut out = [0; STATE_WORDS];
        for (i, &(at, _)) in self.at.iter().enumerate() {
            Self::encode_one(&f(i), at, &mut out);
        }
        out
    }

    fn with<R>(&self, state: &State, f: impl FnOnce(&[LimitState]) -> R) -> R {
        let mut buf = empty();
        let n = self.decode(state, &mut buf);
        f(&buf[..n])
    }
}

fn empty() -> [LimitState; MAX_LIMITS] {
    std::array::from_fn(|_| LimitState::Bucket(BucketState::default()))
}

/// A limit set as the segment's registry keeps it: the number of limits, then per limit its
/// count, period (ns), algorithm and burst (`u64::MAX`: none), little-endian.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::store::host::{record_of, set_of};
///
/// let set = LimitSet::parse("5/minute; 100/day", AlgorithmKind::FixedWindow).unwrap();
/// assert_eq!(set_of(&record_of(&set)), Some(set));
/// ```
pub fn record_of(set: &LimitSet) -> Record {
    let mut r = [0u8; RECORD_BYTES];
    r[0] = set.limits().len() as u8;
    for (i, l) in set.limits().iter().enumerate().take(MAX_LIMITS) {
        let at = 8 + i * 32;
        let kind = AlgorithmKind::ALL
            .iter()
            .position(|k| *k == l.kind())
            .unwrap_or(0);
        let fields = [
            l.spec().count,
            l.spec().period,
            kind as u64,
            l.burst().unwrap_or(u64::MAX),
        ];
        for (j, f) in fields.iter().enumerate() {
            r[at + j * 8..at + j * 8 + 8].copy_from_slice(&f.to_le_bytes());
        }
    }
    r
}

/// The limit set [`record_of`] wrote, if it is one.
pub fn set_of(r: &Record) -> Option<LimitSet> {
    let n = usize::from(r[0]);
    if n == 0 || n > MAX_LIMITS {
        return None;
    }
    let limits = (0..n)
        .map(|i| {
            let at = 8 + i * 32;
            let field =
                |j: usize| u64::from_le_bytes(r[at + j * 8..at + j * 8 + 8].try_into().expect("8"));
            let kind = *AlgorithmKind::ALL.get(field(2) as usize)?;
            let burst = Some(field(3)).filter(|&b| b != u64::MAX);
            let spec = LimitSpec {
                count: field(0),
                period: field(1),
            };
            Limit::new(spec, kind, burst).ok()
        })
        .collect::<Option<Vec<_>>>()?;
    LimitSet::new(limits).ok()
}

/// The budgets of a segment, as the table's [`Codec`]: a slot's kind is the index of its limit
/// set in the segment's registry. This process's own budgets are at hand; another process's
/// (met only when judging a slot to evict) are read from the registry once.
struct Budgets {
    own: Vec<(Kind, Codes)>,
    segment: Arc<Segment>,
    others: RwLock<Vec<(Kind, Option<Arc<Codes>>)>>,
}

impl Budgets {
    fn with_kind<R>(&self, kind: Kind, f: impl FnOnce(Option<&Codes>) -> R) -> R {
        if let Some((_, c)) = self.own.iter().find(|(k, _)| *k == kind) {
            return f(Some(c));
        }
        let known = self
            .others
            .read()
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c.clone());
        let codes = match known {
            Some(c) => c,
            None => {
                let c = self
                    .segment
                    .record(kind)
                    .and_then(|r| set_of(&r))
                    .and_then(|set| Codes::new(set).ok())
                    .map(Arc::new);
                self.others.write().push((kind, c.clone()));
                c
            }
        };
        f(codes.as_deref())
    }
}

impl Codec for Budgets {
    fn fresh(&self, kind: Kind, now: Nanos) -> State {
        self.with_kind(kind, |c| {
            c.map_or([0; STATE_WORDS], |c| c.make(|i| c.set.fresh_state(i, now)))
        })
    }

    fn spent(&self, kind: Kind, at: Nanos) -> State {
        self.with_kind(kind, |c| {
            c.map_or([0; STATE_WORDS], |c| c.make(|i| c.set.spent_state(i, at)))
        })
    }

    fn is_fresh(&self, kind: Kind, state: &State, now: Nanos) -> bool {
        if kind == table::POISONED {
            // Kept until it would be fresh in each of this process's budgets.
            return self.own.iter().all(|(k, c)| {
                let spent = c.make(|i| c.set.spent_state(i, state[0]));
                self.is_fresh(*k, &spent, now)
            });
        }
        self.with_kind(kind, |c| {
            c.is_some_and(|c| c.with(state, |s| c.set.states_are_fresh(s, now)))
        })
    }

    fn eviction_rank(&self, kind: Kind, state: &State, now: Nanos) -> (Nanos, u128) {
        self.with_kind(kind, |c| match c {
            Some(c) if kind != table::POISONED => (0, c.with(state, |s| c.set.states_loss(s, now))),
            _ => (0, u128::MAX),
        })
    }
}

/// One budget's part of a decision: its limits' decision, counted only if every part admits.
fn decide_part(
    codes: &Codes,
    words: &mut State,
    now: Nanos,
    cost: u64,
    commit: bool,
) -> LimitDecision {
    let mut buf = empty();
    let n = codes.decode(words, &mut buf);
    let (decision, i, binding_reset_after) = codes.set.decide(&mut buf[..n], now, cost, commit);
    let d = LimitDecision {
        decision,
        binding: codes.set.limits()[i].spec(),
        binding_reset_after,
    };
    if commit {
        codes.encode(&buf[..n], words);
    }
    d
}

impl HostBudgets {
    /// Opens (or creates) the host store `name` for `sets` (a key is held to one of them), with
    /// room for at least `max_keys` keys. Every process that opens one name must give the same
    /// limit sets, in the same order, and `max_keys`.
    pub fn open(name: &str, sets: Vec<LimitSet>, max_keys: usize) -> Result<Self, Error> {
        let codes = sets
            .into_iter()
            .map(Codes::new)
            .collect::<Result<Vec<_>, Error>>()?;
        let capacity = capacity_for(max_keys)?;
        let layout = Layout {
            capacity: capacity as u64,
            slot_bytes: SLOT_BYTES,
            build: format!("seawall {} host store", env!("CARGO_PKG_VERSION")),
        };
        let records: Vec<Record> = codes.iter().map(|c| record_of(&c.set)).collect();
        let (segment, kinds) = Segment::open(name, &layout, &records)?;
        let segment = Arc::new(segment);
        Ok(HostBudgets {
            codec: Budgets {
                own: kinds.into_iter().zip(codes).collect(),
                segment: segment.clone(),
                others: RwLock::new(Vec::new()),
            },
            table: Table::new(segment, capacity),
            name: name.to_owned(),
        })
    }

    /// Budget `budget`'s limits.
    pub fn limits(&self, budget: usize) -> &LimitSet {
        &self.codec.own[budget].1.set
    }

    /// Decides `cost` for `key` in `budget` at `now`, all or nothing across its limits; counted
    /// only if admitted and `commit`.
    pub fn decide(
        &self,
        budget: usize,
        key: &str,
        now: Nanos,
        cost: u64,
        commit: bool,
    ) -> Result<LimitDecision, Error> {
        let (kind, codes) = &self.codec.own[budget];
        let kind = *kind;
        codes.set.check_cost(cost)?;
        if commit {
            return self.table.update(&self.codec, kind, key, now, |w| {
                Ok::<_, Error>(decide_part(codes, w, now, cost, true))
            });
        }
        let mut words = self.table.read_with(&self.codec, kind, key, now, |w| *w);
        Ok(decide_part(codes, &mut words, now, cost, false))
    }

    /// Decides one request against two budgets' keys at once, all or nothing: counted by both
    /// only if both admit it. Each part's decision, in order, and whether both admitted.
    pub fn hit_pair(
        &self,
        parts: [(usize, &str); 2],
        now: Nanos,
    ) -> Result<(bool, [LimitDecision; 2]), Error> {
        for (budget, _) in parts {
            self.codec.own[budget].1.set.check_cost(1)?;
        }
        let keys = parts.map(|(budget, key)| (self.codec.own[budget].0, key));
        self.table.update_pair(&self.codec, keys, now, |a, b| {
            let (ca, cb) = (&self.codec.own[parts[0].0].1, &self.codec.own[parts[1].0].1);
            // Asked first without counting; counted by both only if both admit.
            let da = decide_part(ca, &mut a.clone(), now, 1, false);
            let db = decide_part(cb, &mut b.clone(), now, 1, false);
            if !(da.decision.allowed && db.decision.allowed) {
                return Ok::<_, Error>((false, [da, db]));
            }
            let da = decide_part(ca, a, now, 1, true);
            let db = decide_part(cb, b, now, 1, true);
            Ok((true, [da, db]))
        })
    }

    /// Makes `key` fresh again in `budget`, for every process; whether it was held.
    pub fn reset(&self, budget: usize, key: &str, now: Nanos) -> bool {
        self.table
            .reset(&self.codec, self.codec.own[budget].0, key, now)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
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
}

impl HostLimiter {
    /// Decides `cost` for `key` here and for `other_key` in `other` (another host limiter, or
    /// this one with another key) at once, all or nothing: counted by both only if both admit
    /// it. The binding decision, as [`crate::limiter::memory_limiter::Limiter::hit_with`] gives.
    pub fn hit_with(
        &self,
        key: &str,
        other: &HostLimiter,
        other_key: &str,
        now: Nanos,
        cost: u64,
    ) -> Result<LimitDecision, Error> {
        crate::limiter::hit_with::same_key(std::ptr::eq(self, other), key, other_key)?;
        let (kind, mine) = &self.budgets.codec.own[0];
        let (other_kind, theirs) = &other.budgets.codec.own[0];
        mine.set.check_cost(cost)?;
        theirs.set.check_cost(cost)?;
        let (all, parts) = table::update_two(
            (&self.budgets.table, &self.budgets.codec, *kind, key),
            (
                &other.budgets.table,
                &other.budgets.codec,
                *other_kind,
                other_key,
            ),
            now,
            |a, b| {
                let da = decide_part(mine, &mut a.clone(), now, cost, false);
                let db = decide_part(theirs, &mut b.clone(), now, cost, false);
                if !(da.decision.allowed && db.decision.allowed) {
                    return Ok::<_, Error>((false, [da, db]));
                }
                Ok((
                    true,
                    [
                        decide_part(mine, a, now, cost, true),
                        decide_part(theirs, b, now, cost, true),
                    ],
                ))
            },
        )?;
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if !all {
            self.limited.fetch_add(1, Ordering::Relaxed);
            if !parts[0].decision.allowed {
                self.top_limited.record(key);
            }
            if !parts[1].decision.allowed {
                other.top_limited.record(other_key);
            }
        }
        let decisions = parts.map(|p| p.decision);
        Ok(parts[crate::limiter::all_or_nothing::binding(&decisions, all, |d| d)])
    }

    /// Opens (or creates) the host store `name` for `limits`, with room for at least `max_keys`
    /// keys. Every process that opens one name must give the same limits and `max_keys`.
    pub fn open(name: &str, limits: LimitSet, max_keys: usize) -> Result<Self, Error> {
        Ok(HostLimiter {
            budgets: HostBudgets::open(name, vec![limits], max_keys)?,
            decisions: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            top_limited: Default::default(),
        })
    }

    /// Counts the keys this process sees refused in a
    /// [`TopLimited`](crate::metrics::top_limited::TopLimited) of `capacity` keys (0: not at
    /// all, the default). Only refusals pay for it.
    ///
    /// ```
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    /// use seawall::store::host::{segment, HostLimiter};
    ///
    /// let name = format!("doctest-top-{}", std::process::id());
    /// let limits = LimitSet::parse("1/minute", AlgorithmKind::Gcra).unwrap();
    /// let limiter = HostLimiter::open(&name, limits, 1000).unwrap().with_top_limited(10);
    /// for _ in 0..3 {
    ///     limiter.hit("k", 0, 1).unwrap();
    /// }
    /// assert_eq!(limiter.top_limited().top(1)[0].count, 2);
    /// assert!(segment::remove(&name).unwrap());
    /// ```
    pub fn with_top_limited(mut self, capacity: usize) -> Self {
        self.top_limited = crate::metrics::top_limited::TopLimited::new(capacity);
        self
    }

    /// The keys this process saw refused most.
    pub fn top_limited(&self) -> &crate::metrics::top_limited::TopLimited {
        &self.top_limited
    }

    /// The limits.
    pub fn limits(&self) -> &LimitSet {
        self.budgets.limits(0)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.budgets.name()
    }

    /// Decides `cost` for `key` at `now` against every limit, all or nothing, and counts it if
    /// admitted, exactly across every process of the store.
    pub fn hit(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        let d = self.budgets.decide(0, key, now, cost, true)?;
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if !d.decision.allowed {
            self.limited.fetch_add(1, Ordering::Relaxed);
            self.top_limited.record(key);
        }
        Ok(d)
    }

    /// What [`HostLimiter::hit`] would decide, changing nothing.
    pub fn test(&self, key: &str, now: Nanos, cost: u64) -> Result<LimitDecision, Error> {
        self.budgets.decide(0, key, now, cost, false)
    }

    /// Makes `key` fresh again, for every process; whether it was held.
    pub fn reset(&self, key: &str, now: Nanos) -> bool {
        self.budgets.reset(0, key, now)
    }

    /// Keys held (a scan of the table).
    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// Slots in the table: the most keys it holds.
    pub fn capacity(&self) -> usize {
        self.budgets.capacity()
    }

    /// Bytes of shared memory the segment takes (capacity × 72 bytes, and a 4 KiB header).
    pub fn bytes(&self) -> usize {
        self.budgets.bytes()
    }

    /// Where the segment lives.
    pub fn path(&self) -> &std::path::Path {
        self.budgets.path()
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
