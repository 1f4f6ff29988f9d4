//! The shared control plane of a rules engine on Redis: its rules, overrides, override audit
//! log and metrics, kept in Redis so that every worker and host of a deployment (and the CLI)
//! sees one set.
//!
//! * **Rules and overrides** are hashes (a rule's spec and an override's record as JSON). Every
//!   change bumps a **version key** in the same script call. Each engine reads the version every
//!   `sync_interval` on a thread of its own and reloads when it moved, so a change made anywhere
//!   is in force everywhere within one interval (plus one round trip). Polling one key, rather
//!   than pub/sub, needs no connection held per engine and cannot miss a message while a worker
//!   reconnects: a version skipped is still a version that moved.
//! * **Metrics** are counted in each process and added to the store's totals once per interval
//!   (counters with `HINCRBY`; violations with `ZINCRBY`, each sorted set trimmed to the top
//!   1,000 by count, so the store's memory is bounded whatever clients send). Reads return the
//!   sum over every worker.
//! * **Audit**: every add, removal and expiry is one JSON entry in a list trimmed to the last
//!   10,000; an expiry is written by the process whose removal of the record succeeded, once.
//!
//! Every key holds the hash tag `{ctl}` after the engine's prefix, so that on a Redis Cluster one
//! script's keys share a slot.

use std::collections::HashMap;

use redis::{Script, Value};

use super::overrides::{AuditEntry, StoredOverride, AUDIT_ENTRIES};
use super::RuleSpec;
use crate::error::Error;
use crate::metrics::rule::{RuleMetricsSnapshot, DEFAULT_VIOLATIONS_CAPACITY};
use crate::metrics::top_k::{Entry, TopKSnapshot};
use crate::store::redis::process::ProcessStore;
use crate::store::redis::{runtime, RedisConfig};

const PUT: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
end
return redis.call('INCR', KEYS[2])
";

// KEYS: rules, version, places, place counter. A rule keeps its place when replaced.
const PUT_RULE: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local place = redis.call('HGET', KEYS[3], ARGV[1])
if not place then
  place = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[3], ARGV[1], place)
end
return {redis.call('INCR', KEYS[2]), tonumber(place)}
";

const DEL_RULE: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('INCR', KEYS[2])
return 1
";

const DEL: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
end
redis.call('INCR', KEYS[2])
return 1
";

const LOAD: &str = r"
return {redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2]),
        redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
";

// KEYS: counters, then for each of user / ip / endpoint: counts, errors.
// ARGV: allowed, denied, remaining sum, capacity, then per dimension: total, n, n × (key, count,
// error).
const FLUSH: &str = r"
redis.call('HINCRBY', KEYS[1], 'allowed', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'denied', ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], 'remaining', ARGV[3])
local cap = tonumber(ARGV[4])
local at = 5
for d = 0, 2 do
  local counts, errors = KEYS[2 + 2 * d], KEYS[3 + 2 * d]
  redis.call('HINCRBY', KEYS[1], 'violations' .. d, ARGV[at])
  local n = tonumber(ARGV[at + 1])
  at = at + 2
  for i = 1, n do
    redis.call('ZINCRBY', counts, ARGV[at + 1], ARGV[at])
    if ARGV[at + 2] ~= '0' then redis.call('HINCRBY', errors, ARGV[at], ARGV[at + 2]) end
    at = at + 3
  end
  if n > 0 then
    local over = redis.call('ZCARD', counts) - cap
    if over > 0 then
      local gone = redis.call('ZRANGE', counts, 0, over - 1)
      redis.call('ZREMRANGEBYRANK', counts, 0, over - 1)
      redis.call('HDEL', errors, unpack(gone))
    end
  end
end
return 1
";

const READ: &str = r"
local out = {redis.call('HGETALL', KEYS[1])}
for d = 0, 2 do
  table.insert(out, redis.call('ZREVRANGE', KEYS[2 + 2 * d], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES'))
  table.insert(out, redis.call('HGETALL', KEYS[3 + 2 * d]))
end
return out
";

/// A rules engine's shared state in Redis.
pub struct ControlPlane {
    store: ProcessStore,
    prefix: String,
    put: Script,
    put_rule: Script,
    del_rule: Script,
    del: Script,
    load: Script,
    flush: Script,
    read: Script,
}

/// What the store holds: its version, the rules' specs and the overrides.
pub struct Loaded {
    /// The version key's value.
    pub version: u64,
    /// Every rule, by name, with its place among equal priorities (the order rules were first
    /// added to the store, whichever process added them).
    pub rules: HashMap<String, (RuleSpec, u64)>,
    /// Every override recorded (expired ones included until someone removes them).
    pub overrides: Vec<StoredOverride>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid("store", format!("could not {what}: {e}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    let items: &[Value] = match v {
        Value::Array(items) => items,
        Value::Map(map) => {
            return map
                .iter()
                .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect()
        }
        _ => &[],
    };
    items
        .chunks(2)
        .filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?)))
        .collect()
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        _ => &[],
    }
}

impl ControlPlane {
    /// The control plane under `prefix` of the Redis `config` names; connects on first use.
    pub fn new(config: RedisConfig, prefix: &str) -> Result<Self, Error> {
        Ok(ControlPlane {
            store: ProcessStore::new(config)?,
            prefix: prefix.to_owned(),
            put: Script::new(PUT),
            put_rule: Script::new(PUT_RULE),
            del_rule: Script::new(DEL_RULE),
            del: Script::new(DEL),
            load: Script::new(LOAD),
            flush: Script::new(FLUSH),
            read: Script::new(READ),
        })
    }

    fn key(&self, what: &str) -> String {
        format!("{}{{ctl}}:{what}", self.prefix)
    }

    fn run(
        &self,
        what: &str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, Error> {
        let store = self.store.get();
        runtime::handle()
            .block_on(store.eval(script, keys, args))
            .map_err(|e| failed(what, e))
    }

    fn rule_keys(&self) -> [String; 4] {
        [
            self.key("rules"),
            self.key("version"),
            self.key("places"),
            self.key("place"),
        ]
    }

    /// Writes rule `spec`; the new version and the rule's place among equal priorities.
    pub fn put_rule(&self, spec: &RuleSpec) -> Result<(u64, u64), Error> {
        let json = serde_json::to_string(spec).map_err(|e| failed("write the rule", e))?;
        let v = self.run(
            "write the rule",
            &self.put_rule,
            &self.rule_keys(),
            &[spec.name.clone(), json],
        )?;
        let parts = array(&v);
        let num = |i: usize| parts.get(i).and_then(text).and_then(|t| t.parse().ok());
        match (num(0), num(1)) {
            (Some(version), Some(place)) => Ok((version, place)),
            _ => Err(failed("write the rule", "an unexpected reply")),
        }
    }

    /// Removes rule `name`; whether it was there.
    pub fn remove_rule(&self, name: &str) -> Result<bool, Error> {
        let v = self.run(
            "remove the rule",
            &self.del_rule,
            &self.rule_keys(),
            &[name.to_owned()],
        )?;
        Ok(matches!(v, Value::Int(1)))
    }

    /// A new override number, unique in the store.
    pub fn next_override_id(&self) -> Result<u64, Error> {
        let keys = [self.key("ids")];
        let v = self.run(
            "number the override",
            &Script::new("return redis.call('INCR', KEYS[1])"),
            &keys,
            &[] as &[String],
        )?;
        text(&v)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| failed("number the override", "not a number"))
    }

    fn audit_json(entry: &AuditEntry) -> Result<String, Error> {
        serde_json::to_string(entry).map_err(|e| failed("write the audit entry", e))
    }

    /// Writes override `o` and its audit entry.
    pub fn put_override(&self, o: &StoredOverride, entry: &AuditEntry) -> Result<u64, Error> {
        let json = serde_json::to_string(o).map_err(|e| failed("write the override", e))?;
        let keys = [self.key("ovr"), self.key("version"), self.key("audit")];
        let args = [
            o.override_id.to_string(),
            json,
            Self::audit_json(entry)?,
            AUDIT_ENTRIES.to_string(),
        ];
        let v = self.run("write the override", &self.put, &keys, &args)?;
        Ok(text(&v).and_then(|t| t.parse().ok()).unwrap_or(0))
    }

    /// Removes override `id`, writing `entry` to the audit log if it was there (so that of
    /// several processes ending one override, one logs it); whether it was.
    pub fn remove_override(&self, id: u64, entry: &AuditEntry) -> Result<bool, Error> {
        let keys = [self.key("ovr"), self.key("version"), self.key("audit")];
        let args = [
            id.to_string(),
            Self::audit_json(entry)?,
            AUDIT_ENTRIES.to_string(),
        ];
        let v = self.run("remove the override", &self.del, &keys, &args)?;
        Ok(matches!(v, Value::Int(1)))
    }

    /// The version key's value (0 before any change).
    pub fn version(&self) -> Result<u64, Error> {
        let v = self.run(
            "read the version",
            &Script::new("return redis.call('GET', KEYS[1]) or '0'"),
            &[self.key("version")],
            &[] as &[String],
        )?;
        Ok(text(&v).and_then(|t| t.parse().ok()).unwrap_or(0))
    }

    /// Everything the store holds. A record that does not parse (written by another version of
    /// seawall) is skipped, not fatal.
    pub fn load(&self) -> Result<Loaded, Error> {
        let keys = [
            self.key("version"),
            self.key("rules"),
            self.key("ovr"),
            self.key("places"),
        ];
        let v = self.run("read the rules", &self.load, &keys, &[] as &[String])?;
        let parts = array(&v);
        let version = parts
            .first()
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let places: HashMap<String, u64> = parts
            .get(3)
            .map(pairs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, n)| Some((name, n.parse().ok()?)))
            .collect();
        let rules = parts
            .get(1)
            .map(pairs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, json)| {
                let place = places.get(&name).copied().unwrap_or(u64::MAX / 2);
                Some((name, (serde_json::from_str(&json).ok()?, place)))
            })
            .collect();
        let overrides = parts
            .get(2)
            .map(pairs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect();
        Ok(Loaded {
            version,
            rules,
            overrides,
        })
    }

    /// The last `limit` audit entries, oldest first, as the JSON values they were written as.
    pub fn audit(&self, limit: usize) -> Result<Vec<serde_json::Value>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let v = self.run(
            "read the audit log",
            &Script::new("return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)"),
            &[self.key("audit")],
            &[limit.to_string()],
        )?;
        let mut out: Vec<serde_json::Value> = array(&v)
            .iter()
            .filter_map(text)
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    fn metric_keys(&self, rule: &str) -> Vec<String> {
        // The rule's name is length-prefixed: no name can run into another's keys.
        let base = format!("m:{}:{rule}", rule.len());
        let mut keys = vec![self.key(&base)];
        for d in ["user", "ip", "endpoint"] {
            keys.push(self.key(&format!("{base}:{d}")));
            keys.push(self.key(&format!("{base}:{d}:err")));
        }
        keys
    }

    /// Adds `delta` (what this process counted since its last flush) to rule `rule`'s totals.
    pub fn flush(&self, rule: &str, delta: &RuleMetricsSnapshot) -> Result<(), Error> {
        let sum = delta.avg_tokens_remaining * delta.total_requests as f64;
        let mut args = vec![
            delta.allowed_requests.to_string(),
            delta.denied_requests.to_string(),
            format!("{sum}"),
            DEFAULT_VIOLATIONS_CAPACITY.to_string(),
        ];
        for top in [
            &delta.violations_by_user,
            &delta.violations_by_ip,
            &delta.violations_by_endpoint,
        ] {
            args.push(top.total.to_string());
            args.push(top.entries.len().to_string());
            for e in &top.entries {
                args.push(e.key.clone());
                args.push(e.count.to_string());
                args.push(e.error.to_string());
            }
        }
        self.run(
            "add the metrics",
            &self.flush,
            &self.metric_keys(rule),
            &args,
        )
        .map(|_| ())
    }

    /// Rule `rule`'s totals over every process.
    pub fn metrics(&self, rule: &str) -> Result<RuleMetricsSnapshot, Error> {
        let cap = DEFAULT_VIOLATIONS_CAPACITY;
        let v = self.run(
            "read the metrics",
            &self.read,
            &self.metric_keys(rule),
            &[cap.to_string()],
        )?;
        let parts = array(&v);
        let counters: HashMap<String, String> = parts
            .first()
            .map(pairs)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let num =
            |name: &str| -> u64 { counters.get(name).and_then(|t| t.parse().ok()).unwrap_or(0) };
        let allowed = num("allowed");
        let denied = num("denied");
        let total = allowed + denied;
        let sum: f64 = counters
            .get("remaining")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0);
        let top = |d: usize| -> TopKSnapshot<String> {
            let counts = parts.get(1 + 2 * d).map(pairs).unwrap_or_default();
            let errors: HashMap<String, u64> = parts
                .get(2 + 2 * d)
                .map(pairs)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect();
            let entries: Vec<Entry<String>> = counts
                .into_iter()
                .map(|(key, count)| Entry {
                    count: count.parse::<f64>().unwrap_or(0.0) as u64,
                    error: errors.get(&key).copied().unwrap_or(0),
                    key,
                })
                .collect();
            let total = num(&format!("violations{d}"));
            let certain: u64 = entries.iter().map(Entry::guaranteed).sum();
            TopKSnapshot {
                other: total.saturating_sub(certain),
                entries,
                total,
                capacity: cap,
            }
        };
        Ok(RuleMetricsSnapshot {
            total_requests: total,
            allowed_requests: allowed,
            denied_requests: denied,
            hit_rate: if total == 0 {
                0.0
            } else {
                denied as f64 / total as f64
            },
            avg_tokens_remaining: if total == 0 { 0.0 } else { sum / total as f64 },
            violations_by_user: top(0),
            violations_by_ip: top(1),
            violations_by_endpoint: top(2),
        })
    }

    /// Zeroes rule `rule`'s totals (its budgets stay as they are).
    pub fn reset_metrics(&self, rule: &str) -> Result<(), Error> {
        self.run(
            "reset the metrics",
            &Script::new("return redis.call('DEL', unpack(KEYS))"),
            &self.metric_keys(rule),
            &[] as &[String],
        )
        .map(|_| ())
    }
}
