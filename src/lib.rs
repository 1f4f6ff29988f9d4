//! seawall's native core: rate limiting, quotas, circuit breaking and backpressure for Python
//! servers, decided in Rust.
//!
//! The core builds and tests without Python: [`clock`] says what time it is, [`algorithm`] holds
//! the pure state transitions, [`store`] keeps keyed state, [`limiter`] is what users configure,
//! [`breaker`] the circuit breaker, [`http`] the ASGI policy, [`rules`] named rules chosen per
//! request, [`metrics`] bounded counts of who is limited, and [`dropin`] holds the drop-in types of
//! the APIs seawall replaces.
//! The pyo3 bindings live in `python` behind the `python` feature, which the maturin build turns on.

#![warn(missing_docs)]

pub mod algorithm;
pub mod backpressure;
pub mod breaker;
pub mod clock;
pub mod concurrency;
pub mod dropin;
pub mod error;
pub mod http;
pub mod limiter;
pub mod logs;
pub mod metrics;
pub mod rules;
pub mod store;

#[cfg(feature = "python")]
mod python;
