use pyo3::exceptions::{PyOSError, PyOverflowError, PyPermissionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::clock::{secs_to_nanos, Nanos};
use crate::error::Error;
use crate::limiter::limit::AlgorithmKind;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::InvalidArgument { .. } => PyValueError::new_err(e.to_string()),
            Error::System {
                message,
                permission: true,
            } => PyPermissionError::new_err(message),
            Error::System { message, .. } => PyOSError::new_err(message),
        }
    }
}

/// A count argument (a cost, a number of tokens) as Python passed it. It extracts as an `i64`
/// does, but an int beyond 64 bits is kept as its text rather than raising `OverflowError`, and
/// a value that is not an int keeps its type name rather than raising a `TypeError` (neither
/// would say which argument), so that [`cost_arg`] answers with an error naming the parameter.
pub(crate) enum Count {
    Fits(i64),
    /// From 2⁶³ to 2⁶⁴ − 1.
    Wide(u64),
    Huge(String),
    NotInt(String),
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
            Err(e) => Count::from_error(&obj, e),
        }
    }
}

impl Count {
    #[cold]
    fn from_error(obj: &Bound<'_, PyAny>, e: PyErr) -> PyResult<Self> {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            Ok(match obj.extract::<u64>() {
                Ok(v) => Count::Wide(v),
                Err(_) => Count::Huge(shown(obj)),
            })
        } else if e.is_instance_of::<PyTypeError>(obj.py()) {
            Ok(Count::NotInt(type_name(obj)))
        } else {
            Err(e)
        }
    }
}

/// A cost argument (named `param`) as a `u64`, or a `ValueError` (out of range) or `TypeError`
/// (not an int) naming it.
#[inline]
pub(crate) fn cost_arg(param: &'static str, cost: Count) -> PyResult<u64> {
    match cost {
        Count::Fits(c) if c > 0 => Ok(c as u64),
        Count::Wide(c) => Ok(c),
        other => Err(bad_cost(param, other)),
    }
}

#[cold]
fn bad_cost(param: &'static str, cost: Count) -> PyErr {
    match cost {
        Count::Fits(c) => at_least_one_error(param, &c),
        Count::Wide(c) => at_least_one_error(param, &c),
        Count::Huge(text) if text.starts_with('-') => at_least_one_error(param, &text),
        Count::Huge(text) => Error::invalid(
            param,
            format!(
                "must be an int from 1 to {} (and within the limit), got {text}",
                u64::MAX
            ),
        )
        .into(),
        Count::NotInt(type_name) => {
            PyTypeError::new_err(format!("{param} must be an int, got {type_name}"))
        }
    }
}

/// `value`'s type name, for messages.
pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}

/// `value`'s repr for a message, shortened if long.
fn shown(value: &Bound<'_, PyAny>) -> String {
    let text = value
        .repr()
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| type_name(value));
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// A text argument named `param`: a `TypeError` naming it if `value` is not a `str`, a
/// `ValueError` naming it if the str holds a lone surrogate (which no UTF-8 key can hold). As
/// cheap as pyo3's own `&str` extraction when `value` is fine.
#[inline]
pub(crate) fn text_arg<'a>(param: &str, value: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match value.cast::<PyString>() {
        Ok(s) => s.to_str().map_err(|_| surrogate_error(param)),
        Err(_) => Err(not_a_str(param, value)),
    }
}

#[cold]
pub(crate) fn surrogate_error(param: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{param} must be text that UTF-8 can encode, got a str with a lone surrogate"
    ))
}

#[cold]
fn not_a_str(param: &str, value: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{param} must be a str, got {}", type_name(value)))
}

/// A number of seconds named `param`, finite and at least `min`, in nanoseconds; else a
/// `ValueError` naming it ([`seconds_error`]).
pub(crate) fn seconds_arg(param: &str, v: f64, min: f64) -> PyResult<Nanos> {
    secs_to_nanos(v)
        .filter(|_| v >= min)
        .ok_or_else(|| seconds_error(param, &v, min))
}

/// The one error for a number of seconds out of range.
#[cold]
pub(crate) fn seconds_error(param: &str, got: &dyn std::fmt::Display, min: f64) -> PyErr {
    PyValueError::new_err(format!(
        "{param} must be a finite number of seconds, at least {min}, got {got}"
    ))
}

/// A count named `param` that must be at least 1, as a `T`; else a `ValueError` naming it
/// ([`at_least_one_error`]), also when `T` cannot hold it.
pub(crate) fn at_least_one<T: TryFrom<i64>>(param: &str, v: i64) -> PyResult<T> {
    T::try_from(v)
        .ok()
        .filter(|_| v >= 1)
        .ok_or_else(|| at_least_one_error(param, &v))
}

/// The one error for a count below 1.
#[cold]
pub(crate) fn at_least_one_error(param: &str, got: &dyn std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{param} must be at least 1, got {got}"))
}

/// An int argument named `param`, from `min` to `max`: a `TypeError` naming it if `value` is not
/// an int, a `ValueError` naming it if out of range (ints beyond 64 bits included).
pub(crate) fn int_arg(param: &str, value: &Bound<'_, PyAny>, min: u64, max: u64) -> PyResult<u64> {
    let out_of_range = || {
        PyValueError::new_err(format!(
            "{param} must be an int from {min} to {max}, got {}",
            shown(value)
        ))
    };
    match value.extract::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(out_of_range()),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(out_of_range()),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Err(PyTypeError::new_err(
            format!("{param} must be an int, got {}", type_name(value)),
        )),
        Err(e) => Err(e),
    }
}

/// A number argument named `param` as an `f64`: a `TypeError` naming it if `value` is not a
/// number, a `ValueError` naming it if no `f64` holds it. Range checks are the caller's.
pub(crate) fn float_arg(param: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    match value.extract::<f64>() {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(PyValueError::new_err(
            format!("{param} must be a finite number, got {}", shown(value)),
        )),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Err(PyTypeError::new_err(
            format!("{param} must be a number, got {}", type_name(value)),
        )),
        Err(e) => Err(e),
    }
}

/// An `algorithm` argument: a `str` naming one of [`AlgorithmKind::ALL`], else a `TypeError` or
/// `ValueError` naming the parameter.
pub(crate) struct Algorithm(pub(crate) AlgorithmKind);

impl Algorithm {
    /// The default.
    pub(crate) const GCRA: Algorithm = Algorithm(AlgorithmKind::Gcra);
}

impl<'a, 'py> FromPyObject<'a, 'py> for Algorithm {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Algorithm(text_arg("algorithm", &obj)?.parse()?))
    }
}

macro_rules! key_bound {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        pub(crate) struct $name(pub(crate) usize);

        impl $name {
            /// The default bound.
            pub(crate) const DEFAULT: $name = $name(1_000_000);
        }

        impl<'a, 'py> FromPyObject<'a, 'py> for $name {
            type Error = PyErr;

            fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
                Ok($name(int_arg($param, &obj, 1, usize::MAX as u64)? as usize))
            }
        }
    };
}

key_bound!(
    /// A `max_keys` argument: an int from 1 up, else an error naming it.
    MaxKeys,
    "max_keys"
);
key_bound!(
    /// A `max_clients` argument: an int from 1 up, else an error naming it.
    MaxClients,
    "max_clients"
);
