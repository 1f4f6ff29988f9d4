//! The pyo3 bindings: thin types that convert arguments, read the clock and map errors. The logic
//! and its documentation live in the core modules.

mod asgi_entry;
mod backpressure;
mod breaker;
mod bucket;
mod client;
mod clock;
mod concurrency;
mod config;
mod direct;
mod errors;
mod futures;
mod header_send;
mod host;
mod http;
mod limiter;
mod logs;
mod redis;
mod rules;
mod rules_gate;
mod rules_redis;
mod rules_shared;
mod top_limited;

use pyo3::prelude::*;

#[pymodule]
fn _seawall(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    logs::install(m.py())?;
    m.add_function(wrap_pyfunction!(logs::flush_logs, m)?)?;
    m.add_function(wrap_pyfunction!(logs::reset_log_throttles, m)?)?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<clock::PySystemClock>()?;
    m.add_function(wrap_pyfunction!(clock::set_default_clock, m)?)?;
    m.add_function(wrap_pyfunction!(clock::get_default_clock, m)?)?;
    m.add_class::<config::PyTokenBucketConfig>()?;
    m.add_class::<bucket::PyTokenBucket>()?;
    m.add_class::<client::PyClientRateLimiter>()?;
    let names = crate::limiter::limit::AlgorithmKind::ALL.map(|k| k.name());
    m.add("ALGORITHMS", pyo3::types::PyTuple::new(m.py(), names)?)?;
    m.add_class::<limiter::PyLimit>()?;
    m.add_class::<limiter::PyDecision>()?;
    m.add_class::<limiter::PyLimiter>()?;
    m.add_class::<limiter::PySlidingLogService>()?;
    m.add_class::<http::PyHttpLimiter>()?;
    m.add_class::<asgi_entry::PyAsgiEntry>()?;
    m.add_class::<header_send::PyHeaderSend>()?;
    m.add_class::<breaker::PyBreakerCore>()?;
    m.add_class::<redis::PyRedisLimiter>()?;
    m.add_class::<host::PyHostLimiter>()?;
    m.add_function(wrap_pyfunction!(host::remove_host_store, m)?)?;
    m.add_class::<futures::PyBridge>()?;
    m.add_class::<rules::PyRulesEngine>()?;
    m.add_class::<rules::PyRuleDecision>()?;
    m.add_class::<rules_gate::PyRulesGate>()?;
    m.add_class::<backpressure::PyBackpressureCore>()?;
    m.add_class::<concurrency::PyAimdLimit>()?;
    m.add_class::<concurrency::PyGradientLimit>()?;
    m.add_class::<concurrency::PyConcurrencyCore>()?;
    Ok(())
}
