use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// A count argument (a cost, a number of tokens) as Python passed it. It extracts as an `i64`
/// does, but an int beyond 64 bits is kept as its text rather than raising `OverflowError`
/// (which would not say which argument), so that [`cost_arg`] answers with a `ValueError` naming
/// the parameter.
pub(crate) enum Count {
    Fits(i64),
    Huge(String),
}

impl Count {
    /// The default cost.
    pub(crate) const ONE: Count = Count::Fits(1);
}

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i64>() {
            Ok(v) => Ok(Count::Fits(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                Ok(Count::Huge(obj.str()?.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// A cost argument (named `param`) as a `u64`, or a `ValueError` naming it.
pub(crate) fn cost_arg(param: &'static str, cost: Count) -> Result<u64, Error> {
    match cost {
        Count::Fits(c) => u64::try_from(c)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| Error::invalid(param, format!("must be at least 1, got {c}"))),
        Count::Huge(text) if text.starts_with('-') => Err(Error::invalid(
            param,
            format!("must be at least 1, got {text}"),
        )),
        Count::Huge(text) => Err(Error::invalid(
            param,
            format!("must fit in 64 bits (and within the limit), got {text}"),
        )),
    }
}
