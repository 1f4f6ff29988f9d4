//! Adaptive concurrency limits, as in Netflix's concurrency-limits: how many calls may run at
//! once, learned from how the calls go.
//!
//! * [`limit`]: what an algorithm is ([`LimitConfig`], [`LimitAlgorithm`]) and what it is fed
//!   ([`Sample`]): success with an RTT, dropped, or nothing (ignored).
//! * [`aimd`]: loss-based, additive increase and multiplicative decrease.
//! * [`gradient`]: delay-based, Netflix's Gradient2 with the guards its users asked for (the
//!   default).
//! * [`partition`]: capacity reserved by criticality.
//! * [`limiter`]: the permits, the bounded queue of waiters and the outcomes, behind one lock
//!   held only inside its calls.
//!
//! ```
//! use seawall::concurrency::{AimdConfig, ConcurrencyLimiter, LimitConfig, LimiterConfig, Outcome};
//!
//! let limiter = ConcurrencyLimiter::new(LimiterConfig {
//!     limit: LimitConfig::Aimd(AimdConfig { initial: 1, ..AimdConfig::default() }),
//!     ..LimiterConfig::default()
//! })
//! .unwrap();
//! let a = limiter.try_acquire(None, 0).unwrap();
//! assert!(limiter.try_acquire(None, 0).is_none());
//! limiter.release(a, Outcome::Success, None, 1_000); // + 1 per round trip: 1 call here
//! assert_eq!(limiter.limit(), 2);
//! let b = limiter.try_acquire(None, 2_000).unwrap();
//! let _c = limiter.try_acquire(None, 2_000).unwrap();
//! limiter.release(b, Outcome::Dropped, None, 3_000); // × 0.9
//! assert_eq!(limiter.limit(), 1);
//! ```

pub mod aimd;
pub mod gradient;
pub mod limit;
pub mod limiter;
pub mod partition;

pub use aimd::{Aimd, AimdConfig};
pub use gradient::{Gradient, GradientConfig};
pub use limit::{LimitAlgorithm, LimitConfig, Sample};
pub use limiter::{Admission, ConcurrencyLimiter, LimiterConfig, Outcome, Permit, Stats, Woken};
pub use partition::Partitions;
