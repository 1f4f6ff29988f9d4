//! The decision script ([`decide.lua`](DECIDE_LUA)) as the Rust side speaks it: how a key's
//! limits are encoded ([`LimitScript`]) and one script call for a batch of decisions
//! ([`packed_batch`]); how the call names the script is [`super::invoke`]'s, what it answers
//! [`super::reply`]'s.
//!
//! Every seawall script starts with the same time prelude (`now.lua`: the caller's time, or the
//! server's `TIME`), prepended at build time, so each script's SHA is fixed per build.

use redis::{Cmd, Script};

use super::invoke::{decide_function, Invoke};
use super::resp::{decimal, resp_bulk, resp_len};
use crate::clock::NANOS_PER_SEC;
use crate::error::Error;
use crate::limiter::limit::{AlgorithmKind, LimitSet, Params};

pub use super::reply::{parse_reply, Reply};

/// The decision script's source for `EVAL`: the time prelude, `decide.lua`, and its call.
pub const DECIDE_LUA: &str = concat!(
    include_str!("now.lua"),
    include_str!("decide.lua"),
    "\nreturn decide_batch(KEYS, ARGV)\n"
);

/// The shared breaker's script source: the time prelude, then `src/breaker/shared.lua`.
pub const BREAKER_LUA: &str = concat!(
    include_str!("now.lua"),
    include_str!("../../breaker/shared.lua")
);

/// The decision script's SHA-1, as `EVALSHA` names it.
pub fn decide_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| Script::new(DECIDE_LUA).get_hash().to_owned())
}

/// Lua numbers are doubles: integers are exact below 2^53.
const LUA_EXACT: u128 = 1 << 53;
const MICROS_PER_SEC: u64 = 1_000_000;

/// One limit as the script takes it.
#[derive(Clone)]
struct Encoded {
    /// `b` bucket, `f` fixed window, `l` sliding log, `c` sliding counter.
    kind: &'static str,
    params: [u64; 3],
    /// The key suffix: the algorithm and limit, so that a changed configuration starts afresh.
    suffix: String,
    /// A sliding log keeps its running total in a second key.
    log: bool,
}

/// A key's limits encoded for the script: the Redis keys of a client key and the script's
/// arguments for one decision.
pub struct LimitScript {
    prefix: String,
    limits: Vec<Encoded>,
}

impl LimitScript {
    /// Encodes `limits` under key prefix `prefix`; an error names a limit the script cannot
    /// keep exactly, or a prefix with a brace (the key's hash tag follows it).
    pub fn new(limits: &LimitSet, prefix: &str) -> Result<Self, Error> {
        if prefix.contains(['{', '}']) {
            return Err(Error::invalid(
                "key_prefix",
                format!("must not contain '{{' or '}}', got {prefix:?}"),
            ));
        }
        let mut encoded: Vec<Encoded> = limits
            .limits()
            .iter()
            .map(|l| {
                let spec = l.spec();
                let mut suffix = format!(
                    "{}:{}/{}s",
                    l.kind().name(),
                    spec.count,
                    spec.period / NANOS_PER_SEC
                );
                if let Some(b) = l.burst() {
                    suffix.push_str(&format!(":b{b}"));
                }
                let too_fine = |why: String| {
                    Error::invalid(
                        "limits",
                        format!("{l} cannot be kept exactly in Redis ({why}); use a coarser limit"),
                    )
                };
                if spec.period % 1000 != 0 {
                    return Err(too_fine("its period is not a whole number of µs".into()));
                }
                let window_us = spec.period / 1000;
                let (kind, params) = match l.params() {
                    Params::Bucket { capacity, num, den } => {
                        let unit = u128::from(den) * u128::from(MICROS_PER_SEC);
                        if num == 0 || u128::from(capacity) * unit >= LUA_EXACT {
                            return Err(too_fine(format!(
                                "capacity {capacity} × {unit} units per token reaches 2^53"
                            )));
                        }
                        ("b", [capacity, num, unit as u64])
                    }
                    Params::Window { limit, .. } => {
                        let kind = match l.kind() {
                            AlgorithmKind::FixedWindow => "f",
                            AlgorithmKind::SlidingLog => "l",
                            _ => "c",
                        };
                        // limit × window and its neighbours must stay exact.
                        if u128::from(limit + 1) * u128::from(window_us) * 2 >= LUA_EXACT {
                            return Err(too_fine(format!("{limit} × {window_us} µs reaches 2^53")));
                        }
                        (kind, [limit, window_us, 0])
                    }
                };
                Ok(Encoded {
                    kind,
                    params,
                    log: kind == "l",
                    suffix,
                })
            })
            .collect::<Result<_, Error>>()?;
        // A limit written twice is two limits in memory (each counts every request); here each
        // needs its own key too, or one key would count every request twice.
        for i in 1..encoded.len() {
            let same = encoded[..i]
                .iter()
                .filter(|t| t.suffix.split('#').next() == Some(encoded[i].suffix.as_str()))
                .count();
            if same > 0 {
                encoded[i].suffix = format!("{}#{same}", encoded[i].suffix);
            }
        }
        Ok(LimitScript {
            prefix: prefix.to_owned(),
            limits: encoded,
        })
    }

    /// Every Redis key that holds `key`'s state, in the order the script takes them:
    /// `{prefix}{<tag>}:<limit>` per limit (see [`key_head`] for the tag), and a sliding log's
    /// running total at `…:<limit>:total` right after it.
    pub fn keys(&self, key: &str) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.limits.len() + 1);
        self.push_keys(&key_head(&self.prefix, key), &mut keys);
        keys
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many limits there are.
    pub fn len(&self) -> usize {
        self.limits.len()
    }

    /// Whether there are no limits (never, for a script made from a [`LimitSet`]).
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Pushes the Redis keys of these limits under `head` (`<head>:<limit>` per limit, and a
    /// sliding log's total after it) on `keys`.
    fn push_keys(&self, head: &str, keys: &mut Vec<String>) {
        for t in &self.limits {
            let mut k = String::with_capacity(head.len() + 1 + t.suffix.len() + 6);
            k.push_str(head);
            k.push(':');
            k.push_str(&t.suffix);
            if t.log {
                let total = format!("{k}:total");
                keys.push(k);
                keys.push(total);
            } else {
                keys.push(k);
            }
        }
    }

    /// The script call for one decision on `key`: `cost` against every limit, counted only if
    /// `commit` and all admit it; at `now_us` (None: the server's TIME).
    pub fn request(&self, key: &str, cost: u64, commit: bool, now_us: Option<u64>) -> Request {
        let head = key_head(&self.prefix, key);
        joined_request(&[(self, head.as_str())], cost, commit, now_us)
    }
}

impl LimitScript {
    /// The script call that tests one unit against limit `i` alone for `key`, counting nothing
    /// (its keys are those [`LimitScript::keys`] gives limit `i`): what that limit holds.
    pub fn usage_request(&self, i: usize, key: &str, now_us: Option<u64>) -> Request {
        let one = LimitScript {
            prefix: self.prefix.clone(),
            limits: vec![self.limits[i].clone()],
        };
        one.request(key, 1, false, now_us)
    }
}

/// The script call for one decision across the limits of several parts, all or nothing: each
/// part is a [`LimitScript`] and the head its keys start with (see [`LimitScript::keys`] for one
/// client key's; a caller that joins parts makes heads that share one Cluster hash tag). The
/// reply's binding index counts the limits of all parts, in order.
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::store::redis::script::{joined_request, LimitScript};
///
/// let set = |t| LimitSet::parse(t, AlgorithmKind::Gcra).unwrap();
/// let global = LimitScript::new(&set("100/second"), "app:").unwrap();
/// let client = LimitScript::new(&set("5/minute; 100/day"), "app:").unwrap();
/// let r = joined_request(&[(&global, "app:{g}"), (&client, "app:{g}:c")], 1, true, None);
/// assert_eq!(r.keys().len(), 3);
/// assert!(r.keys().iter().all(|k| k.starts_with("app:{g}")));
/// ```
pub fn joined_request(
    parts: &[(&LimitScript, &str)],
    cost: u64,
    commit: bool,
    now_us: Option<u64>,
) -> Request {
    let count: usize = parts.iter().map(|(s, _)| s.limits.len()).sum();
    let mut args = Vec::with_capacity(3 + 4 * count);
    args.push(if commit { "1" } else { "0" }.to_owned());
    args.push(cost.to_string());
    args.push(count.to_string());
    let mut keys = Vec::with_capacity(count + 1);
    for (script, head) in parts {
        for t in &script.limits {
            args.push(t.kind.to_owned());
            args.extend(t.params.iter().map(u64::to_string));
        }
        script.push_keys(head, &mut keys);
    }
    Request { keys, args, now_us }
}

/// The start of every Redis key of client key `key`: `prefix{key}`, or `prefix{<escaped>}%` for
/// a key that could not stand in a Cluster hash tag as it is.
///
/// Redis Cluster hashes only the bytes between the first `{` and the first `}` after it, if
/// there are any (the prefix holds no brace). A key that is empty or holds a `}` would leave
/// that tag empty or cut it short, so one decision's keys would land in different slots (and
/// the script be refused with CROSSSLOT). Such a key is written percent-escaped inside the tag
/// (`%` → `%25`, `{` → `%7B`, `}` → `%7D`; the empty key as a lone `%`, which escaping never
/// produces) and marked by a `%` right after the tag. Every other key is written as it is, so
/// keys that always worked keep their layout (and their state across an upgrade), and a
/// percent-encoded key is not escaped twice. The form is injective: the tag holds no `}`, so
/// the tag ends at the first `}`, the byte after it (`%` or `:`) says which form the tag is in,
/// and each form is injective on its own.
pub fn key_head(prefix: &str, key: &str) -> String {
    let mut head = String::with_capacity(prefix.len() + key.len() + 4);
    head.push_str(prefix);
    head.push('{');
    if !key.is_empty() && !key.contains('}') {
        head.push_str(key);
        head.push('}');
        return head;
    }
    if key.is_empty() {
        head.push('%');
    }
    for c in key.chars() {
        match c {
            '%' => head.push_str("%25"),
            '{' => head.push_str("%7B"),
            '}' => head.push_str("%7D"),
            c => head.push(c),
        }
    }
    head.push_str("}%");
    head
}

/// One decision's part of a script call: its KEYS and its part of ARGV (see `decide.lua`).
#[derive(Debug, Clone)]
pub struct Request {
    keys: Vec<String>,
    args: Vec<String>,
    /// The time to send, in µs (None: Redis's TIME).
    now_us: Option<u64>,
}

impl Request {
    /// Whether `self` and `other` are decided at the same time (both on Redis's clock, or at the
    /// same caller-given time), so that one script call can make both.
    pub fn same_time(&self, other: &Request) -> bool {
        self.now_us == other.now_us
    }

    /// The Redis keys this decision reads and writes.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// The script's KEYS and ARGV for `batch`.
pub fn script_input<'a>(batch: &[&'a Request]) -> (Vec<&'a str>, Vec<&'a str>, [String; 2]) {
    let keys = batch
        .iter()
        .flat_map(|r| r.keys.iter().map(String::as_str))
        .collect();
    let args = batch
        .iter()
        .flat_map(|r| r.args.iter().map(String::as_str))
        .collect();
    let head = [
        batch.len().to_string(),
        batch
            .first()
            .and_then(|r| r.now_us)
            .map_or_else(String::new, |n| n.to_string()),
    ];
    (keys, args, head)
}

/// One script call making every decision of `batch`, in order, the script named as `how`
/// says (the `FUNCTION LOAD` that [`Invoke::Loaded`] needs is the caller's). They must share
/// one time ([`Request::same_time`]).
pub fn batch_command(batch: &[&Request], how: Invoke) -> Cmd {
    let mut cmd = match how {
        Invoke::Function | Invoke::Loaded => {
            let mut c = redis::cmd("FCALL");
            c.arg(decide_function());
            c
        }
        Invoke::Hash => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(decide_hash());
            c
        }
        Invoke::Source => {
            let mut c = redis::cmd("EVAL");
            c.arg(DECIDE_LUA);
            c
        }
    };
    let (keys, args, head) = script_input(batch);
    cmd.arg(keys.len());
    for k in keys {
        cmd.arg(k);
    }
    cmd.arg(&head[0]).arg(&head[1]);
    for a in args {
        cmd.arg(a);
    }
    cmd
}

/// [`batch_command`] as bytes on the wire, written directly (the direct connections' path:
/// without the `Cmd` and the copy out of it, a third of the time).
///
/// ```
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
/// use seawall::store::redis::invoke::Invoke;
/// use seawall::store::redis::script::{batch_command, packed_batch, LimitScript};
///
/// let set = LimitSet::parse("5/minute; 100/day", AlgorithmKind::Gcra).unwrap();
/// let s = LimitScript::new(&set, "app:").unwrap();
/// let (a, b) = (s.request("a", 1, true, None), s.request("b", 2, false, None));
/// let packed = packed_batch(&[&a, &b], Invoke::Function);
/// assert_eq!(packed, batch_command(&[&a, &b], Invoke::Function).get_packed_command());
/// ```
pub fn packed_batch(batch: &[&Request], how: Invoke) -> Vec<u8> {
    let (verb, name) = match how {
        Invoke::Function | Invoke::Loaded => ("FCALL", decide_function()),
        Invoke::Hash => ("EVALSHA", decide_hash()),
        Invoke::Source => ("EVAL", DECIDE_LUA),
    };
    let strings = || batch.iter().flat_map(|r| r.keys.iter().chain(&r.args));
    let keys: usize = batch.iter().map(|r| r.keys.len()).sum();
    let size: usize = strings().map(|a| a.len() + 16).sum::<usize>() + name.len() + 96;
    let mut out = Vec::with_capacity(size);
    let now = batch.first().and_then(|r| r.now_us);
    let args: usize = batch.iter().map(|r| r.args.len()).sum();
    // The verb, the script's name, the number of keys, the keys, the batch's two head
    // arguments (decisions, time), then every decision's arguments.
    resp_len(&mut out, b'*', 3 + keys + 2 + args);
    resp_bulk(&mut out, verb.as_bytes());
    resp_bulk(&mut out, name.as_bytes());
    resp_bulk(&mut out, decimal(keys as u64).as_ref());
    for k in batch.iter().flat_map(|r| &r.keys) {
        resp_bulk(&mut out, k.as_bytes());
    }
    resp_bulk(&mut out, decimal(batch.len() as u64).as_ref());
    match now {
        Some(n) => resp_bulk(&mut out, decimal(n).as_ref()),
        None => resp_bulk(&mut out, b""),
    }
    for a in batch.iter().flat_map(|r| &r.args) {
        resp_bulk(&mut out, a.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_decision_s_arguments_are_the_script_s_argv() {
        let set = LimitSet::parse("5/minute; 2/second", AlgorithmKind::FixedWindow).unwrap();
        let s = LimitScript::new(&set, "p:").unwrap();
        let (a, b) = (
            s.request("k", 3, true, None),
            s.request("j", 1, false, None),
        );
        let (keys, args, head) = script_input(&[&a, &b]);
        assert_eq!(
            keys,
            [
                "p:{k}:fixed_window:5/60s",
                "p:{k}:fixed_window:2/1s",
                "p:{j}:fixed_window:5/60s",
                "p:{j}:fixed_window:2/1s"
            ]
        );
        assert_eq!(head, ["2".to_owned(), String::new()]);
        let one = ["f", "5", "60000000", "0", "f", "2", "1000000", "0"];
        let want: Vec<&str> = ["1", "3", "2"]
            .into_iter()
            .chain(one)
            .chain(["0", "1", "2"])
            .chain(one)
            .collect();
        assert_eq!(args, want);
    }

    proptest! {
        #[test]
        fn packed_batch_is_the_command_redis_rs_packs(
            limits in prop::sample::select(vec!["5/minute", "3/second; 100/hour", "10/day"]),
            algorithm in prop::sample::select(vec![
                AlgorithmKind::Gcra, AlgorithmKind::FixedWindow, AlgorithmKind::SlidingLog,
            ]),
            asks in prop::collection::vec((".{0,12}", 0u64..1 << 40, any::<bool>()), 1..4),
            now in prop::option::of(any::<u64>()),
        ) {
            let set = LimitSet::parse(limits, algorithm).unwrap();
            let s = LimitScript::new(&set, "p:").unwrap();
            let requests: Vec<Request> =
                asks.iter().map(|(k, cost, commit)| s.request(k, *cost, *commit, now)).collect();
            let batch: Vec<&Request> = requests.iter().collect();
            for how in [Invoke::Function, Invoke::Loaded, Invoke::Hash, Invoke::Source] {
                prop_assert_eq!(
                    packed_batch(&batch, how),
                    batch_command(&batch, how).get_packed_command()
                );
            }
        }
    }
}
