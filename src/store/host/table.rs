//! The table in a host segment: open addressing over `capacity` slots, each key in one of the 16
//! slots after its home slot, and every slot guarded by a lock that a crashed holder cannot keep.
//!
//! Layout (64-bit words after the header): `capacity` tags (a key's 64-bit hash under the
//! segment's secret seed; 0: empty), then `capacity` slots of eight words: the lock, a check word
//! (the state's kind, which of the store's limit sets it is kept under, where the state is, and a
//! checksum), and six words of state. A state that fits in three words (every one-limit key's)
//! is kept in one of two copies: a write fills the other copy and then switches to it with one
//! store of the check word, so a writer killed at any point leaves the old state or the new one. Tags apart from slots make a lookup read one or two cache lines of
//! tags and then the one line of its slot.
//!
//! Locks. A slot's lock word is 0 when free, else its holder's pid and the second it took it. A
//! decision holds it for well under a microsecond. A process that waits on it longer than a
//! few spins checks the holder: if that process is gone (`kill -9` mid-decision), or held it for
//! over ten seconds, the lock is taken over. A compact state (below) is whole whenever the holder
//! died: at most its one decision in flight is lost. A larger state, written in place, is checked
//! against the checksum written after it: a mismatch is replaced by a state with every limit spent
//! just now, so a crash never lets a key admit more than its limit. New keys are placed under one of 256 insertion locks (by home
//! slot), taken before any slot lock, so that two processes never place one key twice.
//!
//! Eviction: a key finds no room when its 16 slots are taken. It then takes the first of them
//! that is back to fresh (lossless), else the one whose state gives away least
//! ([`Codec::eviction_rank`]), as the memory store does.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;

use super::segment::{Segment, HEADER_BYTES};
use crate::clock::{Nanos, NANOS_PER_SEC};

/// Slots a key may live in, from its home slot on.
pub const WINDOW: usize = 16;
/// Words of state per slot.
pub const STATE_WORDS: usize = 6;
/// Words per slot: the lock, the checksum, the state.
const SLOT_WORDS: usize = 2 + STATE_WORDS;
/// Bytes a slot costs, its tag included.
pub const SLOT_BYTES: u32 = ((SLOT_WORDS + 1) * 8) as u32;
/// Insertion locks, in the header page after the header itself.
const INSERT_LOCKS: usize = 256;
const INSERT_LOCKS_AT: usize = 1024;
/// A lock held longer than this is taken over even if its holder lives (a stopped process).
const STALE_SECS: u64 = 10;

/// A key's state as six words, and what the table needs to know of it.
pub type State = [u64; STATE_WORDS];

/// Which limits a slot's state is kept under (a budget of the store), recorded beside it.
pub type Kind = u16;
/// The kind of a state replaced after a crash: word 0 says when; spent in every kind.
pub const POISONED: Kind = Kind::MAX;

/// What the table needs of the states it keeps (the limits' arithmetic, on words).
pub trait Codec {
    /// A new key's state of `kind` at `now`.
    fn fresh(&self, kind: Kind, now: Nanos) -> State;
    /// A state of `kind` no more generous than any real one at `at`: every limit spent then.
    fn spent(&self, kind: Kind, at: Nanos) -> State;
    /// Whether `state` (of `kind`; [`POISONED`] too) is, at `now`, the same as a new key's.
    fn is_fresh(&self, kind: Kind, state: &State, now: Nanos) -> bool;
    /// The eviction order among states that are not fresh: least loss first.
    fn eviction_rank(&self, kind: Kind, state: &State, now: Nanos) -> (Nanos, u128);
}

/// The table of one segment.
pub struct Table {
    segment: std::sync::Arc<Segment>,
    capacity: usize,
    hasher: FixedState,
}

/// A held slot lock; released when dropped.
pub struct Held<'a> {
    lock: &'a AtomicU64,
    /// Taken over from a holder that died or stalled: the state may be half-written.
    recovered: bool,
}

/// Set in a lock word by a process that sleeps on it: the holder wakes the sleepers as it lets
/// go. (Pids stay below 2^22, so the top bit is free.)
const SLEEPERS: u64 = 1 << 63;

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.lock.swap(0, Ordering::Release) & SLEEPERS != 0 {
            futex_wake(self.lock);
        }
    }
}

/// The low half of a lock word, as the 32-bit futex the kernel sleeps on (little-endian).
fn futex_of(word: &AtomicU64) -> *const u32 {
    const { assert!(cfg!(target_endian = "little")) };
    word as *const AtomicU64 as *const u32
}

/// Sleeps until the low half of `word` is no longer `expected`, woken, or 1 ms passed. Shared
/// (not private) futexes: the word is in memory several processes map.
fn futex_wait(word: &AtomicU64, expected: u32) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    // SAFETY: the address is a live, aligned u32 inside the mapping; the kernel only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_of(word),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes every process sleeping on `word`.
fn futex_wake(word: &AtomicU64) {
    // SAFETY: as in futex_wait; FUTEX_WAKE does not touch the memory.
    unsafe {
        libc::syscall(libc::SYS_futex, futex_of(word), libc::FUTEX_WAKE, i32::MAX);
    }
}

fn now_secs() -> u64 {
    crate::clock::Clock::now(&crate::clock::SystemClock) / NANOS_PER_SEC
}

/// Whether process `pid` is gone.
fn gone(pid: u32) -> bool {
    // SAFETY: signal 0 only checks whether the process exists and may be signalled.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Takes a lock word of shared memory (0 when free) the way slots are taken: a holder that is
/// gone, or stalled over ten seconds, is taken over. Released when the guard drops.
pub fn hold(word: &AtomicU64) -> Held<'_> {
    lock(word)
}

fn lock(word: &AtomicU64) -> Held<'_> {
    let me = (u64::from(crate::store::redis::runtime::pid()) << 32) | (now_secs() & 0xffff_ffff);
    let mut spins = 0u32;
    loop {
        if word
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Held {
                lock: word,
                recovered: false,
            };
        }
        // Wait reading, not writing (the line stays shared until the holder lets go): a few
        // spins, then sleep on the word until the holder lets go (the holder may have been
        // descheduled mid-decision: with more processes than cores, a waiter that stays
        // runnable only keeps it from the CPU). Every 1 ms asleep, ask whether the holder is
        // still there (a system call).
        loop {
            let held = word.load(Ordering::Relaxed);
            if held == 0 {
                break;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
                continue;
            }
            let owner = held & !SLEEPERS;
            if spins.is_multiple_of(8) {
                let holder = (owner >> 32) as u32;
                let since = owner & 0xffff_ffff;
                // Held for over STALE_SECS (an age that wraps below zero is a clock that
                // differs a little between processes, not an old lock).
                let age = (now_secs() & 0xffff_ffff).wrapping_sub(since) & 0xffff_ffff;
                let stale = age > STALE_SECS && age < 1 << 31;
                if (gone(holder) || stale)
                    && word
                        .compare_exchange(held, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    if held & SLEEPERS != 0 {
                        // Others slept on the dead holder: they will try again as we let go.
                        word.fetch_or(SLEEPERS, Ordering::Relaxed);
                    }
                    crate::event!(log::Level::Warn, "seawall::host", "host_lock_recovered",
                        { holder_pid = holder, held_seconds = age },
                        "a host-store lock was held by process {holder} for {age} s ({}): \
                         taken over; the slot's state is checked before use",
                        if gone(holder) { "gone" } else { "stuck" });
                    return Held {
                        lock: word,
                        recovered: true,
                    };
                }
            }
            if held & SLEEPERS == 0
                && word
                    .compare_exchange(held, held | SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            futex_wait(word, held as u32);
        }
    }
}

/// The slot's second word: its kind in the top 16 bits, a checksum of the tag, kind and state
/// below (never 0: a slot's word is 0 only before its first write).
fn check_word(tag: u64, kind: Kind, layout: u64, words: &[u64]) -> u64 {
    let sum = words.iter().fold(
        tag ^ u64::from(kind) ^ layout ^ 0x9e37_79b9_7f4a_7c15,
        |h, w| (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29),
    );
    (u64::from(kind) << 48) | layout | (sum & SUM_BITS) | 1
}

/// In the check word: the state fits in three words and is kept in one of two copies...
const COMPACT: u64 = 1 << 47;
/// ...the second (else the first).
const SECOND: u64 = 1 << 46;
/// The checksum's bits.
const SUM_BITS: u64 = (1 << 46) - 1;
/// Words of a compact state (the rest are zero).
const COMPACT_WORDS: usize = STATE_WORDS / 2;

impl Table {
    /// The table of `segment`, which holds `capacity` slots (a power of two).
    pub fn new(segment: std::sync::Arc<Segment>, capacity: usize) -> Self {
        debug_assert_eq!(
            segment.words().len(),
            capacity * (SLOT_WORDS + 1),
            "the segment was sized for this table"
        );
        let seed = segment.header().seed;
        Table {
            segment,
            capacity,
            hasher: FixedState::with_seed(seed[0] ^ seed[1].rotate_left(32)),
        }
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn insert_lock(&self, home: usize) -> &AtomicU64 {
        const { assert!(INSERT_LOCKS_AT + INSERT_LOCKS * 8 <= HEADER_BYTES) };
        // SAFETY: the header page holds the insertion locks at INSERT_LOCKS_AT, 8-aligned,
        // inside HEADER_BYTES, accessed only atomically.
        unsafe {
            let base = (self.segment.header() as *const _ as *const u8).add(INSERT_LOCKS_AT);
            &*(base as *const AtomicU64).add(home % INSERT_LOCKS)
        }
    }

    #[inline]
    fn tag(&self, i: usize) -> &AtomicU64 {
        &self.segment.words()[i]
    }

    #[inline]
    fn slot(&self, i: usize) -> &[AtomicU64] {
        let at = self.capacity + i * SLOT_WORDS;
        &self.segment.words()[at..at + SLOT_WORDS]
    }

    /// The state as the check word says it is kept: a compact state from its current copy (the
    /// rest zero), a full one from all six words; and the words its checksum covers.
    fn read(&self, i: usize, check: u64) -> (State, u64) {
        let slot = self.slot(i);
        let mut state = [0; STATE_WORDS];
        if check & COMPACT != 0 {
            let at = if check & SECOND != 0 {
                COMPACT_WORDS
            } else {
                0
            };
            for (w, v) in state.iter_mut().take(COMPACT_WORDS).enumerate() {
                *v = slot[2 + at + w].load(Ordering::Relaxed);
            }
            (state, check & (COMPACT | SECOND))
        } else {
            for (w, v) in state.iter_mut().enumerate() {
                *v = slot[2 + w].load(Ordering::Relaxed);
            }
            (state, 0)
        }
    }

    /// Writes `state` under the slot's lock. A state that fits in three words (every one-limit
    /// key's) goes into the copy not in use, and the check word then names it in one store: a
    /// holder killed at any point leaves the old state or the new one, whole. A larger state is
    /// written in place, and one killed mid-write is caught by the checksum.
    fn write(&self, i: usize, tag: u64, kind: Kind, state: &State) {
        let slot = self.slot(i);
        let old = slot[1].load(Ordering::Relaxed);
        let compact = state[COMPACT_WORDS..].iter().all(|&w| w == 0);
        let layout = if compact {
            // The other copy, if the slot is compact now; else the first.
            let second = old & COMPACT != 0 && old & SECOND == 0;
            let at = if second { COMPACT_WORDS } else { 0 };
            for (w, v) in state.iter().take(COMPACT_WORDS).enumerate() {
                slot[2 + at + w].store(*v, Ordering::Relaxed);
            }
            COMPACT | if second { SECOND } else { 0 }
        } else {
            for (w, v) in state.iter().enumerate() {
                slot[2 + w].store(*v, Ordering::Relaxed);
            }
            0
        };
        let covered = if compact {
            &state[..COMPACT_WORDS]
        } else {
            &state[..]
        };
        slot[1].store(check_word(tag, kind, layout, covered), Ordering::Relaxed);
    }

    /// The slot's kind and state, under its lock. A state a dead holder may have left
    /// half-written (its check word does not match) is replaced by a poisoned one: spent now.
    fn raw(&self, i: usize, held: &Held<'_>, now: Nanos) -> (Kind, State) {
        let tag = self.tag(i).load(Ordering::Relaxed);
        let check = self.slot(i)[1].load(Ordering::Relaxed);
        let (words, layout) = self.read(i, check);
        let kind = (check >> 48) as Kind;
        let covered = if layout & COMPACT != 0 {
            &words[..COMPACT_WORDS]
        } else {
            &words[..]
        };
        if held.recovered && check != check_word(tag, kind, layout, covered) {
            let mut poisoned = [0; STATE_WORDS];
            poisoned[0] = now;
            self.write(i, tag, POISONED, &poisoned);
            return (POISONED, poisoned);
        }
        (kind, words)
    }

    /// The slot's state as `kind` sees it: what it holds if it is of that kind, else (poisoned,
    /// or a 64-bit hash collision between keys of two kinds) a state with every limit spent.
    fn state<C: Codec>(
        &self,
        codec: &C,
        kind: Kind,
        i: usize,
        held: &Held<'_>,
        now: Nanos,
    ) -> State {
        match self.raw(i, held, now) {
            (k, words) if k == kind => words,
            (POISONED, words) => codec.spent(kind, words[0]),
            _ => codec.spent(kind, now),
        }
    }

    /// Runs `f` on `key`'s state (made fresh if the key is new, evicting another if its slots
    /// are full) under the slot's lock, and keeps what `f` leaves. `f` may decline to change it
    /// (`Err`), which keeps the state as it was.
    pub fn update<C: Codec, R, E>(
        &self,
        codec: &C,
        kind: Kind,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&mut State) -> Result<R, E>,
    ) -> Result<R, E> {
        let h = self.hasher.hash_one((kind, key));
        let tag = h.max(1);
        let home = (h.rotate_left(32) as usize) & (self.capacity - 1);
        let (i, held) = loop {
            if let Some(found) = self.find(tag, home) {
                break found;
            }
            if let Some(placed) = self.place(codec, kind, tag, home, now) {
                break placed;
            }
        };
        let mut state = self.state(codec, kind, i, &held, now);
        let r = f(&mut state)?;
        self.write(i, tag, kind, &state);
        drop(held);
        Ok(r)
    }

    /// [`Table::update`] for two keys at once: both slots locked together (in slot order, the
    /// same in every process, so two processes never wait on each other), so that `f` decides
    /// across both with no other decision in between (a request's global and per-client
    /// budgets, all or nothing). The keys must differ.
    pub fn update_pair<C: Codec, R, E>(
        &self,
        codec: &C,
        keys: [(Kind, &str); 2],
        now: Nanos,
        f: impl FnOnce(&mut State, &mut State) -> Result<R, E>,
    ) -> Result<R, E> {
        update_two(
            (self, codec, keys[0].0, keys[0].1),
            (self, codec, keys[1].0, keys[1].1),
            now,
            f,
        )
    }

    /// Where `key` is, placing it if new; its slot's lock is let go at once.
    fn slot_of<C: Codec>(&self, codec: &C, kind: Kind, key: &str, now: Nanos) -> (u64, usize) {
        let h = self.hasher.hash_one((kind, key));
        let (tag, home) = (h.max(1), (h.rotate_left(32) as usize) & (self.capacity - 1));
        let (i, held) = loop {
            if let Some(found) = self.find(tag, home) {
                break found;
            }
            if let Some(placed) = self.place(codec, kind, tag, home, now) {
                break placed;
            }
        };
        drop(held);
        (tag, i)
    }

    /// Reads `key`'s state without keeping anything: `f` sees a fresh state for a new key.
    pub fn read_with<C: Codec, R>(
        &self,
        codec: &C,
        kind: Kind,
        key: &str,
        now: Nanos,
        f: impl FnOnce(&State) -> R,
    ) -> R {
        let h = self.hasher.hash_one((kind, key));
        let tag = h.max(1);
        let home = (h.rotate_left(32) as usize) & (self.capacity - 1);
        match self.find(tag, home) {
            Some((i, held)) => f(&self.state(codec, kind, i, &held, now)),
            None => f(&codec.fresh(kind, now)),
        }
    }

    /// Makes `key` fresh again; whether it was held.
    pub fn reset<C: Codec>(&self, codec: &C, kind: Kind, key: &str, now: Nanos) -> bool {
        let h = self.hasher.hash_one((kind, key));
        let tag = h.max(1);
        let home = (h.rotate_left(32) as usize) & (self.capacity - 1);
        match self.find(tag, home) {
            Some((i, _held)) => {
                self.write(i, tag, kind, &codec.fresh(kind, now));
                true
            }
            None => false,
        }
    }

    /// The slot holding `tag`, locked, if any.
    fn find(&self, tag: u64, home: usize) -> Option<(usize, Held<'_>)> {
        for j in 0..WINDOW {
            let i = (home + j) & (self.capacity - 1);
            if self.tag(i).load(Ordering::Acquire) == tag {
                let held = lock(&self.slot(i)[0]);
                // Evicted between the look and the lock: look again.
                if self.tag(i).load(Ordering::Relaxed) == tag {
                    return Some((i, held));
                }
                return None;
            }
        }
        None
    }

    /// Places a new key (`tag`) in its window under its insertion lock: in the first empty slot,
    /// else in place of the slot that loses least. `None` if another process placed it first.
    fn place<C: Codec>(
        &self,
        codec: &C,
        kind: Kind,
        tag: u64,
        home: usize,
        now: Nanos,
    ) -> Option<(usize, Held<'_>)> {
        let _insert = lock(self.insert_lock(home));
        if let Some(found) = self.find(tag, home) {
            return Some(found);
        }
        let fresh = codec.fresh(kind, now);
        // An empty slot (another key's insertion, under another insertion lock, may take it
        // between the look and the lock: then the next one).
        for j in 0..WINDOW {
            let i = (home + j) & (self.capacity - 1);
            if self.tag(i).load(Ordering::Acquire) != 0 {
                continue;
            }
            let held = lock(&self.slot(i)[0]);
            if self.tag(i).load(Ordering::Relaxed) == 0 {
                self.write(i, tag, kind, &fresh);
                self.tag(i).store(tag, Ordering::Release);
                return Some((i, held));
            }
        }
        // Full: the first fresh slot, else the one that gives away least.
        let mut victim: Option<(usize, (Nanos, u128))> = None;
        for j in 0..WINDOW {
            let i = (home + j) & (self.capacity - 1);
            let held = lock(&self.slot(i)[0]);
            let (k, state) = self.raw(i, &held, now);
            if codec.is_fresh(k, &state, now) {
                victim = Some((i, (0, 0)));
                drop(held);
                break;
            }
            let rank = codec.eviction_rank(k, &state, now);
            if victim.is_none_or(|(_, best)| rank < best) {
                victim = Some((i, rank));
            }
        }
        let (i, _) = victim?;
        let held = lock(&self.slot(i)[0]);
        self.write(i, tag, kind, &fresh);
        self.tag(i).store(tag, Ordering::Release);
        Some((i, held))
    }

    /// Keys held (a scan of the tags).
    pub fn len(&self) -> usize {
        (0..self.capacity)
            .filter(|&i| self.tag(i).load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key in a table, with its codec and kind: one side of [`update_two`].
pub type Side<'a, C> = (&'a Table, &'a C, Kind, &'a str);

/// [`Table::update`] for two keys at once, in one table or two (a tool's limit and a
/// server-wide one): both slots locked together, in the order of (segment path, slot), the same
/// in every process, so that two processes never wait on each other; `f` then decides across
/// both with no other decision in between. The keys must differ.
pub fn update_two<C: Codec, R, E>(
    a: Side<'_, C>,
    b: Side<'_, C>,
    now: Nanos,
    f: impl FnOnce(&mut State, &mut State) -> Result<R, E>,
) -> Result<R, E> {
    let sides = [a, b];
    loop {
        let at = sides.map(|(table, codec, kind, key)| table.slot_of(codec, kind, key, now));
        let order = |n: usize| (sides[n].0.segment.path(), at[n].1);
        let (first, second) = if order(0) <= order(1) { (0, 1) } else { (1, 0) };
        let same = order(0) == order(1);
        let held_first = lock(&sides[first].0.slot(at[first].1)[0]);
        let held_second = (!same).then(|| lock(&sides[second].0.slot(at[second].1)[0]));
        // Either key evicted before both were locked: place it again.
        if (0..2).any(|n| sides[n].0.tag(at[n].1).load(Ordering::Relaxed) != at[n].0) {
            continue;
        }
        let held = |n: usize| {
            if n == first {
                &held_first
            } else {
                held_second.as_ref().unwrap_or(&held_first)
            }
        };
        let state = |n: usize| {
            let (table, codec, kind, _) = sides[n];
            table.state(codec, kind, at[n].1, held(n), now)
        };
        let (mut sa, mut sb) = (state(0), state(1));
        let r = f(&mut sa, &mut sb)?;
        sides[0].0.write(at[0].1, at[0].0, sides[0].2, &sa);
        sides[1].0.write(at[1].1, at[1].0, sides[1].2, &sb);
        return Ok(r);
    }
}
