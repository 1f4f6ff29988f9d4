use pyo3::prelude::*;

use super::errors::{float_arg, int_arg};
use crate::algorithm::token_bucket::{TokenBucket, MAX_CAPACITY};

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
    fn new(
        capacity: &Bound<'_, PyAny>,
        refill_rate: &Bound<'_, PyAny>,
        initial_tokens: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let capacity = int_arg("capacity", capacity, 1, MAX_CAPACITY)?;
        let refill_rate = float_arg("refill_rate", refill_rate)?;
        let initial = int_arg("initial_tokens", initial_tokens, 0, u64::MAX)?;
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
