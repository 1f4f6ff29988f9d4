//! Admin overrides: a user or an address (IP or CIDR) let through without limit, or held to its
//! limits times a multiplier, for a time on seawall's clock; every add, removal and expiry kept in
//! a bounded audit log (SEEDS-002-003.md A10–A12, A22, A23; seed 002's defect 9).
//!
//! Authenticating the admin is the caller's job: `admin_id` is recorded as given.

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;
use crate::http::client_ip::parse_net;

/// The longest override, by default: a week.
pub const DEFAULT_MAX_DURATION: Nanos = 7 * 24 * 3600 * NANOS_PER_SEC;
/// Audit entries kept (the oldest go first).
pub const AUDIT_ENTRIES: usize = 10_000;

fn multiplier_default() -> f64 {
    2.0
}

/// Times go out as seconds since the epoch on seawall's clock (what Python reads).
fn as_secs<S: serde::Serializer>(n: &Nanos, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*n as f64 / NANOS_PER_SEC as f64)
}

/// An override as an admin asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// The user it lets through (the identifier, with or without a `user:` prefix).
    #[serde(default)]
    pub target_user_id: Option<String>,
    /// The address it lets through: an IP or a CIDR.
    #[serde(default)]
    pub target_ip_address: Option<String>,
    /// No limit at all (else the limits times `multiplier`).
    #[serde(default, deserialize_with = "super::strict_bool")]
    pub unlimited: bool,
    /// The factor on the limits when not unlimited; more than 1.
    #[serde(default = "multiplier_default")]
    pub multiplier: f64,
    /// How long, in minutes (`None`: until removed, at most the maximum).
    #[serde(default)]
    pub duration_minutes: Option<f64>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
    /// Who (recorded as given).
    #[serde(default)]
    pub admin_id: String,
}

/// An override in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    /// Its number, new for every add.
    pub override_id: u64,
    /// What was asked.
    #[serde(flatten)]
    pub spec: OverrideSpec,
    /// When it was added, ns on seawall's clock.
    #[serde(serialize_with = "as_secs")]
    pub created_at: Nanos,
    /// When it ends, ns on seawall's clock.
    #[serde(serialize_with = "as_secs")]
    pub expires_at: Nanos,
    #[serde(skip)]
    net: Option<IpNet>,
}

/// An override as a shared store keeps it: times in nanoseconds on seawall's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOverride {
    /// Its number.
    pub override_id: u64,
    /// When it was added.
    pub created_at: Nanos,
    /// When it ends.
    pub expires_at: Nanos,
    /// What was asked.
    pub spec: OverrideSpec,
}

impl From<&Override> for StoredOverride {
    fn from(o: &Override) -> Self {
        StoredOverride {
            override_id: o.override_id,
            created_at: o.created_at,
            expires_at: o.expires_at,
            spec: o.spec.clone(),
        }
    }
}

impl StoredOverride {
    /// The override in force it stands for (its address parsed again).
    pub fn into_override(self) -> Override {
        let net = self.spec.target_ip_address.as_deref().and_then(parse_net);
        Override {
            override_id: self.override_id,
            created_at: self.created_at,
            expires_at: self.expires_at,
            net,
            spec: self.spec,
        }
    }
}

/// What happened to an override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Added.
    Add,
    /// Removed by an admin.
    Remove,
    /// Ended by its time.
    Expire,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When, ns on seawall's clock.
    #[serde(serialize_with = "as_secs")]
    pub at: Nanos,
    /// What happened.
    pub action: Action,
    /// To which override.
    pub override_id: u64,
    /// Who did it (the adder's id for an expiry).
    pub admin_id: String,
    /// Why it was added.
    pub reason: String,
    /// Its user target.
    pub target_user_id: Option<String>,
    /// Its address target.
    pub target_ip_address: Option<String>,
}

/// The overrides of one engine and their audit log.
pub struct Overrides {
    state: Mutex<State>,
    /// Whether any override is held (expired ones included until they are dropped): read on
    /// every decision without the lock.
    held: std::sync::atomic::AtomicBool,
    max_duration: Nanos,
}

struct State {
    live: Vec<Override>,
    audit: VecDeque<AuditEntry>,
    next_id: u64,
}

impl Override {
    /// The audit entry of `action` on it at `at` by `admin`.
    pub fn entry(&self, at: Nanos, action: Action, admin: &str) -> AuditEntry {
        AuditEntry {
            at,
            action,
            override_id: self.override_id,
            admin_id: admin.to_owned(),
            reason: self.spec.reason.clone(),
            target_user_id: self.spec.target_user_id.clone(),
            target_ip_address: self.spec.target_ip_address.clone(),
        }
    }

    fn matches(&self, user: Option<&str>, ip: Option<IpAddr>) -> bool {
        let by_user = match (&self.spec.target_user_id, user) {
            (Some(t), Some(u)) => t == u || u.strip_prefix("user:") == Some(t.as_str()),
            _ => false,
        };
        let by_ip = match (self.net, ip) {
            (Some(net), Some(ip)) => net.contains(&ip),
            _ => false,
        };
        by_user || by_ip
    }
}

impl Overrides {
    /// No override yet; none may last longer than `max_duration`.
    pub fn new(max_duration: Nanos) -> Self {
        Overrides {
            state: Mutex::new(State {
                live: Vec::new(),
                audit: VecDeque::new(),
                next_id: 1,
            }),
            max_duration,
            held: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn log(state: &mut State, entry: AuditEntry, out: &mut Vec<AuditEntry>) {
        if state.audit.len() >= AUDIT_ENTRIES {
            state.audit.pop_front();
        }
        out.push(entry.clone());
        state.audit.push_back(entry);
    }

    /// Ends the overrides whose time is up at `now`, logging each.
    fn expire(&self, state: &mut State, now: Nanos, out: &mut Vec<AuditEntry>) {
        let (gone, live): (Vec<Override>, Vec<Override>) =
            state.live.drain(..).partition(|o| o.expires_at <= now);
        state.live = live;
        self.note(state);
        for o in gone {
            let admin = o.spec.admin_id.clone();
            Self::log(state, o.entry(o.expires_at, Action::Expire, &admin), out);
        }
    }

    /// Adds an override at `now`; the new record and the audit entries written (expiries
    /// included), for the caller's log. Errors name the field: a target is required, an address
    /// must parse, a duration must be above 0 and at most the maximum, a multiplier above 1.
    ///
    /// ```
    /// use seawall::rules::overrides::{OverrideSpec, Overrides, DEFAULT_MAX_DURATION};
    ///
    /// let overrides = Overrides::new(DEFAULT_MAX_DURATION);
    /// let spec: OverrideSpec = serde_json::from_str(
    ///     r#"{"target_ip_address": "10.0.0.0/8", "unlimited": true, "duration_minutes": 60,
    ///         "reason": "load test", "admin_id": "ops"}"#,
    /// ).unwrap();
    /// let (added, _) = overrides.add(spec, 0).unwrap();
    /// let found = overrides.check(None, Some("10.1.2.3".parse().unwrap()), 0).0;
    /// assert_eq!(found.map(|o| o.override_id), Some(added.override_id));
    /// assert!(overrides.check(None, Some("10.1.2.3".parse().unwrap()), 3_600_000_000_000).0.is_none());
    /// ```
    pub fn add(
        &self,
        spec: OverrideSpec,
        now: Nanos,
    ) -> Result<(Override, Vec<AuditEntry>), Error> {
        let mut o = self.prepare(spec, now)?;
        let mut state = self.state.lock();
        let mut out = Vec::new();
        self.expire(&mut state, now, &mut out);
        o.override_id = state.next_id;
        state.next_id += 1;
        let admin = o.spec.admin_id.clone();
        Self::log(&mut state, o.entry(now, Action::Add, &admin), &mut out);
        state.live.push(o.clone());
        self.note(&state);
        Ok((o, out))
    }

    /// Checks `spec` and makes its record at `now`, numbered 0 and not yet in force (a shared
    /// engine numbers it from its store, then [`Overrides::insert`]s it). Errors as
    /// [`Overrides::add`]'s.
    pub fn prepare(&self, spec: OverrideSpec, now: Nanos) -> Result<Override, Error> {
        if spec.target_user_id.as_deref().is_none_or(str::is_empty)
            && spec.target_ip_address.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::invalid(
                "target_user_id",
                "or target_ip_address must be given: an override needs a target",
            ));
        }
        let net = match &spec.target_ip_address {
            Some(text) => Some(parse_net(text).ok_or_else(|| {
                Error::invalid(
                    "target_ip_address",
                    format!("must be an IP address or a CIDR network, got {text:?}"),
                )
            })?),
            None => None,
        };
        let multiplies = spec.multiplier.is_finite() && spec.multiplier > 1.0;
        if !(spec.unlimited || multiplies) {
            return Err(Error::invalid(
                "multiplier",
                format!(
                    "must be above 1 (or unlimited=True), got {}",
                    spec.multiplier
                ),
            ));
        }
        let max_minutes = self.max_duration as f64 / (60.0 * NANOS_PER_SEC as f64);
        let duration = match spec.duration_minutes {
            Some(m) if m.is_finite() && m > 0.0 && m <= max_minutes => {
                (m * 60.0 * NANOS_PER_SEC as f64) as Nanos
            }
            Some(m) => {
                return Err(Error::invalid(
                    "duration_minutes",
                    format!("must be above 0 and at most {max_minutes} (the maximum), got {m}"),
                ))
            }
            // Until removed, but never past the maximum.
            None => self.max_duration,
        };
        Ok(Override {
            override_id: 0,
            created_at: now,
            expires_at: now.saturating_add(duration),
            net,
            spec,
        })
    }

    /// Puts `o` in force (as [`Overrides::prepare`] made it, numbered), logging its addition;
    /// the audit entries written.
    pub fn insert(&self, o: Override, now: Nanos) -> Vec<AuditEntry> {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        self.expire(&mut state, now, &mut out);
        state.next_id = state.next_id.max(o.override_id + 1);
        let admin = o.spec.admin_id.clone();
        Self::log(&mut state, o.entry(now, Action::Add, &admin), &mut out);
        state.live.push(o);
        self.note(&state);
        out
    }

    /// Replaces the overrides in force with `live` (a shared store's), writing no audit entry:
    /// the store's log has them.
    pub fn replace(&self, live: Vec<Override>) {
        let mut state = self.state.lock();
        if let Some(top) = live.iter().map(|o| o.override_id).max() {
            state.next_id = state.next_id.max(top + 1);
        }
        state.live = live;
        self.note(&state);
    }

    /// Removes override `id` at `now` on behalf of `admin_id`; whether it was in force, and the
    /// audit entries written.
    pub fn remove(&self, id: u64, admin_id: &str, now: Nanos) -> (bool, Vec<AuditEntry>) {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        self.expire(&mut state, now, &mut out);
        let Some(i) = state.live.iter().position(|o| o.override_id == id) else {
            return (false, out);
        };
        let o = state.live.remove(i);
        self.note(&state);
        Self::log(&mut state, o.entry(now, Action::Remove, admin_id), &mut out);
        (true, out)
    }

    /// The override in force at `now` for `user` or `ip`, preferring unlimited, then the latest
    /// expiry; and the audit entries of the expiries found on the way.
    pub fn check(
        &self,
        user: Option<&str>,
        ip: Option<IpAddr>,
        now: Nanos,
    ) -> (Option<Override>, Vec<AuditEntry>) {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        if state.live.is_empty() {
            return (None, out);
        }
        self.expire(&mut state, now, &mut out);
        let best = state
            .live
            .iter()
            .filter(|o| o.matches(user, ip))
            .max_by_key(|o| (o.spec.unlimited, o.expires_at))
            .cloned();
        (best, out)
    }

    /// Whether any override is in force (one load of a lock when none is).
    pub fn any(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps [`Overrides::any`] in step with `state` (called with the lock held, after a change).
    fn note(&self, state: &State) {
        self.held
            .store(!state.live.is_empty(), std::sync::atomic::Ordering::Release);
    }

    /// The overrides in force at `now`, oldest first.
    pub fn list(&self, now: Nanos) -> (Vec<Override>, Vec<AuditEntry>) {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        self.expire(&mut state, now, &mut out);
        (state.live.clone(), out)
    }

    /// The last `limit` audit entries at `now` (the expiries due by then included), oldest
    /// first; and the entries written by this call.
    pub fn audit(&self, limit: usize, now: Nanos) -> (Vec<AuditEntry>, Vec<AuditEntry>) {
        let mut state = self.state.lock();
        let mut out = Vec::new();
        self.expire(&mut state, now, &mut out);
        let skip = state.audit.len().saturating_sub(limit);
        (state.audit.iter().skip(skip).cloned().collect(), out)
    }
}
