//! `RulesGate`: a rules engine applied to ASGI requests, one native call per request. The gate
//! reads the scope (the peer, the proxy header, the path), resolves the client address through
//! the trusted proxies only, and selects and decides the rule in the same call.

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::futures::PyBridge;
use super::rules::{PyRuleDecision, PyRulesEngine};
use crate::http::client_ip::{client_ip, Proxies, ProxyHeader};
use crate::rules::RequestFacts;

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "RulesGate")]
pub(crate) struct PyRulesGate {
    engine: Py<PyRulesEngine>,
    default_rule: Option<String>,
    proxies: Proxies,
    header: ProxyHeader,
}

/// What the gate reads of a scope.
struct Seen<'py> {
    peer: Option<Bound<'py, PyString>>,
    headers: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    path: Option<Bound<'py, PyString>>,
}

impl PyRulesGate {
    fn read<'py>(&self, py: Python<'py>, scope: &Bound<'py, PyAny>) -> PyResult<Seen<'py>> {
        let scope = scope
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("scope must be an ASGI scope dict"))?;
        let peer = match scope.get_item(intern!(py, "client"))? {
            Some(c) if !c.is_none() => c
                .get_item(0)
                .ok()
                .and_then(|h| h.cast_into::<PyString>().ok()),
            _ => None,
        };
        let mut headers = Vec::new();
        // The proxy header is read only when a proxy is trusted: from anyone else it is forged.
        if !self.proxies.is_empty() {
            if let Some(list) = scope.get_item(intern!(py, "headers"))? {
                for pair in list.try_iter()? {
                    let pair = pair?;
                    if let (Ok(n), Ok(v)) = (pair.get_item(0), pair.get_item(1)) {
                        if let (Ok(n), Ok(v)) = (n.cast_into::<PyBytes>(), v.cast_into::<PyBytes>())
                        {
                            headers.push((n, v));
                        }
                    }
                }
            }
        }
        let path = scope
            .get_item(intern!(py, "path"))?
            .and_then(|p| p.cast_into::<PyString>().ok());
        Ok(Seen {
            peer,
            headers,
            path,
        })
    }

    fn ip(&self, seen: &Seen<'_>) -> PyResult<Option<std::net::IpAddr>> {
        let peer = match &seen.peer {
            Some(p) => p.to_str()?.parse().ok(),
            None => None,
        };
        let slices: Vec<(&[u8], &[u8])> = seen
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        Ok(client_ip(peer, &slices, &self.proxies, &self.header))
    }

    /// Runs `f` on the request's facts: the identifier given, else `ip:<client>`.
    fn with_facts<R>(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyAny>,
        identifier: Option<&str>,
        f: impl FnOnce(&RequestFacts<'_>) -> PyResult<R>,
    ) -> PyResult<R> {
        let seen = self.read(py, scope)?;
        let ip = self.ip(&seen)?;
        let own;
        let user = match identifier {
            Some(id) => id,
            None => {
                own = match ip {
                    Some(ip) => format!("ip:{ip}"),
                    None => "ip:unknown".to_owned(),
                };
                &own
            }
        };
        let path = seen.path.as_ref().map(|p| p.to_str()).transpose()?;
        f(&RequestFacts {
            user: Some(user),
            ip,
            endpoint: path,
            user_id: None,
        })
    }
}

#[pymethods]
impl PyRulesGate {
    #[new]
    #[pyo3(signature = (engine, *, default_rule=None, trusted_proxies=Vec::new(), proxy_header="x-forwarded-for"))]
    fn new(
        engine: Bound<'_, PyRulesEngine>,
        default_rule: Option<String>,
        trusted_proxies: Vec<String>,
        proxy_header: &str,
    ) -> PyResult<Self> {
        let proxies = Proxies::parse(&trusted_proxies).map_err(|bad| {
            PyValueError::new_err(format!(
                "trusted_proxies must hold IP addresses or CIDR networks, got {bad:?}"
            ))
        })?;
        let header = ProxyHeader::parse(proxy_header)
            .map_err(|m| PyValueError::new_err(format!("proxy_header {m}")))?;
        if let Some(d) = &default_rule {
            // Checked now if the engine has rules by then (A29); else at the first request.
            let rules = &engine.get().rules;
            if !rules.list().is_empty() && rules.get(d).is_none() {
                return Err(PyKeyError::new_err(format!(
                    "default_rule names no rule: {d:?}"
                )));
            }
        }
        Ok(PyRulesGate {
            engine: engine.unbind(),
            default_rule,
            proxies,
            header,
        })
    }

    /// The engine.
    #[getter]
    fn engine(&self, py: Python<'_>) -> Py<PyRulesEngine> {
        self.engine.clone_ref(py)
    }

    /// The rule applied when none selects itself.
    #[getter]
    fn default_rule(&self) -> Option<&str> {
        self.default_rule.as_deref()
    }

    /// Whether decisions wait for Redis (then use `adecide`).
    #[getter]
    fn is_async(&self, py: Python<'_>) -> bool {
        self.engine.bind(py).get().redis.is_some()
    }

    /// The client's address: the peer, or what the trusted proxies say it was.
    fn client_ip(&self, py: Python<'_>, scope: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let seen = self.read(py, scope)?;
        Ok(self.ip(&seen)?.map(|ip| ip.to_string()))
    }

    /// Selects and decides the rule for the request of `scope` in one call; None when no rule
    /// applies. `identifier`: who the client is (default `ip:<client>`).
    #[pyo3(signature = (scope, identifier=None))]
    fn decide(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyAny>,
        identifier: Option<&str>,
    ) -> PyResult<Option<PyRuleDecision>> {
        let engine = self.engine.bind(py).get();
        self.with_facts(py, scope, identifier, |req| {
            engine.decide_sync(py, None, self.default_rule.as_deref(), req, 1)
        })
    }

    /// `decide` on the loop of `future`: `(False, decision)` when known at once, `(True, None)`
    /// when the bridge sets it on `future`.
    #[pyo3(signature = (bridge, future, scope, identifier=None))]
    fn _submit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        scope: &Bound<'_, PyAny>,
        identifier: Option<&str>,
    ) -> PyResult<(bool, Option<PyRuleDecision>)> {
        let engine = self.engine.bind(py).get();
        self.with_facts(py, scope, identifier, |req| {
            engine.submit(
                py,
                bridge,
                future,
                None,
                self.default_rule.as_deref(),
                req,
                1,
            )
        })
    }
}
