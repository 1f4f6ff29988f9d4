//! `RulesEngine`: named rules chosen per request ([`crate::rules`]). Rules cross the boundary as
//! dicts through serde (pythonize): a bad field is named by serde's own error.

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::sync::Arc;

use super::clock::ClockSource;
use super::errors::{at_least_one, cost_arg, seconds_arg, Count};
use super::futures::{store_error, PyBridge};
use super::limiter::secs;
use super::redis::{redis_settings, script_times, start_time};
use super::rules_redis::RedisPath;
use super::rules_shared::Shared;
use crate::clock::NANOS_PER_SEC;
use crate::error::Error;
use crate::limiter::redis_failure::OnError;
use crate::rules::overrides::{Action, AuditEntry, OverrideSpec, StoredOverride};
use crate::rules::shared::ControlPlane;
use crate::rules::{
    FollowUp, RequestFacts, RuleAlgorithm, RuleDecision, RuleSpec, RuleStore, Rules, Step, Strategy,
};
use crate::store::redis::runtime;

/// Writes `entries` to the `seawall.rules.audit` logger, one INFO record each, with the entry's
/// fields as `extra` (JSON log formatters pick them up).
pub(crate) fn log_audit(py: Python<'_>, entries: &[AuditEntry]) {
    for entry in entries {
        let done = (|| -> PyResult<()> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("seawall.rules.audit",))?;
            let extra = PyDict::new(py);
            extra.set_item(
                "seawall_override",
                pythonize::pythonize(py, entry)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
            )?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            let action = match entry.action {
                crate::rules::overrides::Action::Add => "added",
                crate::rules::overrides::Action::Remove => "removed",
                crate::rules::overrides::Action::Expire => "expired",
            };
            logger.call_method(
                "info",
                (
                    "override %s %s by %r (user %r, address %r): %s",
                    entry.override_id,
                    action,
                    entry.admin_id.clone(),
                    entry.target_user_id.clone(),
                    entry.target_ip_address.clone(),
                    entry.reason.clone(),
                ),
                Some(&kwargs),
            )?;
            Ok(())
        })();
        if done.is_err() {
            let _ = PyErr::take(py);
        }
    }
}

/// A dict as the serde struct `T`, every error naming `param` and the field's path.
fn from_dict<T: serde::de::DeserializeOwned>(param: &str, value: &Bound<'_, PyAny>) -> PyResult<T> {
    if !value.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "{param} must be a dict, got {}",
            super::errors::type_name(value)
        )));
    }
    let mut de = pythonize::Depythonizer::from_object(value);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            PyValueError::new_err(format!("{param}: {inner}"))
        } else {
            PyValueError::new_err(format!("{param}: {path}: {inner}"))
        }
    })
}

fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pyclass(frozen, subclass, module = "seawall._seawall", name = "RulesEngine")]
pub(crate) struct PyRulesEngine {
    pub(crate) rules: Arc<Rules>,
    pub(crate) clock: ClockSource,
    /// How decisions reach Redis, when the budgets are there.
    pub(crate) redis: Option<RedisPath>,
    /// The store's URL as given.
    store: String,
    /// Redis: the shared rules, overrides and metrics.
    pub(crate) shared: Option<Arc<Shared>>,
}

/// A rule's decision, as Python reads it.
#[pyclass(frozen, module = "seawall._seawall", name = "RuleDecision")]
pub(crate) struct PyRuleDecision {
    d: RuleDecision,
    /// On Redis: the second call a refusal still needs (THROTTLE's booking, QUEUE's place).
    follow: Option<FollowUp>,
}

impl PyRuleDecision {
    pub(crate) fn new(d: RuleDecision, follow: Option<FollowUp>) -> Self {
        PyRuleDecision { d, follow }
    }
}

fn enum_arg<T: serde::de::DeserializeOwned>(param: &str, value: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| PyValueError::new_err(format!("{param} names no such choice: {value:?}")))
}

pub(crate) fn facts<'a>(
    identifier: Option<&'a str>,
    endpoint: Option<&'a str>,
    ip: Option<&str>,
) -> PyResult<RequestFacts<'a>> {
    let ip = match ip {
        Some(text) => Some(text.parse().map_err(|_| {
            PyValueError::new_err(format!("ip_address must be an IP address, got {text:?}"))
        })?),
        None => None,
    };
    Ok(RequestFacts {
        user: identifier,
        ip,
        endpoint,
        user_id: None,
    })
}

/// A rule-name error as Python's `LookupError` family (`KeyError`), naming the rule.
pub(crate) fn lookup(e: Error) -> PyErr {
    match &e {
        Error::InvalidArgument {
            param: "rule_name", ..
        } => PyKeyError::new_err(e.to_string()),
        _ => e.into(),
    }
}

/// A control-plane failure as Python's `OSError` (Redis unreachable, or refusing the call).
fn outage(e: Error) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(e.to_string())
}

/// The store an engine keeps its budgets in, from its URL and the Redis options.
#[allow(clippy::too_many_arguments)]
fn store_arg(
    store: &str,
    key_prefix: &str,
    on_error: &str,
    connect_timeout: f64,
    command_timeout: f64,
    log_interval: f64,
    breaker_failures: i64,
    breaker_recovery: f64,
    max_keys: usize,
) -> PyResult<RuleStore> {
    if store == "memory://" {
        return Ok(RuleStore::Memory);
    }
    if let Some(name) = store.strip_prefix("host://") {
        return Ok(RuleStore::Host(name.to_owned()));
    }
    // Checked now, not when the first rule opens its budgets.
    crate::store::redis::url::parse(store)?;
    if key_prefix.contains(['{', '}']) {
        return Err(PyValueError::new_err(
            "key_prefix must not hold '{' or '}' (seawall puts the Redis Cluster hash tag after it)",
        ));
    }
    Ok(RuleStore::Redis(redis_settings(
        store,
        key_prefix,
        on_error,
        connect_timeout,
        command_timeout,
        log_interval,
        max_keys,
        breaker_failures,
        breaker_recovery,
    )?))
}

impl PyRulesEngine {
    /// A shared engine: the store's rules loaded once in this process and its watcher started
    /// (one atomic load after that). Nothing for the others.
    #[inline]
    fn ensure(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(shared) = &self.shared {
            let rules = &self.rules;
            py.detach(|| shared.ensure(rules)).map_err(outage)?;
        }
        Ok(())
    }

    /// A decision for a process that could not read the shared rules yet (Redis down since it
    /// started): `on_error` decides, marked as a fallback (`deny` refuses for a second; `allow`
    /// and `local` admit, having no limits to apply). `None` once the rules were read.
    fn unloaded(&self, name: Option<&str>, default: Option<&str>) -> Option<RuleDecision> {
        let (Some(shared), RuleStore::Redis(config)) = (&self.shared, self.rules.store()) else {
            return None;
        };
        if shared.is_loaded() {
            return None;
        }
        let allowed = config.on_error != OnError::Deny;
        let wait = if allowed { 0 } else { NANOS_PER_SEC };
        Some(RuleDecision {
            decision: crate::algorithm::Decision {
                allowed,
                limit: 0,
                remaining: 0,
                reset_after: wait,
                retry_after: wait,
            },
            rule: Arc::from(name.or(default).unwrap_or("")),
            strategy: self.rules.default_strategy(),
            override_id: None,
            audit: Vec::new(),
            delay: 0,
            degraded: false,
            queued: false,
            fallback: true,
        })
    }

    /// Runs `f` on the control plane without the GIL, if the engine has one.
    fn on_plane<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Shared) -> Result<T, Error> + Send,
    ) -> PyResult<Option<T>> {
        match &self.shared {
            Some(shared) => Ok(Some(py.detach(|| f(shared)).map_err(outage)?)),
            None => Ok(None),
        }
    }

    /// The whole decision on this thread: at once in memory and the host store, blocking on
    /// Redis. `name`: a named rule; else the one selected for `req` (or `default`).
    pub(crate) fn decide_sync(
        &self,
        py: Python<'_>,
        name: Option<&str>,
        default: Option<&str>,
        req: &RequestFacts<'_>,
        cost: u64,
    ) -> PyResult<Option<PyRuleDecision>> {
        if let Err(e) = self.ensure(py) {
            return match self.unloaded(name, default) {
                Some(d) => Ok(Some(PyRuleDecision::new(d, None))),
                None => Err(e),
            };
        }
        let Some(redis) = &self.redis else {
            let now = self.clock.now(py)?;
            let d = match name {
                Some(n) => Some(self.rules.check(n, req, now, cost).map_err(lookup)?),
                None => self.rules.decide(req, default, now, cost).map_err(lookup)?,
            };
            if let Some(d) = &d {
                log_audit(py, &d.audit);
            }
            return Ok(d.map(|d| PyRuleDecision::new(d, None)));
        };
        let (script_now, now) = script_times(&self.clock, py)?;
        let d = match self
            .rules
            .plan(name, default, req, now, cost)
            .map_err(lookup)?
        {
            None => return Ok(None),
            Some(Step::Decided(d)) => d,
            Some(Step::Hit(hit)) => redis.decide_blocking(py, hit, req, script_now)?,
        };
        log_audit(py, &d.audit);
        Ok(Some(PyRuleDecision::new(d, None)))
    }

    /// Starts the decision on the loop: `(false, decision)` when it is known at once (`None`:
    /// no rule applies), `(true, None)` when it is set on `future` later.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        name: Option<&str>,
        default: Option<&str>,
        req: &RequestFacts<'_>,
        cost: u64,
    ) -> PyResult<(bool, Option<PyRuleDecision>)> {
        let Some(redis) = &self.redis else {
            return Ok((false, self.decide_sync(py, name, default, req, cost)?));
        };
        if let Err(e) = self.ensure(py) {
            return match self.unloaded(name, default) {
                Some(d) => Ok((false, Some(PyRuleDecision::new(d, None)))),
                None => Err(e),
            };
        }
        let (script_now, now) = script_times(&self.clock, py)?;
        match self
            .rules
            .plan(name, default, req, now, cost)
            .map_err(lookup)?
        {
            None => Ok((false, None)),
            Some(Step::Decided(d)) => {
                log_audit(py, &d.audit);
                Ok((false, Some(PyRuleDecision::new(d, None))))
            }
            Some(Step::Hit(hit)) => {
                log_audit(py, hit.audit());
                let d = redis.submit_hit(py, bridge, future, hit, req, script_now)?;
                Ok((d.is_none(), d))
            }
        }
    }
}

#[pymethods]
impl PyRulesEngine {
    #[new]
    #[pyo3(signature = (
        *, default_algorithm="token_bucket", default_strategy="retry_after", max_keys=100_000,
        clock=None, store="memory://", key_prefix="seawall:rules:", on_error="deny",
        connect_timeout=1.0, command_timeout=0.25, log_interval=60.0, breaker_failures=3,
        breaker_recovery=1.0, sync_interval=0.25
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        default_algorithm: &str,
        default_strategy: &str,
        max_keys: i64,
        clock: Option<&Bound<'_, PyAny>>,
        store: &str,
        key_prefix: &str,
        on_error: &str,
        connect_timeout: f64,
        command_timeout: f64,
        log_interval: f64,
        breaker_failures: i64,
        breaker_recovery: f64,
        sync_interval: f64,
    ) -> PyResult<Self> {
        let interval = seconds_arg("sync_interval", sync_interval, 0.001)?;
        let algorithm: RuleAlgorithm = enum_arg("default_algorithm", default_algorithm)?;
        let strategy: Strategy = enum_arg("default_strategy", default_strategy)?;
        let max_keys = at_least_one("max_keys", max_keys)?;
        let rule_store = store_arg(
            store,
            key_prefix,
            on_error,
            connect_timeout,
            command_timeout,
            log_interval,
            breaker_failures,
            breaker_recovery,
            max_keys,
        )?;
        let redis = match &rule_store {
            RuleStore::Redis(config) => Some(RedisPath::new(config.redis.clone())),
            _ => None,
        };
        let clock = ClockSource::from_arg(clock)?;
        let shared = match &rule_store {
            RuleStore::Redis(config) => Some(Shared::new(
                ControlPlane::new(config.redis.clone(), key_prefix)?,
                std::time::Duration::from_nanos(interval),
                match &clock {
                    ClockSource::Manual(m) => Some(m.clone()),
                    _ => None,
                },
            )),
            _ => None,
        };
        Ok(PyRulesEngine {
            shared,
            rules: Arc::new(Rules::with_store(algorithm, strategy, max_keys, rule_store)),
            clock,
            redis,
            store: store.to_owned(),
        })
    }

    /// Where the budgets are (the URL given).
    #[getter]
    fn store(&self) -> String {
        crate::store::redis::url::redact(&self.store)
    }

    /// Whether decisions wait for Redis (then `acheck` / `adecide` do not block the loop).
    #[getter]
    fn is_async(&self) -> bool {
        self.redis.is_some()
    }

    /// Adds a rule given as a dict (or replaces the rule of its name).
    fn add_rule(&self, py: Python<'_>, rule: &Bound<'_, PyAny>) -> PyResult<()> {
        let spec: RuleSpec = from_dict("rule", rule)?;
        self.rules.validate(&spec)?;
        self.ensure(py)?;
        let place = match self.on_plane(py, |s| s.plane.put_rule(&spec))? {
            Some((version, place)) => {
                self.shared.as_ref().expect("a plane").wrote(version);
                Some(place)
            }
            None => None,
        };
        Ok(self
            .rules
            .add_ordered(spec, place, start_time(&self.clock))?)
    }

    /// Removes the rule `name`; whether there was one.
    fn remove_rule(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        self.ensure(py)?;
        let shared = self.on_plane(py, |s| s.plane.remove_rule(name))?;
        let here = self.rules.remove(name);
        Ok(shared.unwrap_or(here))
    }

    /// Applies the shared store's rules and overrides now (they are otherwise applied within
    /// `sync_interval`); the store's version. 0 for an engine that shares nothing.
    fn sync(&self, py: Python<'_>) -> PyResult<u64> {
        self.ensure(py)?;
        let rules = &self.rules;
        Ok(self
            .on_plane(py, |s| {
                s.flush(rules)?;
                s.reload(rules)
            })?
            .unwrap_or(0))
    }

    /// Every rule, as dicts, in the order added.
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.ensure(py)?;
        self.rules
            .list()
            .iter()
            .map(|r| {
                pythonize::pythonize(py, r.spec()).map_err(|e| PyValueError::new_err(e.to_string()))
            })
            .collect()
    }

    /// The rule `name` as a dict; `KeyError` if there is none.
    fn get_rule<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.ensure(py)?;
        let rule = self
            .rules
            .get(name)
            .ok_or_else(|| PyKeyError::new_err(format!("rule_name names no rule: {name:?}")))?;
        pythonize::pythonize(py, rule.spec()).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The rule a request falls under (the highest-priority enabled rule whose filters all
    /// match), else `default`.
    #[pyo3(signature = (*, identifier=None, endpoint=None, ip_address=None, default=None))]
    fn select(
        &self,
        py: Python<'_>,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        default: Option<&str>,
    ) -> PyResult<Option<String>> {
        self.ensure(py)?;
        let req = facts(identifier, endpoint, ip_address)?;
        self.rules.select(&req, default).map_err(lookup)
    }

    /// Decides one request under the rule `rule_name` (its filters are not consulted).
    #[pyo3(
        signature = (rule_name, identifier=None, *, endpoint=None, ip_address=None, cost=Count::ONE, user_id=None),
        text_signature = "($self, rule_name, identifier=None, *, endpoint=None, ip_address=None, cost=1, user_id=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        py: Python<'_>,
        rule_name: &str,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        cost: Count,
        user_id: Option<&str>,
    ) -> PyResult<PyRuleDecision> {
        let mut req = facts(identifier, endpoint, ip_address)?;
        req.user_id = user_id;
        let d = self.decide_sync(py, Some(rule_name), None, &req, cost_arg("cost", cost)?)?;
        Ok(d.expect("a named rule always decides"))
    }

    /// Selection and decision in one call: the rule the request falls under (the
    /// highest-priority enabled rule whose filters all match, else `default`), decided; None
    /// when no rule applies.
    #[pyo3(
        signature = (identifier=None, *, endpoint=None, ip_address=None, default=None, cost=Count::ONE, user_id=None),
        text_signature = "($self, identifier=None, *, endpoint=None, ip_address=None, default=None, cost=1, user_id=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        py: Python<'_>,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        default: Option<&str>,
        cost: Count,
        user_id: Option<&str>,
    ) -> PyResult<Option<PyRuleDecision>> {
        let mut req = facts(identifier, endpoint, ip_address)?;
        req.user_id = user_id;
        self.decide_sync(py, None, default, &req, cost_arg("cost", cost)?)
    }

    /// Starts `check` (a rule name) or `decide` (None) on the loop of `future`: `(False,
    /// decision)` when known at once, `(True, None)` when the bridge sets it on `future`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (bridge, future, rule_name, identifier, endpoint, ip_address, default, cost, user_id=None))]
    fn _submit(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        rule_name: Option<&str>,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        default: Option<&str>,
        cost: Count,
        user_id: Option<&str>,
    ) -> PyResult<(bool, Option<PyRuleDecision>)> {
        let mut req = facts(identifier, endpoint, ip_address)?;
        req.user_id = user_id;
        self.submit(
            py,
            bridge,
            future,
            rule_name,
            default,
            &req,
            cost_arg("cost", cost)?,
        )
    }

    /// Starts the second call a refusal on Redis still needs (`decision._needs_follow_up`):
    /// `(False, decision)` when known at once, `(True, None)` when set on `future`.
    fn _submit_follow(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, PyBridge>,
        future: &Bound<'_, PyAny>,
        decision: &Bound<'_, PyRuleDecision>,
    ) -> PyResult<(bool, Option<PyRuleDecision>)> {
        let d = decision.get();
        let (Some(redis), Some(f)) = (&self.redis, d.follow.clone()) else {
            return Ok((false, Some(PyRuleDecision::new(d.d.clone(), None))));
        };
        let r = redis.submit_follow(py, bridge, future, d.d.clone(), f)?;
        Ok((r.is_none(), r))
    }

    /// Adds an admin override given as a dict (`target_user_id` and/or `target_ip_address`,
    /// `unlimited` or `multiplier`, `duration_minutes`, `reason`, `admin_id`); the record as a
    /// dict (`override_id`, `created_at`, `expires_at` in seconds on seawall's clock).
    fn add_override<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let spec: OverrideSpec = from_dict("request", request)?;
        let now = self.clock.now(py)?;
        if self.shared.is_some() {
            self.ensure(py)?;
            let mut o = self.rules.overrides.prepare(spec, now)?;
            let stored = self
                .on_plane(py, |s| {
                    o.override_id = s.plane.next_override_id()?;
                    let entry = o.entry(now, Action::Add, &o.spec.admin_id);
                    let version = s.plane.put_override(&StoredOverride::from(&o), &entry)?;
                    s.wrote(version);
                    s.added(StoredOverride::from(&o));
                    Ok(o)
                })?
                .expect("a plane");
            let audit = self.rules.overrides.insert(stored.clone(), now);
            log_audit(py, &audit);
            return to_py(py, &stored);
        }
        let (added, audit) = self.rules.overrides.add(spec, now)?;
        log_audit(py, &audit);
        to_py(py, &added)
    }

    /// Removes override `override_id` on behalf of `admin_id`; whether it was in force.
    #[pyo3(signature = (override_id, admin_id=""))]
    fn remove_override(&self, py: Python<'_>, override_id: u64, admin_id: &str) -> PyResult<bool> {
        let now = self.clock.now(py)?;
        let mut shared = None;
        if self.shared.is_some() {
            // Another process's override may not have reached this one yet.
            self.sync(py)?;
            let (live, _) = self.rules.overrides.list(0);
            if let Some(o) = live.into_iter().find(|o| o.override_id == override_id) {
                let entry = o.entry(now, Action::Remove, admin_id);
                shared = self.on_plane(py, |s| s.plane.remove_override(override_id, &entry))?;
            }
        }
        let (removed, audit) = self.rules.overrides.remove(override_id, admin_id, now);
        log_audit(py, &audit);
        Ok(shared.unwrap_or(removed))
    }

    /// The override in force for `user_id` or `ip_address` (unlimited first, then the latest
    /// expiry), as a dict, or None.
    #[pyo3(signature = (user_id=None, ip_address=None))]
    fn check_override<'py>(
        &self,
        py: Python<'py>,
        user_id: Option<&str>,
        ip_address: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let req = facts(user_id, None, ip_address)?;
        self.ensure(py)?;
        let (found, audit) = self
            .rules
            .overrides
            .check(req.user, req.ip, self.clock.now(py)?);
        log_audit(py, &audit);
        found.map(|o| to_py(py, &o)).transpose()
    }

    /// The overrides in force, oldest first, as dicts.
    fn overrides<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.ensure(py)?;
        let (live, audit) = self.rules.overrides.list(self.clock.now(py)?);
        log_audit(py, &audit);
        live.iter().map(|o| to_py(py, o)).collect()
    }

    /// The last `limit` audit entries (add, remove, expire), oldest first, as dicts.
    #[pyo3(signature = (limit=100))]
    fn audit_log<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if let Some(entries) = self.on_plane(py, |s| s.plane.audit(limit))? {
            return entries.iter().map(|e| to_py(py, e)).collect();
        }
        let (entries, written) = self.rules.overrides.audit(limit, self.clock.now(py)?);
        log_audit(py, &written);
        entries.iter().map(|e| to_py(py, e)).collect()
    }

    /// Rule `rule_name`'s metrics as a dict: `total_requests`, `allowed_requests`,
    /// `denied_requests`, `hit_rate`, `avg_tokens_remaining`, and `violations_by_user`,
    /// `violations_by_ip`, `violations_by_endpoint` (bounded top-K summaries).
    fn get_metrics<'py>(&self, py: Python<'py>, rule_name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.ensure(py)?;
        let here = self.rules.metrics(rule_name).map_err(lookup)?;
        let rules = &self.rules;
        let shared = self.on_plane(py, |s| {
            s.flush(rules)?;
            s.plane.metrics(rule_name)
        })?;
        to_py(py, &shared.unwrap_or(here))
    }

    /// Every rule's metrics, by rule name.
    fn get_all_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.ensure(py)?;
        let out = PyDict::new(py);
        let rules = &self.rules;
        let all = match self.on_plane(py, |s| {
            s.flush(rules)?;
            rules
                .list()
                .iter()
                .map(|r| Ok((r.spec().name.clone(), s.plane.metrics(&r.spec().name)?)))
                .collect::<Result<Vec<_>, Error>>()
        })? {
            Some(all) => all,
            None => self.rules.all_metrics(),
        };
        for (name, snapshot) in all {
            out.set_item(name, to_py(py, &snapshot)?)?;
        }
        Ok(out)
    }

    /// Zeroes `rule_name`'s metrics (every rule's with None); budgets stay as they are.
    #[pyo3(signature = (rule_name=None))]
    fn reset_metrics(&self, py: Python<'_>, rule_name: Option<&str>) -> PyResult<()> {
        self.ensure(py)?;
        self.rules.reset_metrics(rule_name).map_err(lookup)?;
        let names: Vec<String> = match rule_name {
            Some(n) => vec![n.to_owned()],
            None => self
                .rules
                .list()
                .iter()
                .map(|r| r.spec().name.clone())
                .collect(),
        };
        self.on_plane(py, |s| {
            names.iter().try_for_each(|n| s.plane.reset_metrics(n))
        })?;
        Ok(())
    }

    /// Forgets the budget a request has under `rule_name`; whether it was held.
    #[pyo3(signature = (rule_name, identifier=None, *, endpoint=None, ip_address=None))]
    fn reset(
        &self,
        py: Python<'_>,
        rule_name: &str,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
    ) -> PyResult<bool> {
        let req = facts(identifier, endpoint, ip_address)?;
        let (_, now) = script_times(&self.clock, py)?;
        match self.rules.reset(rule_name, &req, now).map_err(lookup)? {
            Ok(held) => Ok(held),
            Err((budgets, key)) => {
                let limiter = budgets
                    .redis()
                    .cloned()
                    .expect("budgets not reset at once are in Redis");
                let r = py.detach(move || runtime::handle().block_on(limiter.reset(&key, now)));
                r.map_err(store_error)
            }
        }
    }
}

#[pymethods]
impl PyRuleDecision {
    /// The limiter's verdict.
    #[getter]
    fn allowed(&self) -> bool {
        self.d.decision.allowed
    }

    #[getter]
    fn limit(&self) -> u64 {
        self.d.decision.limit
    }

    #[getter]
    fn remaining(&self) -> u64 {
        self.d.decision.remaining
    }

    #[getter]
    fn retry_after(&self) -> f64 {
        secs(self.d.decision.retry_after)
    }

    #[getter]
    fn reset_after(&self) -> f64 {
        secs(self.d.decision.reset_after)
    }

    /// The rule that decided.
    #[getter]
    fn rule(&self) -> &str {
        &self.d.rule
    }

    /// The admin override that applied, if any.
    #[getter]
    fn override_id(&self) -> Option<u64> {
        self.d.override_id
    }

    /// THROTTLE: seconds until the slot booked for this refused request (0.0 if none): wait
    /// that long, once, then serve it.
    #[getter]
    fn delay(&self) -> f64 {
        secs(self.d.delay)
    }

    /// GRACEFUL: the request was refused and is to be served marked as degraded.
    #[getter]
    fn degraded(&self) -> bool {
        self.d.degraded
    }

    /// What the rule's strategy makes of a refusal: its name.
    #[getter]
    fn strategy(&self) -> String {
        serde_json::to_value(self.d.strategy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// QUEUE: refused, and given a queue place (202); False: refused outright (429).
    #[getter]
    fn queued(&self) -> bool {
        self.d.queued
    }

    /// Whether Redis's failure policy (`on_error`) made the decision.
    #[getter]
    fn fallback(&self) -> bool {
        self.d.fallback
    }

    /// What a `Retry-After` header says: whole seconds, rounded up, at least 1 when refused
    /// (waiting that long admits the retry); 0 when allowed.
    #[getter]
    fn retry_after_header(&self) -> u64 {
        if self.d.decision.allowed {
            0
        } else {
            self.d.decision.retry_after.div_ceil(NANOS_PER_SEC).max(1)
        }
    }

    /// Whether a second call is still due (a refusal on Redis that THROTTLE books or QUEUE
    /// queues); `acheck` / `adecide` make it.
    #[getter]
    fn _needs_follow_up(&self) -> bool {
        self.follow.is_some()
    }

    fn __bool__(&self) -> bool {
        self.d.decision.allowed
    }

    fn __repr__(&self) -> String {
        format!(
            "RuleDecision(allowed={}, rule={:?}, strategy={:?}, remaining={}, retry_after={:?})",
            if self.d.decision.allowed {
                "True"
            } else {
                "False"
            },
            self.d.rule,
            self.strategy(),
            self.d.decision.remaining,
            secs(self.d.decision.retry_after)
        )
    }
}
