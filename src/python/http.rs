use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::errors::at_least_one;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::clock::ClockSource;
use super::limiter::limit_set_arg;
use crate::http::render::NAMES;
use crate::http::{
    HeaderStyle, Headers, HttpPolicy, IssuedSessions, KeySource, Outcome, ProxyHeader, RequestView,
    Routes, Rule,
};
use crate::limiter::limit::{AlgorithmKind, LimitSet};
use crate::limiter::memory_limiter::Limiter;

#[pyclass(frozen, module = "seawall._seawall", name = "HttpLimiter")]
pub(crate) struct PyHttpLimiter {
    policy: HttpPolicy,
    /// One bytes object per header name, made once.
    names: Vec<Py<PyBytes>>,
    clock: ClockSource,
    /// Whether any feature reads headers; if not, they are not even looked at.
    reads_headers: bool,
}

fn strings(param: &'static str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{param} must be a list of strings, not a single string"
        )));
    }
    value
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{param} must be a list of strings")))?
        .map(|item| {
            item?
                .extract::<String>()
                .map_err(|_| PyTypeError::new_err(format!("{param} must be a list of strings")))
        })
        .collect()
}

fn rule_arg(index: usize, item: &Bound<'_, PyAny>, algorithm: &str) -> PyResult<Rule> {
    let bad = || {
        PyTypeError::new_err(format!(
            "rules[{index}] must be a (path, limits[, methods[, name]]) tuple or a seawall.Rule"
        ))
    };
    let tuple = item.cast::<PyTuple>().map_err(|_| bad())?;
    if !(2..=4).contains(&tuple.len()) {
        return Err(bad());
    }
    let path: String = tuple.get_item(0)?.extract().map_err(|_| bad())?;
    let limits = limit_set_arg(&tuple.get_item(1)?, algorithm)?;
    let methods = match tuple.get_item(2).ok().filter(|m| !m.is_none()) {
        Some(m) => Some(strings("methods", Some(&m))?),
        None => None,
    };
    let name = match tuple.get_item(3).ok().filter(|n| !n.is_none()) {
        Some(n) => Some(n.extract::<String>().map_err(|_| {
            PyTypeError::new_err(format!("rules[{index}]: name must be a str or None"))
        })?),
        None => None,
    };
    Ok(Rule::new(&path, limits, methods, name)?)
}

/// A str argument (`None`: the default), or a TypeError naming it.
fn str_arg(param: &str, value: Option<&Bound<'_, PyAny>>, default: &str) -> PyResult<String> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(default.to_string()),
        Some(v) => v.extract::<String>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{param} must be a str, got {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        }),
    }
}

/// An optional str argument, or a TypeError naming it.
fn opt_str_arg(param: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(_) => str_arg(param, value, "").map(Some),
    }
}

/// An int argument (`None`: the default; a bool is not an int here), or a TypeError naming it.
fn int_arg(param: &str, value: Option<&Bound<'_, PyAny>>, default: i64) -> PyResult<i64> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(default),
        Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => Err(PyTypeError::new_err(format!(
            "{param} must be an int, got bool"
        ))),
        Some(v) => v.extract::<i64>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{param} must be an int, got {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        }),
    }
}

fn optional_limiter(
    value: Option<&Bound<'_, PyAny>>,
    algorithm: &str,
) -> PyResult<Option<LimitSet>> {
    match value.filter(|v| !v.is_none()) {
        Some(v) => Ok(Some(limit_set_arg(v, algorithm)?)),
        None => Ok(None),
    }
}

struct Scope<'py> {
    peer: Option<Bound<'py, PyString>>,
    headers: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    path: Bound<'py, PyString>,
    method: Bound<'py, PyString>,
    query: Option<Bound<'py, PyBytes>>,
}

fn item<'py>(
    scope: &Bound<'py, PyDict>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    scope.get_item(name)
}

impl<'py> Scope<'py> {
    fn header_slices(&self) -> Vec<(&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect()
    }

    fn view<'a>(&'a self, headers: &'a [(&'a [u8], &'a [u8])]) -> PyResult<RequestView<'a>> {
        Ok(RequestView {
            peer: self.peer.as_ref().map(|p| p.to_str()).transpose()?,
            headers,
            path: self.path.to_str()?,
            method: self.method.to_str()?,
            query: self.query.as_ref().map(|q| q.as_bytes()).unwrap_or(b""),
        })
    }

    /// Reads what the policy needs from an ASGI HTTP scope; `None` if the scope is not HTTP.
    fn read(
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
        with_headers: bool,
    ) -> PyResult<Option<Self>> {
        let scope = scope
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("scope must be an ASGI scope dict"))?;
        match item(scope, pyo3::intern!(py, "type"))? {
            Some(t)
                if t.cast::<PyString>()
                    .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "http")) => {}
            _ => return Ok(None),
        }
        let peer = match item(scope, pyo3::intern!(py, "client"))? {
            Some(c) if !c.is_none() => c
                .get_item(0)
                .ok()
                .and_then(|h| h.cast_into::<PyString>().ok()),
            _ => None,
        };
        let mut headers = Vec::new();
        if with_headers {
            if let Some(list) = item(scope, pyo3::intern!(py, "headers"))? {
                for pair in list.try_iter()? {
                    let pair = pair?;
                    let (Ok(name), Ok(value)) = (pair.get_item(0), pair.get_item(1)) else {
                        continue;
                    };
                    if let (Ok(n), Ok(v)) =
                        (name.cast_into::<PyBytes>(), value.cast_into::<PyBytes>())
                    {
                        headers.push((n, v));
                    }
                }
            }
        }
        let text = |name: &Bound<'py, PyString>, default: &str| -> PyResult<Bound<'py, PyString>> {
            Ok(item(scope, name)?
                .and_then(|v| v.cast_into::<PyString>().ok())
                .unwrap_or_else(|| PyString::new(py, default)))
        };
        Ok(Some(Scope {
            peer,
            headers,
            path: text(pyo3::intern!(py, "path"), "/")?,
            method: text(pyo3::intern!(py, "method"), "GET")?,
            query: item(scope, pyo3::intern!(py, "query_string"))?
                .and_then(|q| q.cast_into::<PyBytes>().ok()),
        }))
    }
}

impl PyHttpLimiter {
    fn header_list<'py>(&self, py: Python<'py>, headers: &Headers) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            headers.iter().map(|(n, v)| {
                let name = match NAMES.iter().position(|m| std::ptr::eq(*m, *n)) {
                    Some(i) => self.names[i].bind(py).clone(),
                    None => PyBytes::new(py, n),
                };
                (name, PyBytes::new(py, v))
            }),
        )
    }
}

#[pymethods]
impl PyHttpLimiter {
    /// Arguments left `None` take their defaults (the ones the stub shows); the Python
    /// middleware refuses an explicit `None` where it has a default, naming the parameter.
    #[new]
    #[pyo3(signature = (
        *,
        limits=None,
        rules=None,
        global_limits=None,
        algorithm=None,
        key=None,
        trusted_proxies=None,
        proxy_header=None,
        ipv6_prefix=None,
        max_key_length=None,
        exempt_ips=None,
        exempt_clients=None,
        bypass_header=None,
        bypass_secret=None,
        headers=None,
        draft_version=None,
        max_keys=None,
        clock=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        limits: Option<&Bound<'_, PyAny>>,
        rules: Option<&Bound<'_, PyAny>>,
        global_limits: Option<&Bound<'_, PyAny>>,
        algorithm: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        trusted_proxies: Option<&Bound<'_, PyAny>>,
        proxy_header: Option<&Bound<'_, PyAny>>,
        ipv6_prefix: Option<&Bound<'_, PyAny>>,
        max_key_length: Option<&Bound<'_, PyAny>>,
        exempt_ips: Option<&Bound<'_, PyAny>>,
        exempt_clients: Option<&Bound<'_, PyAny>>,
        bypass_header: Option<&Bound<'_, PyAny>>,
        bypass_secret: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        draft_version: Option<&Bound<'_, PyAny>>,
        max_keys: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let algorithm = str_arg("algorithm", algorithm, "gcra")?;
        algorithm.parse::<AlgorithmKind>()?;
        let key = str_arg("key", key, "ip")?;
        let proxy_header = str_arg("proxy_header", proxy_header, "X-Forwarded-For")?;
        let headers = str_arg("headers", headers, "x-ratelimit")?;
        let bypass_header = opt_str_arg("bypass_header", bypass_header)?;
        let bypass_secret = opt_str_arg("bypass_secret", bypass_secret)?;
        let max_keys = int_arg("max_keys", max_keys, 1_000_000)?;
        let ipv6_prefix = int_arg("ipv6_prefix", ipv6_prefix, 64)?;
        let max_key_length = int_arg("max_key_length", max_key_length, 256)?;
        let draft_version = int_arg("draft_version", draft_version, 11)?;
        let max_keys: usize = at_least_one("max_keys", max_keys)?;
        let ipv6_prefix = u8::try_from(ipv6_prefix)
            .ok()
            .filter(|&p| p <= 128)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "ipv6_prefix must be between 0 and 128, got {ipv6_prefix}"
                ))
            })?;
        let max_key_length = usize::try_from(max_key_length)
            .ok()
            .filter(|&m| m >= 16)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "max_key_length must be at least 16, got {max_key_length}"
                ))
            })?;
        if draft_version != 11 {
            return Err(PyValueError::new_err(format!(
                "draft_version must be 11 (draft-ietf-httpapi-ratelimit-headers-11), got {draft_version}"
            )));
        }
        let bypass = match (bypass_header, bypass_secret) {
            (Some(h), Some(s)) if !h.is_empty() && !s.is_empty() => {
                Some((h.to_ascii_lowercase().into_bytes(), s.into_bytes()))
            }
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "bypass_header and bypass_secret must be given together, both non-empty",
                ))
            }
        };
        let proxy_header = ProxyHeader::parse(&proxy_header)
            .map_err(|message| PyValueError::new_err(format!("proxy_header {message}")))?;
        let mut rule_list = Vec::new();
        if let Some(rules) = rules.filter(|r| !r.is_none()) {
            let items = rules.try_iter().map_err(|_| {
                PyTypeError::new_err("rules must be a list of Rule objects or tuples")
            })?;
            for (i, r) in items.enumerate() {
                rule_list.push(rule_arg(i, &r?, &algorithm)?);
            }
        }
        let default = optional_limiter(limits, &algorithm)?;
        let global = optional_limiter(global_limits, &algorithm)?;
        if default.is_none() && global.is_none() && rule_list.is_empty() {
            return Err(PyValueError::new_err(
                "limits: give limits, rules or global_limits; without any, nothing is limited",
            ));
        }
        let key_source: KeySource = key.parse()?;
        let proxies = HttpPolicy::nets(
            "trusted_proxies",
            &strings("trusted_proxies", trusted_proxies)?,
        )?;
        let bypass_set = bypass.is_some();
        let sessions = matches!(key_source, KeySource::McpSession);
        let reads_headers = !proxies.is_empty()
            || bypass_set
            || matches!(key_source, KeySource::Header(_) | KeySource::McpSession);
        let policy = HttpPolicy {
            key_source,
            proxies,
            proxy_header,
            // Remembered only when sessions are keys; as many as there may be keys.
            sessions: IssuedSessions::new(if sessions { max_keys } else { 1 }),
            ipv6_prefix,
            max_key_length,
            exempt_ips: HttpPolicy::nets("exempt_ips", &strings("exempt_ips", exempt_ips)?)?,
            exempt_clients: strings("exempt_clients", exempt_clients)?,
            bypass,
            global: global.map(|g| Limiter::new(g, 1)),
            // max_keys bounds the whole middleware: every per-client budget shares one store.
            routes: Routes::new(rule_list, default, max_keys),
            headers: headers.parse::<HeaderStyle>()?,
        };
        Ok(PyHttpLimiter {
            policy,
            names: NAMES.iter().map(|n| PyBytes::new(py, n).unbind()).collect(),
            clock: ClockSource::from_arg(clock)?,
            reads_headers,
        })
    }

    /// Whether keys are MCP sessions, learnt from the server's responses.
    #[getter]
    fn learns_sessions(&self) -> bool {
        matches!(self.policy.key_source, KeySource::McpSession)
    }

    /// Records a session id the server issued (its `mcp-session-id` response header).
    fn issue_session(&self, session_id: &[u8]) {
        self.policy.sessions.issue(session_id);
    }

    /// Keys held across the middleware's stores.
    fn __len__(&self) -> usize {
        self.policy.len()
    }

    #[getter]
    fn needs_body(&self) -> bool {
        self.policy.needs_body()
    }

    #[pyo3(signature = (scope, key=None, body=None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(s) = Scope::read(py, scope, self.reads_headers)? else {
            return Ok(None);
        };
        let headers = s.header_slices();
        let req = s.view(&headers)?;
        let now = self.clock.now(py)?;
        Ok(match self.policy.decide(&req, now, key, body)? {
            Outcome::Pass => None,
            Outcome::Allowed(h) => Some(PyTuple::new(
                py,
                [
                    true.into_pyobject(py)?.to_owned().into_any(),
                    self.header_list(py, &h)?.into_any(),
                    py.None().into_bound(py),
                ],
            )?),
            Outcome::Limited(h, b) => Some(PyTuple::new(
                py,
                [
                    false.into_pyobject(py)?.to_owned().into_any(),
                    self.header_list(py, &h)?.into_any(),
                    PyBytes::new(py, &b).into_any(),
                ],
            )?),
        })
    }

    #[pyo3(signature = (scope, body=None))]
    fn key_for(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyAny>,
        body: Option<&[u8]>,
    ) -> PyResult<String> {
        let Some(s) = Scope::read(py, scope, true)? else {
            return Err(PyValueError::new_err("scope must be an http scope"));
        };
        let headers = s.header_slices();
        let req = s.view(&headers)?;
        Ok(self.policy.key_for(&req, body))
    }

    fn reset(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        self.policy.reset(key, self.clock.now(py)?);
        Ok(())
    }
}
