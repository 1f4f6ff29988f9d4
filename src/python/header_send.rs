//! `HeaderSend`: the ASGI `send` the middleware hands an admitted request's app, adding the
//! rate-limit headers to `http.response.start` and passing every other message through. Native,
//! so that an admitted request costs one object and no Python frame per message (the Python
//! `seawall._send.send_with_headers` does the same for the drop-in middlewares).

use pyo3::exceptions::PyKeyError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::http::header_list;
use crate::http::render::Headers;

/// `send`, adding `headers` to the response start.
#[pyclass(frozen, module = "seawall._seawall", name = "HeaderSend")]
pub struct PyHeaderSend {
    send: Py<PyAny>,
    headers: Headers,
}

impl PyHeaderSend {
    pub(crate) fn new(send: Py<PyAny>, headers: Headers) -> Self {
        Self { send, headers }
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
        for item in header_list(py, &self.headers)?.iter() {
            out.append(item)?;
        }
        copy.set_item(key, out)?;
        Ok(copy)
    }
}

#[pymethods]
impl PyHeaderSend {
    /// Lets the collector see `send`: an app that keeps its `send` where the server's `send`
    /// leads back (a request in the scope) makes a cycle through this object.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.send)
    }

    fn __call__<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
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
}
