use pyo3::prelude::*;

use crate::algorithm::token_bucket::TokenBucket;
use crate::error::Error;

#[pyclass(frozen, module = "seawall._seawall", name = "TokenBucketConfig")]
pub(crate) struct PyTokenBucketConfig {
    pub(crate) params: TokenBucket,
    refill_rate: f64,
}

impl PyTokenBucketConfig {
    pub(crate) fn wrap(params: TokenBucket, refill_rate: f64) -> Self {
        PyTokenBucketConfig {
            params,
            refill_rate,
        }
    }
}

#[pymethods]
impl PyTokenBucketConfig {
    #[new]
    fn new(capacity: i64, refill_rate: f64, initial_tokens: i64) -> PyResult<Self> {
        let capacity = u64::try_from(capacity).map_err(|_| {
            Error::invalid("capacity", format!("must be at least 1, got {capacity}"))
        })?;
        let initial = u64::try_from(initial_tokens).map_err(|_| {
            Error::invalid(
                "initial_tokens",
                format!("must be at least 0, got {initial_tokens}"),
            )
        })?;
        Ok(Self::wrap(
            TokenBucket::new(capacity, refill_rate, initial)?,
            refill_rate,
        ))
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.params.capacity()
    }

    #[getter]
    fn refill_rate(&self) -> f64 {
        self.refill_rate
    }

    #[getter]
    fn initial_tokens(&self) -> u64 {
        self.params.initial()
    }

    fn __repr__(&self) -> String {
        format!(
            "TokenBucketConfig(capacity={}, refill_rate={:?}, initial_tokens={})",
            self.params.capacity(),
            self.refill_rate,
            self.params.initial()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyTokenBucketConfig>()
            .is_ok_and(|o| o.get().params == self.params)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(self.params)
    }
}
