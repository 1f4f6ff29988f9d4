use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// A cost argument as a `u64`, or a `ValueError` naming it.
pub(crate) fn cost_arg(tokens: i64) -> Result<u64, Error> {
    u64::try_from(tokens)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| Error::invalid("tokens", format!("must be at least 1, got {tokens}")))
}
