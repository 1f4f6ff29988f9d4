//! `HttpLimiter`: the native half of the ASGI middleware and the FastAPI dependency. A request
//! is read from its scope and decided in one call; on a Redis store, `_submit` starts the one
//! script call of a request on the direct path (batched with the others of the loop's turn) or
//! on tokio, and the rendered response comes back on an asyncio future.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::errors::at_least_one;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::clock::ClockSource;
use super::direct::{Asked, Decider, DirectShared};
use super::futures::{report_all, store_error, Completion, Done as BridgeDone, PyBridge};
use super::header_send::{HeaderCache, PyHeaderSend};
use super::limiter::limit_set_arg;
use super::redis::{redis_settings, script_times, start_time};
use super::top_limited::{summary_dict, top_keys_arg, top_list, TopN};
use crate::http::redis_budgets::{Begun, HttpPending, RedisBudgets};
use crate::http::render::NAMES;
use crate::http::{
    HeaderStyle, Headers, HttpPolicy, IssuedSessions, KeySource, Outcome, ProxyHeader, RequestView,
    Routes, Rule,
};
use crate::limiter::limit::{AlgorithmKind, LimitSet};
use crate::limiter::memory_limiter::Limiter;
use crate::store::host::HostBudgets;
use crate::store::redis::batcher::{Done, Outcome as SentOutcome};
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::round_trips::RoundTrips;
use crate::store::redis::{runtime, url, RedisConfig};

#[pyclass(frozen, weakref, module = "seawall._seawall", name = "HttpLimiter")]
pub(crate) struct PyHttpLimiter {
    policy: Arc<HttpPolicy>,
    /// On a Redis store: its direct connection, driven by the asyncio loop.
    direct: Option<Arc<DirectShared<HttpPolicy>>>,
    /// Blocking connections for `check` on a Redis store.
    sync_pool: BlockingPool,
    clock: ClockSource,
    /// The parts of a scope some feature reads; the others are not even looked at.
    reads: Reads,
    /// The header tuples of admitted responses, reused while their values stay the same.
    header_cache: HeaderCache,
}

/// Adds the round trips of a Redis-backed decider to its stats dict: `round_trips`,
/// `round_trip_decisions` and `round_trip_seconds` (a histogram: `bounds`, `cumulative`, `sum`,
/// `count`).
pub(crate) fn round_trip_items(d: &Bound<'_, PyDict>, rt: &RoundTrips) -> PyResult<()> {
    let s = rt.snapshot();
    d.set_item("round_trips", s.round_trips)?;
    d.set_item("round_trip_decisions", s.decisions)?;
    let h = pythonize::pythonize(d.py(), &s.seconds)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    d.set_item("round_trip_seconds", h)
}

/// One bytes object per header name, made once per interpreter.
static HEADER_NAMES: PyOnceLock<Vec<Py<PyBytes>>> = PyOnceLock::new();

pub(crate) fn header_list<'py>(py: Python<'py>, headers: &Headers) -> PyResult<Bound<'py, PyList>> {
    let names = HEADER_NAMES.get_or_init(py, || {
        NAMES.iter().map(|n| PyBytes::new(py, n).unbind()).collect()
    });
    PyList::new(
        py,
        headers.iter().map(|(n, v)| {
            let name = match NAMES.iter().position(|m| std::ptr::eq(*m, *n)) {
                Some(i) => names[i].bind(py).clone(),
                None => PyBytes::new(py, n),
            };
            (name, PyBytes::new(py, v))
        }),
    )
}

/// A response as the middleware takes it: `None` (call the app untouched), or
/// `(allowed, headers, body, status)`: admitted with headers to add (`body` None, status 200),
/// or refused with the whole response (429, or 503 when the store cannot decide).
pub(crate) fn outcome_tuple<'py>(
    py: Python<'py>,
    outcome: &Outcome,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let (allowed, headers, body, status) = match outcome {
        Outcome::Pass => return Ok(None),
        Outcome::Allowed(h) => (true, h, None, 200u16),
        Outcome::Limited(h, b) => (false, h, Some(b), 429),
        Outcome::Unavailable(h, b) => (false, h, Some(b), 503),
    };
    Ok(Some(PyTuple::new(
        py,
        [
            pyo3::types::PyBool::new(py, allowed).to_owned().into_any(),
            header_list(py, headers)?.into_any(),
            match body {
                Some(b) => PyBytes::new(py, b).into_any(),
                None => py.None().into_bound(py),
            },
            status.into_pyobject(py)?.into_any(),
        ],
    )?))
}

/// Sets a settled request's response (or its store error) on its future.
fn set_outcome(
    py: Python<'_>,
    future: &Py<PyAny>,
    outcome: Result<Outcome, crate::limiter::redis_failure::StoreError>,
) {
    let r = match outcome {
        Ok(o) => outcome_tuple(py, &o)
            .and_then(|t| future.call_method1(py, pyo3::intern!(py, "set_result"), (t,))),
        Err(e) => future.call_method1(
            py,
            pyo3::intern!(py, "set_exception"),
            (store_error(e).into_value(py),),
        ),
    };
    // A cancelled future refuses its result; nobody is waiting for it.
    if r.is_err() {
        let _ = PyErr::take(py);
    }
}

impl Decider for HttpPolicy {
    type Pending = HttpPending;

    fn redis_config(&self) -> &RedisConfig {
        &self
            .redis
            .as_ref()
            .expect("only a policy on Redis has a direct path")
            .guard()
            .config()
            .redis
    }

    fn round_trips(&self) -> Arc<RoundTrips> {
        self.redis
            .as_ref()
            .expect("only a policy on Redis has a direct path")
            .guard()
            .round_trips
            .clone()
    }

    fn resolve(&self, py: Python<'_>, done: Done<Asked<HttpPending>>) {
        for s in done {
            let Asked { future, pending } = s.item;
            let outcome = match s.outcome {
                SentOutcome::Reply(r) => self.settle(pending, r, s.took),
                SentOutcome::Inherited => Ok(self.abandon(pending, s.took)),
            };
            set_outcome(py, &future, outcome);
        }
        if let Some(r) = &self.redis {
            report_all(py, r.guard().take_reports());
        }
    }
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

/// What an in-memory decision hands the middleware's entry.
pub(crate) enum Sent<'py> {
    /// The scope is not an HTTP request's.
    NotHttp,
    /// Call the app as it was called.
    Untouched,
    /// Call the app with this send (the app's own, or a [`PyHeaderSend`] adding headers).
    Send(Bound<'py, PyAny>),
    /// `(False, headers, body, status)`: answer without calling the app.
    Refused(Bound<'py, PyTuple>),
}

/// What a policy reads from a request beyond its peer: each part is looked up in the scope
/// only when some feature uses it.
#[derive(Clone, Copy)]
struct Reads {
    /// Proxies, a bypass header, or a header or session key.
    headers: bool,
    /// Route rules (path and method).
    route: bool,
    /// A query-parameter key.
    query: bool,
}

impl Reads {
    const ALL: Reads = Reads {
        headers: true,
        route: true,
        query: true,
    };
}

struct Scope<'py> {
    peer: Option<Bound<'py, PyString>>,
    headers: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    /// `None` when not read (no rule) or absent: then "/" and "GET".
    path: Option<Bound<'py, PyString>>,
    method: Option<Bound<'py, PyString>>,
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
            path: self.path.as_ref().map_or(Ok("/"), |p| p.to_str())?,
            method: self.method.as_ref().map_or(Ok("GET"), |m| m.to_str())?,
            query: self.query.as_ref().map(|q| q.as_bytes()).unwrap_or(b""),
        })
    }

    /// Reads what the policy needs from an ASGI HTTP scope; `None` if the scope is not HTTP.
    fn read(py: Python<'py>, scope: &Bound<'py, PyAny>, reads: Reads) -> PyResult<Option<Self>> {
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
        if reads.headers {
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
        let text = |wanted: bool, name: &Bound<'py, PyString>| -> PyResult<_> {
            Ok(match wanted {
                true => item(scope, name)?.and_then(|v| v.cast_into::<PyString>().ok()),
                false => None,
            })
        };
        Ok(Some(Scope {
            peer,
            headers,
            path: text(reads.route, pyo3::intern!(py, "path"))?,
            method: text(reads.route, pyo3::intern!(py, "method"))?,
            query: match reads.query {
                true => item(scope, pyo3::intern!(py, "query_string"))?
                    .and_then(|q| q.cast_into::<PyBytes>().ok()),
                false => None,
            },
        }))
    }
}

impl PyHttpLimiter {
    /// Reads a request from `scope`; `None` if it is not HTTP.
    fn begin(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyAny>,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> PyResult<Option<Begun>> {
        let Some(s) = Scope::read(py, scope, self.reads)? else {
            return Ok(None);
        };
        let headers = s.header_slices();
        let req = s.view(&headers)?;
        if self.policy.redis.is_none() {
            let now = self.clock.now(py)?;
            return Ok(Some(Begun::Done(self.policy.decide(&req, now, key, body)?)));
        }
        let (script_now, local_now) = script_times(&self.clock, py)?;
        Ok(Some(
            self.policy.begin(&req, key, body, script_now, local_now)?,
        ))
    }

    /// [`PyHttpLimiter::check_send`]'s decision, with a request that is not HTTP told apart.
    pub(crate) fn send_for<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
        send: &Bound<'py, PyAny>,
    ) -> PyResult<Sent<'py>> {
        let on_redis =
            || PyTypeError::new_err("check_send decides in memory; on Redis, await _submit");
        if self.policy.redis.is_some() {
            return Err(on_redis());
        }
        let outcome = match self.begin(py, scope, None, None)? {
            None => return Ok(Sent::NotHttp),
            Some(Begun::Done(o)) => o,
            Some(Begun::Pending(_)) => return Err(on_redis()),
        };
        Ok(match outcome {
            Outcome::Pass => Sent::Untouched,
            Outcome::Allowed(h) if h.is_empty() => Sent::Send(send.clone()),
            Outcome::Allowed(h) => {
                let items = self.header_cache.items(py, &h)?;
                let wrapped = Bound::new(py, PyHeaderSend::new(send.clone().unbind(), items))?;
                Sent::Send(wrapped.getattr(pyo3::intern!(py, "send"))?)
            }
            other => match outcome_tuple(py, &other)? {
                Some(t) => Sent::Refused(t),
                None => Sent::Untouched,
            },
        })
    }

    fn reports(&self, py: Python<'_>) {
        if let Some(r) = &self.policy.redis {
            report_all(py, r.guard().take_reports());
        }
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
        store=None,
        key_prefix="seawall:",
        on_error="allow",
        connect_timeout=1.0,
        command_timeout=0.25,
        log_interval=60.0,
        breaker_failures=3,
        breaker_recovery=1.0,
        top_keys=100,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
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
        store: Option<&str>,
        key_prefix: &str,
        on_error: &str,
        connect_timeout: f64,
        command_timeout: f64,
        log_interval: f64,
        breaker_failures: i64,
        breaker_recovery: f64,
        top_keys: i64,
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
        let reads = Reads {
            headers: !proxies.is_empty()
                || bypass_set
                || matches!(key_source, KeySource::Header(_) | KeySource::McpSession),
            route: !rule_list.is_empty(),
            query: matches!(key_source, KeySource::Query(_)),
        };
        let clock = ClockSource::from_arg(clock)?;
        let routes = Routes::new(rule_list, default, max_keys);
        let host = match store.and_then(|s| s.strip_prefix("host://")) {
            Some(name) => {
                let mut sets: Vec<LimitSet> = routes
                    .budget_ids()
                    .into_iter()
                    .map(|(set, _)| set)
                    .collect();
                sets.extend(global.clone());
                Some(HostBudgets::open(name, sets, max_keys)?)
            }
            None => None,
        };
        let redis = match store.filter(|s| *s != "memory://" && host.is_none()) {
            None => None,
            Some(url) => {
                let config = redis_settings(
                    url,
                    key_prefix,
                    on_error,
                    connect_timeout,
                    command_timeout,
                    log_interval,
                    max_keys,
                    breaker_failures,
                    breaker_recovery,
                )?;
                Some(RedisBudgets::new(
                    global.as_ref(),
                    &routes,
                    config,
                    start_time(&clock),
                )?)
            }
        };
        let policy = Arc::new(HttpPolicy {
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
            routes,
            headers: headers.parse::<HeaderStyle>()?,
            redis,
            host,
            top_limited: crate::metrics::top_limited::TopLimited::new(top_keys_arg(top_keys)?),
        });
        let direct = policy
            .redis
            .is_some()
            .then(|| DirectShared::new(policy.clone()));
        Ok(PyHttpLimiter {
            policy,
            direct,
            sync_pool: BlockingPool::default(),
            clock,
            reads,
            header_cache: HeaderCache::new(),
        })
    }

    /// Whether decisions wait for a store (Redis): then use `_submit` from async code.
    #[getter]
    fn is_async(&self) -> bool {
        self.policy.redis.is_some()
    }

    /// The store URL, password hidden (`memory://` in this process).
    #[getter]
    fn store(&self) -> String {
        match (&self.policy.redis, &self.policy.host) {
            (Some(r), _) => url::redact(&r.guard().config().redis.url),
            (None, Some(h)) => format!("host://{}", h.name()),
            (None, None) => "memory://".to_string(),
        }
    }

    /// What the Redis store did (`None` in memory): decisions, limited, errors, fallbacks and
    /// the breaker around Redis.
    fn store_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        use std::sync::atomic::Ordering;
        let Some(r) = &self.policy.redis else {
            return Ok(None);
        };
        let (_, local_now) = script_times(&self.clock, py)?;
        let s = &r.guard().stats;
        let d = PyDict::new(py);
        d.set_item("decisions", s.decisions.load(Ordering::Relaxed))?;
        d.set_item("limited", s.limited.load(Ordering::Relaxed))?;
        d.set_item("errors", s.errors.load(Ordering::Relaxed))?;
        d.set_item("fallbacks", s.fallbacks.load(Ordering::Relaxed))?;
        d.set_item("breaker", r.guard().breaker().state(local_now).name())?;
        round_trip_items(&d, &r.guard().round_trips)?;
        Ok(Some(d))
    }

    /// Counts per route budget (`routes`: the rule's pattern as written, `default`, `global`;
    /// allowed, denied and the Redis store's outcomes) and `store_stats()`, in one call.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let routes = pythonize::pythonize(py, &self.policy.route_stats())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        d.set_item("routes", routes)?;
        d.set_item("store", self.store_stats(py)?)?;
        Ok(d)
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

    /// The keys refused most, most first: `(key, refusals)` pairs, each count an upper bound
    /// (space-saving; see `top_limited_summary` for each key's error).
    #[pyo3(signature = (n=TopN::DEFAULT), text_signature = "($self, n=10)")]
    fn top_limited<'py>(&self, py: Python<'py>, n: TopN) -> PyResult<Bound<'py, PyList>> {
        top_list(py, &self.policy.top_limited, n)
    }

    /// Every key counted with its count and error, the total refusals and the part of them
    /// not attributed with certainty to a key held (`other`).
    fn top_limited_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        summary_dict(py, &self.policy.top_limited)
    }

    /// Forgets the keys refused so far.
    fn reset_top_limited(&self) {
        self.policy.top_limited.reset();
    }

    #[getter]
    fn needs_body(&self) -> bool {
        self.policy.needs_body()
    }

    /// Decides a request now: on a Redis store this waits for Redis on the calling thread
    /// (without the GIL); async code uses `_submit`.
    #[pyo3(signature = (scope, key=None, body=None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let outcome = match self.begin(py, scope, key, body)? {
            None => return Ok(None),
            Some(Begun::Done(o)) => o,
            Some(Begun::Pending(p)) => {
                let policy = &self.policy;
                let r = if self.direct.as_ref().is_some_and(|d| d.enabled()) {
                    let pool = &self.sync_pool;
                    py.detach(move || policy.finish_blocking(pool, p))
                } else {
                    let policy = policy.clone();
                    py.detach(move || runtime::handle().block_on(policy.finish(p)))
                };
                self.reports(py);
                r.map_err(store_error)?
            }
        };
        outcome_tuple(py, &outcome)
    }

    /// `check` for the middleware's in-memory path: `None` (call the app untouched), the `send`
    /// to call it with when admitted (`send` itself when there are no headers to add, else a
    /// `HeaderSend` adding them), or the refusal's tuple as `check` gives it.
    fn check_send<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
        send: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match self.send_for(py, scope, send)? {
            Sent::NotHttp | Sent::Untouched => None,
            Sent::Send(s) => Some(s),
            Sent::Refused(t) => Some(t.into_any()),
        })
    }

    /// Starts deciding a request from async code: the response if it is known at once (as
    /// `check` returns it), else `future`, on which the bridge or the direct path sets it.
    #[pyo3(signature = (bridge, future, scope, key=None, body=None))]
    fn _submit<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bound<'py, PyBridge>,
        future: &Bound<'py, PyAny>,
        scope: &Bound<'py, PyAny>,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let pending = match self.begin(py, scope, key, body)? {
            None => return Ok(None),
            Some(Begun::Done(o)) => {
                self.reports(py);
                return Ok(outcome_tuple(py, &o)?.map(Bound::into_any));
            }
            Some(Begun::Pending(p)) => p,
        };
        let inner = bridge.get().inner().clone();
        let pending = match &self.direct {
            Some(d) => match d.try_send(py, Arc::as_ptr(&inner) as usize, future, pending) {
                Ok(()) => return Ok(Some(future.clone())),
                Err(p) => p,
            },
            None => pending,
        };
        let policy = self.policy.clone();
        let waiting = future.clone().unbind();
        runtime::handle().spawn(async move {
            let outcome = policy.finish(pending).await;
            let reports = policy
                .redis
                .as_ref()
                .map(|r| r.guard().take_reports())
                .unwrap_or_default();
            inner.complete(BridgeDone {
                future: waiting,
                completion: Completion::Http(outcome),
                reports,
            });
        });
        Ok(Some(future.clone()))
    }

    #[pyo3(signature = (scope, body=None))]
    fn key_for(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyAny>,
        body: Option<&[u8]>,
    ) -> PyResult<String> {
        let Some(s) = Scope::read(py, scope, Reads::ALL)? else {
            return Err(PyValueError::new_err("scope must be an http scope"));
        };
        let headers = s.header_slices();
        let req = s.view(&headers)?;
        Ok(self.policy.key_for(&req, body))
    }

    /// Forgets `key` in every per-client budget (in Redis too: `OSError` if Redis fails).
    fn reset(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        if self.policy.redis.is_none() {
            self.policy.reset(key, self.clock.now(py)?);
            return Ok(());
        }
        let (_, local_now) = script_times(&self.clock, py)?;
        let policy = self.policy.clone();
        let key = key.to_owned();
        let r = py.detach(move || runtime::handle().block_on(policy.reset_shared(&key, local_now)));
        self.reports(py);
        r.map(|_| ()).map_err(store_error)
    }
}
