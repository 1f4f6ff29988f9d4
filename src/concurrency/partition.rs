//! Partitions: capacity reserved by criticality.
//!
//! Each partition is guaranteed `floor(limit × share)` permits; a caller may also borrow what no
//! partition has reserved and left unused. A call is admitted when a permit is free and, once it
//! holds it, the free permits still cover every *other* partition's unused guarantee. So a
//! partition under its guarantee is admitted whenever the total is under the limit, a busy
//! partition cannot take the last permits another one is owed, and the total never exceeds the
//! limit (Netflix's partitioned limiter lets a partition under its share exceed it instead).
//! Callers of no partition have no guarantee and borrow only.
//!
//! ```
//! use seawall::concurrency::Partitions;
//!
//! let mut p = Partitions::new(vec![("critical".into(), 0.8), ("batch".into(), 0.2)]).unwrap();
//! p.set_limit(10); // critical is owed 8, batch 2
//! let batch = p.index("batch");
//! let mut in_flight = 0;
//! while p.admissible(batch, in_flight, 10) {
//!     p.acquire(batch);
//!     in_flight += 1;
//! }
//! assert_eq!(in_flight, 2); // the other 8 are critical's
//! assert!(p.admissible(p.index("critical"), in_flight, 10));
//! ```

use crate::error::Error;

#[derive(Debug, Clone)]
struct Part {
    name: String,
    share: f64,
    guaranteed: u32,
    in_flight: u32,
}

/// The partitions of one limiter (none: every caller borrows from one pool).
#[derive(Debug, Clone, Default)]
pub struct Partitions {
    parts: Vec<Part>,
}

impl Partitions {
    /// Partitions with these shares of the limit: each from 0 to 1, together at most 1.
    pub fn new(shares: Vec<(String, f64)>) -> Result<Self, Error> {
        let mut total = 0.0;
        let mut parts: Vec<Part> = Vec::with_capacity(shares.len());
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(Error::invalid(
                    "partitions",
                    format!("shares must be from 0 to 1, got {share} for {name:?}"),
                ));
            }
            if parts.iter().any(|p| p.name == name) {
                return Err(Error::invalid(
                    "partitions",
                    format!("names each partition once, {name:?} twice"),
                ));
            }
            total += share;
            parts.push(Part {
                name,
                share,
                guaranteed: 0,
                in_flight: 0,
            });
        }
        if total > 1.0 + 1e-9 {
            return Err(Error::invalid(
                "partitions",
                format!("shares must add up to at most 1, got {total}"),
            ));
        }
        Ok(Partitions { parts })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The index of the partition named `name`, if any.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.parts.iter().position(|p| p.name == name)
    }

    /// Recomputes the guarantees for a new limit.
    pub fn set_limit(&mut self, limit: u32) {
        for p in &mut self.parts {
            p.guaranteed = (f64::from(limit) * p.share).floor() as u32;
        }
    }

    /// Whether a caller of `partition` may take a permit with `in_flight` of `limit` held.
    pub fn admissible(&self, partition: Option<usize>, in_flight: u32, limit: u32) -> bool {
        if in_flight >= limit {
            return false;
        }
        let owed: u64 = self
            .parts
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != partition)
            .map(|(_, q)| u64::from(q.guaranteed.saturating_sub(q.in_flight)))
            .sum();
        u64::from(limit - in_flight - 1) >= owed
    }

    /// Counts a permit taken by `partition`.
    pub fn acquire(&mut self, partition: Option<usize>) {
        if let Some(p) = partition.and_then(|i| self.parts.get_mut(i)) {
            p.in_flight += 1;
        }
    }

    /// Counts a permit of `partition` returned.
    pub fn release(&mut self, partition: Option<usize>) {
        if let Some(p) = partition.and_then(|i| self.parts.get_mut(i)) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
    }

    /// Each partition's name, share, guarantee and permits held.
    pub fn snapshot(&self) -> Vec<(&str, f64, u32, u32)> {
        self.parts
            .iter()
            .map(|p| (p.name.as_str(), p.share, p.guaranteed, p.in_flight))
            .collect()
    }
}
