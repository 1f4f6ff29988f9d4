//! `AsgiEntry`: the native base of `seawall.RateLimitMiddleware`. Its `__call__` decides an
//! in-memory HTTP request in one native call and returns the app's own coroutine (called with
//! the send that adds the headers), so an admitted request runs no Python frame of the
//! middleware at all. Everything else (websockets, lifespan, Redis, a `key_func`, a body key,
//! session keys, a refusal's response) is the Python subclass's: `_call` and `_deny`.
//!
//! Servers that tell ASGI 3 from ASGI 2 by whether `__call__` is a coroutine function (uvicorn,
//! hypercorn) see a native `__call__` as ASGI 2 and call it with the scope alone: then it
//! returns `functools.partial(self, scope)`, which they call with `(receive, send)`.

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::http::{PyHttpLimiter, Sent};

/// What the fast path holds: set by the subclass once it knows the path applies.
struct Fast {
    app: Py<PyAny>,
    limiter: Py<PyHttpLimiter>,
}

#[pyclass(subclass, module = "seawall._seawall", name = "AsgiEntry")]
pub struct PyAsgiEntry {
    fast: Option<Fast>,
}

static PARTIAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[pymethods]
impl PyAsgiEntry {
    /// Takes and ignores the subclass's constructor arguments: `__init__` sets it up.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self { fast: None }
    }

    /// Turns the native path on: from now on an HTTP request is decided by `limiter` and
    /// handed to `app` without a Python frame of the middleware.
    fn _fast_path(&mut self, app: Py<PyAny>, limiter: Py<PyHttpLimiter>) {
        self.fast = Some(Fast { app, limiter });
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(f) = &self.fast {
            visit.call(&f.app)?;
            visit.call(&f.limiter)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.fast = None;
    }

    #[pyo3(signature = (scope, receive=None, send=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        scope: &Bound<'py, PyAny>,
        receive: Option<&Bound<'py, PyAny>>,
        send: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let Some(send) = send else {
            if receive.is_some() {
                return Err(PyTypeError::new_err(
                    "an ASGI app takes (scope, receive, send), or (scope) for ASGI 2",
                ));
            }
            // ASGI 2: the server calls what this returns with `(receive, send)`.
            let partial = PARTIAL.import(py, "functools", "partial")?;
            return partial.call1((slf, scope));
        };
        let receive = match receive {
            Some(r) => r.clone(),
            None => py.None().into_bound(py),
        };
        // Owned, so that no borrow is held while the app runs (the collector may clear this).
        let fast = slf
            .borrow()
            .fast
            .as_ref()
            .map(|f| (f.app.clone_ref(py), f.limiter.clone_ref(py)));
        let Some((app, limiter)) = fast else {
            return slf.call_method1(intern!(py, "_call"), (scope, receive, send));
        };
        let app = app.bind(py);
        match limiter.get().send_for(py, scope, send)? {
            Sent::Untouched => app.call1((scope, receive, send)),
            Sent::Send(sent) => app.call1((scope, receive, sent)),
            Sent::NotHttp => slf.call_method1(intern!(py, "_call"), (scope, receive, send)),
            Sent::Refused(t) => {
                let deny = intern!(py, "_deny");
                slf.call_method1(
                    deny,
                    (scope, send, t.get_item(1)?, t.get_item(2)?, t.get_item(3)?),
                )
            }
        }
    }
}
