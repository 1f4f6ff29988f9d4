use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// A cost argument (named `param`) as a `u64`, or a `ValueError` naming it.
pub(crate) fn cost_arg(param: &'static str, cost: i64) -> Result<u64, Error> {
    u64::try_from(cost)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| Error::invalid(param, format!("must be at least 1, got {cost}")))
}
