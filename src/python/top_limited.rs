//! What every limiter's `top_limited()`, `top_limited_summary()` and `top_keys=` share: the
//! argument checks and the Python shapes of a [`TopLimited`].

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::errors::int_arg;
use crate::metrics::top_limited::{TopLimited, DEFAULT_TOP_LIMITED, MAX_TOP_LIMITED};

/// A `top_keys` argument: how many refused keys a limiter counts, from 0 (off) to
/// [`MAX_TOP_LIMITED`], else an error naming it.
pub(crate) struct TopKeys(pub(crate) usize);

impl TopKeys {
    /// The default capacity.
    pub(crate) const DEFAULT: TopKeys = TopKeys(DEFAULT_TOP_LIMITED);
}

impl<'a, 'py> FromPyObject<'a, 'py> for TopKeys {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(TopKeys(
            int_arg("top_keys", &obj, 0, MAX_TOP_LIMITED as u64)? as usize,
        ))
    }
}

/// A `top_keys` argument taken as an `i64` (where a constructor's signature shows its default
/// as a plain int): from 0 to [`MAX_TOP_LIMITED`], else a `ValueError` naming it.
pub(crate) fn top_keys_arg(value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v <= MAX_TOP_LIMITED)
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "top_keys must be an int from 0 to {MAX_TOP_LIMITED}, got {value}"
            ))
        })
}

/// The `n` argument of `top_limited(n)`: an int from 0 up, else an error naming it.
pub(crate) struct TopN(pub(crate) usize);

impl TopN {
    /// The default: ten keys.
    pub(crate) const DEFAULT: TopN = TopN(10);
}

impl<'a, 'py> FromPyObject<'a, 'py> for TopN {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(TopN(int_arg("n", &obj, 0, u32::MAX as u64)? as usize))
    }
}

/// `top_limited(n)`: `(key, refusals)` pairs, most first (each count an upper bound).
pub(crate) fn top_list<'py>(
    py: Python<'py>,
    top: &TopLimited,
    n: TopN,
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, top.top(n.0).into_iter().map(|e| (e.key, e.count)))
}

/// `top_limited_summary()`: capacity, total, other and every key with its count and error.
pub(crate) fn summary_dict<'py>(py: Python<'py>, top: &TopLimited) -> PyResult<Bound<'py, PyDict>> {
    let s = top.summary();
    let keys = PyList::empty(py);
    for e in s.entries {
        let d = PyDict::new(py);
        d.set_item("key", e.key)?;
        d.set_item("count", e.count)?;
        d.set_item("error", e.error)?;
        keys.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item("capacity", s.capacity)?;
    d.set_item("total", s.total)?;
    d.set_item("other", s.other)?;
    d.set_item("keys", keys)?;
    Ok(d)
}
