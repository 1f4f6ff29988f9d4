//! `RulesEngine`: named rules chosen per request ([`crate::rules`]). Rules cross the boundary as
//! dicts through serde (pythonize): a bad field is named by serde's own error.

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::clock::ClockSource;
use super::errors::{at_least_one, cost_arg, Count};
use super::limiter::secs;
use crate::error::Error;
use crate::rules::overrides::{AuditEntry, OverrideSpec};
use crate::rules::{RequestFacts, RuleAlgorithm, RuleDecision, RuleSpec, Rules, Strategy};

/// Writes `entries` to the `seawall.rules.audit` logger, one INFO record each, with the entry's
/// fields as `extra` (JSON log formatters pick them up).
fn log_audit(py: Python<'_>, entries: &[AuditEntry]) {
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

#[pyclass(frozen, module = "seawall._seawall", name = "RulesEngine")]
pub(crate) struct PyRulesEngine {
    rules: Rules,
    clock: ClockSource,
}

/// A rule's decision, as Python reads it.
#[pyclass(frozen, module = "seawall._seawall", name = "RuleDecision")]
pub(crate) struct PyRuleDecision {
    d: RuleDecision,
}

fn enum_arg<T: serde::de::DeserializeOwned>(param: &str, value: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| PyValueError::new_err(format!("{param} names no such choice: {value:?}")))
}

fn facts<'a>(
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
    })
}

/// A rule-name error as Python's `LookupError` family (`KeyError`), naming the rule.
fn lookup(e: Error) -> PyErr {
    match &e {
        Error::InvalidArgument {
            param: "rule_name", ..
        } => PyKeyError::new_err(e.to_string()),
        _ => e.into(),
    }
}

#[pymethods]
impl PyRulesEngine {
    #[new]
    #[pyo3(signature = (*, default_algorithm="token_bucket", default_strategy="retry_after", max_keys=100_000, clock=None))]
    fn new(
        default_algorithm: &str,
        default_strategy: &str,
        max_keys: i64,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let algorithm: RuleAlgorithm = enum_arg("default_algorithm", default_algorithm)?;
        let strategy: Strategy = enum_arg("default_strategy", default_strategy)?;
        Ok(PyRulesEngine {
            rules: Rules::new(algorithm, strategy, at_least_one("max_keys", max_keys)?),
            clock: ClockSource::from_arg(clock)?,
        })
    }

    /// Adds a rule given as a dict (or replaces the rule of its name).
    fn add_rule(&self, rule: &Bound<'_, PyAny>) -> PyResult<()> {
        let spec: RuleSpec = from_dict("rule", rule)?;
        Ok(self.rules.add(spec)?)
    }

    /// Removes the rule `name`; whether there was one.
    fn remove_rule(&self, name: &str) -> bool {
        self.rules.remove(name)
    }

    /// Every rule, as dicts, in the order added.
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
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
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        default: Option<&str>,
    ) -> PyResult<Option<String>> {
        let req = facts(identifier, endpoint, ip_address)?;
        self.rules.select(&req, default).map_err(lookup)
    }

    /// Decides one request under the rule `rule_name` (its filters are not consulted).
    #[pyo3(
        signature = (rule_name, identifier=None, *, endpoint=None, ip_address=None, cost=Count::ONE),
        text_signature = "($self, rule_name, identifier=None, *, endpoint=None, ip_address=None, cost=1)"
    )]
    fn check(
        &self,
        py: Python<'_>,
        rule_name: &str,
        identifier: Option<&str>,
        endpoint: Option<&str>,
        ip_address: Option<&str>,
        cost: Count,
    ) -> PyResult<PyRuleDecision> {
        let req = facts(identifier, endpoint, ip_address)?;
        let now = self.clock.now(py)?;
        let d = self
            .rules
            .check(rule_name, &req, now, cost_arg("cost", cost)?)
            .map_err(lookup)?;
        log_audit(py, &d.audit);
        Ok(PyRuleDecision { d })
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
        let (added, audit) = self.rules.overrides.add(spec, self.clock.now(py)?)?;
        log_audit(py, &audit);
        to_py(py, &added)
    }

    /// Removes override `override_id` on behalf of `admin_id`; whether it was in force.
    #[pyo3(signature = (override_id, admin_id=""))]
    fn remove_override(&self, py: Python<'_>, override_id: u64, admin_id: &str) -> PyResult<bool> {
        let (removed, audit) =
            self.rules
                .overrides
                .remove(override_id, admin_id, self.clock.now(py)?);
        log_audit(py, &audit);
        Ok(removed)
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
        let (found, audit) = self
            .rules
            .overrides
            .check(req.user, req.ip, self.clock.now(py)?);
        log_audit(py, &audit);
        found.map(|o| to_py(py, &o)).transpose()
    }

    /// The overrides in force, oldest first, as dicts.
    fn overrides<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let (live, audit) = self.rules.overrides.list(self.clock.now(py)?);
        log_audit(py, &audit);
        live.iter().map(|o| to_py(py, o)).collect()
    }

    /// The last `limit` audit entries (add, remove, expire), oldest first, as dicts.
    #[pyo3(signature = (limit=100))]
    fn audit_log<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let (entries, written) = self.rules.overrides.audit(limit, self.clock.now(py)?);
        log_audit(py, &written);
        entries.iter().map(|e| to_py(py, e)).collect()
    }

    /// Rule `rule_name`'s metrics as a dict: `total_requests`, `allowed_requests`,
    /// `denied_requests`, `hit_rate`, `avg_tokens_remaining`, and `violations_by_user`,
    /// `violations_by_ip`, `violations_by_endpoint` (bounded top-K summaries).
    fn get_metrics<'py>(&self, py: Python<'py>, rule_name: &str) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.rules.metrics(rule_name).map_err(lookup)?)
    }

    /// Every rule's metrics, by rule name.
    fn get_all_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, snapshot) in self.rules.all_metrics() {
            out.set_item(name, to_py(py, &snapshot)?)?;
        }
        Ok(out)
    }

    /// Zeroes `rule_name`'s metrics (every rule's with None); budgets stay as they are.
    #[pyo3(signature = (rule_name=None))]
    fn reset_metrics(&self, rule_name: Option<&str>) -> PyResult<()> {
        self.rules.reset_metrics(rule_name).map_err(lookup)
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
        self.rules
            .reset(rule_name, &req, self.clock.now(py)?)
            .map_err(lookup)
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
