//! Native counters read as snapshots: bounded "who is being limited" top-K counting
//! ([`top_k`]), per-rule metrics ([`rule`]) and latency histograms ([`histogram`]).
//!
//! Nothing here is wired into a limiter yet; the types are plain Rust, thread-safe where they say
//! so, and their snapshots derive `serde::Serialize` so the bindings can hand them to Python in
//! one call.

pub mod histogram;
pub mod rule;
pub mod top_k;
pub mod top_limited;

#[cfg(test)]
mod tests;
