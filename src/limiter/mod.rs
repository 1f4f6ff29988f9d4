//! What users configure, one concept per file:
//!
//! * [`spec`]: a limit written as text (`"10/second"`), [`spec::LimitSpec`];
//! * [`limit`]: a limit with its algorithm ([`limit::Limit`]) and a key's limits
//!   ([`limit::LimitSet`]), decided together;
//! * [`key_states`]: one key's states of its limits as the in-memory store holds them;
//! * [`memory_limiter`]: keys held to their limits in memory (Python's `Limiter`,
//!   [`memory_limiter::Limiter`]);
//! * [`all_or_nothing`]: the rule of every decision across several limits;
//! * [`allow`]: a decision's verdict alone, for Python's `Limiter.allow`;
//! * [`hit_with`]: two limiters decided as one;
//! * [`redis_limiter`]: the limiter whose state is in Redis (Python's `RedisLimiter`), and
//!   [`redis_failure`]: what it does when Redis cannot answer, [`redis_guard`]: the connection,
//!   breaker and reports every Redis-backed decider shares.
//!
//! The drop-in types of the APIs seawall replaces live apart, in [`crate::dropin`].

pub mod all_or_nothing;
pub mod allow;
pub mod hit_with;
pub mod key_states;
pub mod limit;
pub mod memory_limiter;
pub mod redis_failure;
pub mod redis_guard;
pub mod redis_limiter;
pub mod spec;
