//! Where a rule's budgets live: this process's memory, the host store (shared memory, every
//! process of one machine) or Redis (every worker of every host).
//!
//! A rule has up to three kinds of budgets, told apart by a `role`: its own (`b`), its QUEUE
//! places (`q`), and those of an override's multiplied limits (`m<bits>`). Memory keeps each in
//! a limiter of its own; the host store and Redis key them apart (the host store by a prefix of
//! the key, Redis by the key prefix), so that two roles with equal numbers never share a count.

use std::sync::Arc;

use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::limit::{LimitDecision, LimitSet};
use crate::limiter::memory_limiter::Limiter;
use crate::limiter::redis_guard::RedisLimiterConfig;
use crate::limiter::redis_limiter::RedisLimiter;
use crate::store::host::HostLimiter;

/// Where an engine keeps its budgets.
#[derive(Debug, Clone)]
pub enum RuleStore {
    /// This process's memory.
    Memory,
    /// The host store of this name (`host://NAME`).
    Host(String),
    /// Redis; the config's prefix is the engine's `key_prefix`.
    Redis(RedisLimiterConfig),
}

/// One role's budgets of one rule.
pub enum Budgets {
    /// In memory.
    Memory(Limiter),
    /// In the host store, keys prefixed with the role.
    Host(HostLimiter, String),
    /// In Redis.
    Redis(Arc<RedisLimiter>),
}

impl RuleStore {
    /// The budgets of `role` under `limits`, holding at most `max_keys` keys (memory and host).
    pub fn open(
        &self,
        role: &str,
        limits: LimitSet,
        max_keys: usize,
        now: Nanos,
    ) -> Result<Budgets, Error> {
        Ok(match self {
            RuleStore::Memory => Budgets::Memory(Limiter::new(limits, max_keys)),
            RuleStore::Host(name) => Budgets::Host(
                HostLimiter::open(name, limits, max_keys)?,
                format!("{role}|"),
            ),
            RuleStore::Redis(config) => {
                let mut config = config.clone();
                config.prefix = format!("{}b:{role}:", config.prefix);
                Budgets::Redis(Arc::new(RedisLimiter::new(limits, config, now)?))
            }
        })
    }

    /// Whether decisions need Redis (an await) rather than being made at once.
    pub fn is_remote(&self) -> bool {
        matches!(self, RuleStore::Redis(_))
    }
}

impl Budgets {
    /// Decides `cost` for `key` at `now` where the answer is known at once (memory, host);
    /// `None` for Redis, whose decisions the caller makes (blocking or awaited).
    #[inline]
    pub fn hit_here(
        &self,
        key: &str,
        now: Nanos,
        cost: u64,
    ) -> Option<Result<LimitDecision, Error>> {
        match self {
            Budgets::Memory(l) => Some(l.hit(key, now, cost)),
            Budgets::Host(l, role) => Some(l.hit(&format!("{role}{key}"), now, cost)),
            Budgets::Redis(_) => None,
        }
    }

    /// The Redis limiter, if the budgets are in Redis.
    pub fn redis(&self) -> Option<&Arc<RedisLimiter>> {
        match self {
            Budgets::Redis(r) => Some(r),
            _ => None,
        }
    }

    /// Forgets `key` where that is done at once (memory, host); `None` for Redis.
    pub fn reset_here(&self, key: &str, now: Nanos) -> Option<bool> {
        match self {
            Budgets::Memory(l) => Some(l.reset(key, now)),
            Budgets::Host(l, role) => Some(l.reset(&format!("{role}{key}"), now)),
            Budgets::Redis(_) => None,
        }
    }
}
