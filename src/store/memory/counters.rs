//! A key's counters as its record in the in-memory store holds them: packed into 20 bytes so that
//! the record stays one cache line.

use super::KeyStats;
use crate::clock::Nanos;

/// The largest count a record keeps ([`KeyCounters`]): 2⁴⁸ − 1, about 2.8 × 10¹⁴ (almost nine
/// years of one key decided a million times a second); a count stops there.
pub const MAX_KEY_COUNT: u64 = (1 << 48) - 1;

/// [`KeyStats`] as a record holds them: 20 bytes at 4-byte alignment (48-bit counts, saturating
/// at [`MAX_KEY_COUNT`]), so that a key, a 24-byte state, its counters and its parameters' id fit
/// one 64-byte cache line.
///
/// ```
/// use seawall::store::memory::{KeyCounters, KeyStats};
///
/// let mut c = KeyCounters::default();
/// c.record(true, 5);
/// c.record(false, 7);
/// assert_eq!(c.get(), KeyStats { total: 2, limited: 1, last_limited: 7 });
/// assert_eq!(std::mem::size_of::<KeyCounters>(), 20);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounters {
    /// The low 32 bits of total and of limited, then their high 16 bits (total's in the low half).
    counts: [u32; 3],
    /// `last_limited`'s low and high halves.
    last_limited: [u32; 2],
}

impl KeyCounters {
    #[inline]
    fn total(&self) -> u64 {
        u64::from(self.counts[0]) | (u64::from(self.counts[2] & 0xffff) << 32)
    }

    #[inline]
    fn limited(&self) -> u64 {
        u64::from(self.counts[1]) | (u64::from(self.counts[2] >> 16) << 32)
    }

    /// Both counts, each at most [`MAX_KEY_COUNT`].
    #[inline]
    fn set_counts(&mut self, total: u64, limited: u64) {
        self.counts = [
            total as u32,
            limited as u32,
            ((total >> 32) as u32) | (((limited >> 32) as u32) << 16),
        ];
    }

    /// Counts one decision.
    #[inline]
    pub fn record(&mut self, allowed: bool, now: Nanos) {
        let total = (self.total() + 1).min(MAX_KEY_COUNT);
        let limited = (self.limited() + u64::from(!allowed)).min(MAX_KEY_COUNT);
        self.set_counts(total, limited);
        if !allowed {
            self.last_limited = [now as u32, (now >> 32) as u32];
        }
    }

    /// The counts as [`KeyStats`].
    #[inline]
    pub fn get(&self) -> KeyStats {
        KeyStats {
            total: self.total(),
            limited: self.limited(),
            last_limited: u64::from(self.last_limited[0]) | (u64::from(self.last_limited[1]) << 32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_at_48_bits() {
        let mut c = KeyCounters::default();
        c.record(false, 3);
        let near = MAX_KEY_COUNT - 1;
        c.set_counts(near, near - 7);
        assert_eq!((c.get().total, c.get().limited), (near, near - 7));
        c.set_counts(near, near);
        c.record(false, u64::MAX);
        c.record(false, u64::MAX);
        assert_eq!(
            c.get(),
            KeyStats {
                total: MAX_KEY_COUNT,
                limited: MAX_KEY_COUNT,
                last_limited: u64::MAX
            }
        );
        c.record(true, 0);
        assert_eq!(c.get().last_limited, u64::MAX, "an admission keeps it");
    }
}
