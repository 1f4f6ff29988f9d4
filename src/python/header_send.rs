//! `HeaderSend`: the ASGI `send` the middleware hands an admitted request's app, adding the
//! rate-limit headers to `http.response.start` and passing every other message through. Native,
//! so that an admitted request costs one object and no Python frame per message. The drop-in
//! middlewares make theirs from Python (`seawall._send.send_with_headers`).

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use smallvec::SmallVec;

use crate::http::render::{Headers, NAMES};

/// The last `(name, value)` tuple made for each header name, handed out again while the value
/// is the same: `X-RateLimit-Limit` never changes and `-Reset` rarely does, so an admitted
/// request makes new objects only for the values that moved. Tuples and bytes are immutable, so
/// sharing them with every response is safe.
pub(crate) struct HeaderCache {
    last: Mutex<[Option<Py<PyTuple>>; NAMES.len()]>,
}

impl HeaderCache {
    pub(crate) fn new() -> Self {
        Self {
            last: Mutex::new(Default::default()),
        }
    }

    /// `headers` as `(name, value)` bytes tuples.
    pub(crate) fn items(&self, py: Python<'_>, headers: &Headers) -> PyResult<Items> {
        let slot = |name: &[u8]| NAMES.iter().position(|m| std::ptr::eq(*m, name));
        if headers.len() > NAMES.len() || headers.iter().any(|(n, _)| slot(n).is_none()) {
            // Not rendered here (every name rendered is one of NAMES): made afresh.
            return headers
                .iter()
                .map(|(n, v)| {
                    let pair = PyTuple::new(py, [PyBytes::new(py, n), PyBytes::new(py, v)])?;
                    Ok(pair.into_any().unbind())
                })
                .collect();
        }
        let mut last = self.last.lock();
        let mut items = Items::new();
        for (name, value) in headers.iter() {
            let cached = &mut last[slot(name).unwrap_or_default()];
            let reused = cached.as_ref().filter(|t| {
                t.bind(py)
                    .get_item(1)
                    .ok()
                    .and_then(|v| v.cast_into::<PyBytes>().ok())
                    .is_some_and(|v| v.as_bytes() == &value[..])
            });
            let pair = match reused {
                Some(t) => t.clone_ref(py),
                None => {
                    let made = PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)])?;
                    *cached = Some(made.clone().unbind());
                    made.unbind()
                }
            };
            items.push(pair.into_any());
        }
        Ok(items)
    }
}

/// The header pairs a send adds: inline for the three of the default headers.
pub(crate) type Items = SmallVec<[Py<PyAny>; 3]>;

/// `send`, adding `headers` to the response start.
#[pyclass(frozen, module = "seawall._seawall", name = "HeaderSend")]
pub struct PyHeaderSend {
    send: Py<PyAny>,
    /// `(name, value)` bytes pairs.
    headers: Items,
}

impl PyHeaderSend {
    pub(crate) fn new(send: Py<PyAny>, headers: Items) -> Self {
        Self { send, headers }
    }

    /// Sends `message`, with the headers added if it is the response start.
    fn forward<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = message.py();
        let kind = match message.cast::<PyDict>() {
            Ok(d) => d
                .get_item(intern!(py, "type"))?
                .ok_or_else(|| PyKeyError::new_err("type"))?,
            Err(_) => message.get_item(intern!(py, "type"))?,
        };
        let start = match kind.cast::<PyString>() {
            Ok(s) => s.to_str()? == "http.response.start",
            Err(_) => false,
        };
        let send = self.send.bind(py);
        if start {
            send.call1((self.extended(message)?,))
        } else {
            send.call1((message,))
        }
    }

    /// A new message with the app's headers, then these: the app's message and its list may
    /// be shared (a prepared message, a response sent twice), so neither is changed.
    fn extended<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = message.py();
        let key = intern!(py, "headers");
        let (copy, theirs) = match message.cast::<PyDict>() {
            Ok(d) => (d.copy()?.into_any(), d.get_item(key)?),
            Err(_) => (
                message.call_method0(intern!(py, "copy"))?,
                Some(message.call_method1(intern!(py, "get"), (key, PyTuple::empty(py)))?),
            ),
        };
        let out = match theirs {
            Some(h) => match h.cast::<PyList>() {
                Ok(list) => list.get_slice(0, list.len()),
                Err(_) => PyList::new(py, h.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
            },
            None => PyList::empty(py),
        };
        for item in &self.headers {
            out.append(item)?;
        }
        copy.set_item(key, out)?;
        Ok(copy)
    }
}

#[pymethods]
impl PyHeaderSend {
    /// `send`, adding `headers` (an iterable of `(name, value)` bytes pairs) to the response
    /// start: what the drop-in middlewares use to answer with the app's own response.
    #[new]
    fn py_new(send: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !send.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "send must be an ASGI send callable, got {}",
                send.get_type().name()?
            )));
        }
        let items = headers
            .try_iter()
            .and_then(|i| i.map(|h| h.map(Bound::unbind)).collect::<PyResult<Items>>())
            .map_err(|_| {
                PyTypeError::new_err("headers must be an iterable of (name, value) bytes pairs")
            })?;
        Ok(Self::new(send.clone().unbind(), items))
    }

    /// Lets the collector see `send`: an app that keeps its `send` where the server's `send`
    /// leads back (a request in the scope) makes a cycle through this object.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.send)?;
        self.headers.iter().try_for_each(|h| visit.call(h))
    }

    fn __call__<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.forward(message)
    }

    /// The same as calling the object, as a bound method: a method is called with its
    /// arguments in place (vectorcall), a pyclass's `__call__` with a new tuple each time, so
    /// the middlewares hand the app this.
    fn send<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.forward(message)
    }
}
