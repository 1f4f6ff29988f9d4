//! Everything per HTTP request that can be done without Python: who the client is, which limits
//! apply, the decision, and the response headers and 429 body as bytes.
//!
//! The ASGI middleware hands over the request once ([`RequestView`]) and gets back an
//! [`Outcome`]: pass through untouched, allowed with headers to add, or denied with the whole 429.
//!
//! (Over 450 lines: ~750 of code, the request policy in one place; the rules and routes could
//! move to their own file in a later change. The rest is its unit tests.)

pub mod client_ip;
pub mod counters;
pub mod key_text;
pub mod redis_budgets;
pub mod render;

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use subtle::ConstantTimeEq;
use wildmatch::WildMatch;

use crate::algorithm::Decision;
use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::all_or_nothing::{binding, decide_all};
use crate::limiter::key_states::KeyStates;
use crate::limiter::limit::{LimitDecision, LimitSet};
use crate::limiter::memory_limiter::Limiter;
use crate::store::memory::{Keyed, MemoryStore};
pub use client_ip::ProxyHeader;
use client_ip::{client_ip, Proxies};
use key_text::KeyText;
pub use render::{HeaderStyle, Headers};

/// A request as the middleware sees it. Header names are lower-case, as ASGI delivers them.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The peer address (ASGI `client[0]`), if any.
    pub peer: Option<&'a str>,
    /// The headers.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The path.
    pub path: &'a str,
    /// The method.
    pub method: &'a str,
    /// The raw query string.
    pub query: &'a [u8],
}

impl RequestView<'_> {
    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    }

    fn query_param(&self, name: &str) -> Option<Vec<u8>> {
        self.query.split(|&b| b == b'&').find_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (percent_decode(k) == name.as_bytes())
                .then(|| percent_decode(v))
                .filter(|v| !v.is_empty())
        })
    }
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Where a client's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client address (after trusted proxies), IPv6 grouped by prefix.
    Ip,
    /// A request header (lower-case name); `Authorization` is always hashed.
    Header(Vec<u8>),
    /// A query parameter.
    Query(String),
    /// The MCP session header, `Mcp-Session-Id`, but only for ids the server issued (see
    /// [`IssuedSessions`]); any other request is keyed by its address.
    McpSession,
    /// A field of a JSON-RPC body, by dotted path (`params._client_id`).
    JsonRpc(Vec<String>),
}

impl std::str::FromStr for KeySource {
    type Err = Error;

    /// ```
    /// use seawall::http::KeySource;
    ///
    /// assert_eq!("header:X-Client-ID".parse::<KeySource>().unwrap(), KeySource::Header(b"x-client-id".to_vec()));
    /// assert!("cookie:x".parse::<KeySource>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(
                "key",
                format!(
                    "must be 'ip', 'header:<name>', 'query:<name>', 'mcp-session' or \
                     'jsonrpc:<dotted.path>', got '{s}'"
                ),
            )
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.trim(), Some(a.trim()).filter(|a| !a.is_empty())),
            None => (s.trim(), None),
        };
        Ok(match (kind.to_ascii_lowercase().as_str(), arg) {
            ("ip", None) => KeySource::Ip,
            ("mcp-session" | "mcp_session", None) => KeySource::McpSession,
            ("header", Some(a)) => KeySource::Header(a.to_ascii_lowercase().into_bytes()),
            ("query", Some(a)) => KeySource::Query(a.to_string()),
            ("jsonrpc", Some(a)) => KeySource::JsonRpc(a.split('.').map(str::to_string).collect()),
            _ => return Err(bad()),
        })
    }
}

/// A route rule: requests whose path matches (and method, if given) are held to `limits` per
/// client instead of the default.
pub struct Rule {
    name: String,
    /// The pattern as written.
    source: String,
    pattern: Pattern,
    methods: Option<Vec<String>>,
    limits: LimitSet,
}

enum Pattern {
    Exact(String),
    Glob(WildMatch),
}

impl Pattern {
    fn new(text: &str) -> Self {
        if text.contains(['*', '?']) {
            Pattern::Glob(WildMatch::new(text))
        } else {
            Pattern::Exact(text.to_string())
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == path,
            Pattern::Glob(g) => g.matches(path),
        }
    }
}

impl Rule {
    /// `limits` per client on paths matching `pattern` (exact, or a glob with `*` and `?`), for
    /// `methods` (all if `None`). `name` labels it in the `RateLimit-Policy` header.
    ///
    /// A pattern must start with `/` or `*` (an ASGI path always starts with `/`, so any other
    /// pattern would never match), and `methods`, when given, must name at least one. A rule for
    /// `GET` holds `HEAD` too, with the same budget: frameworks (Starlette, FastAPI) answer
    /// `HEAD` with the `GET` handler, so leaving it out would let a client run the handler
    /// unlimited.
    pub fn new(
        pattern: &str,
        limits: LimitSet,
        methods: Option<Vec<String>>,
        name: Option<String>,
    ) -> Result<Self, Error> {
        if !(pattern.starts_with('/') || pattern.starts_with('*')) {
            return Err(Error::invalid(
                "path",
                format!(
                    "must start with '/' (or '*' for a glob): request paths always do, so \
                     '{pattern}' would never match"
                ),
            ));
        }
        let methods = match methods {
            Some(m) if m.is_empty() => {
                return Err(Error::invalid(
                    "methods",
                    "must name at least one HTTP method, or be None for all of them",
                ))
            }
            Some(m) => {
                let mut m: Vec<String> = m.iter().map(|m| m.trim().to_ascii_uppercase()).collect();
                if m.iter().any(|m| m == "GET") && !m.iter().any(|m| m == "HEAD") {
                    m.push("HEAD".to_string());
                }
                Some(m)
            }
            None => None,
        };
        Ok(Rule {
            name: name.unwrap_or_else(|| pattern.to_string()),
            source: pattern.to_string(),
            pattern: Pattern::new(pattern),
            methods,
            limits,
        })
    }

    fn applies(&self, req: &RequestView<'_>) -> bool {
        self.pattern.matches(req.path)
            && self
                .methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m.eq_ignore_ascii_case(req.method)))
    }
}

/// Every per-client budget of a middleware (each rule's and the default limits') in one bounded
/// store, so that `max_keys` bounds the middleware as a whole and the room goes wherever the
/// clients are. Within the store a client key is tagged with its budget (one byte when there are
/// fewer than 128 budgets), so a client's budgets on two routes are two keys.
///
/// ```
/// use seawall::http::{Routes, Rule};
/// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
///
/// let set = |t| LimitSet::parse(t, AlgorithmKind::Gcra).unwrap();
/// let rules = vec![Rule::new("/login", set("1/minute"), None, None).unwrap()];
/// let routes = Routes::new(rules, Some(set("5/minute")), 1000);
/// assert_eq!(routes.budgets(), 2);
/// assert!(routes.hit(0, "ip:192.0.2.1", 0).unwrap().decision.allowed);
/// assert!(!routes.hit(0, "ip:192.0.2.1", 0).unwrap().decision.allowed);
/// assert!(routes.hit(1, "ip:192.0.2.1", 0).unwrap().decision.allowed);
/// assert_eq!(routes.len(), 2);
/// ```
pub struct Routes {
    rules: Vec<Rule>,
    /// The default limits' budget index (after the rules'), if there are default limits.
    default: Option<usize>,
    tags: Vec<String>,
    store: MemoryStore<Budgets>,
    /// Per budget, then one for requests only the global limits apply to.
    counters: Box<[counters::RouteCounters]>,
}

/// The limit sets of every budget, as the store's parameters.
#[derive(Clone, PartialEq)]
struct Budgets(Arc<[LimitSet]>);

/// One key's state: its budget and that budget's tier states; `None` while fresh. Boxed, so that
/// a store entry keeps to one cache line.
#[derive(Clone)]
struct Tagged {
    budget: usize,
    tiers: KeyStates,
}

impl Keyed for Budgets {
    type State = Option<Box<Tagged>>;

    fn fresh(&self, _now: Nanos) -> Self::State {
        None
    }

    fn is_fresh(&self, state: &Self::State, now: Nanos) -> bool {
        state
            .as_ref()
            .is_none_or(|t| self.0[t.budget].is_fresh(&t.tiers, now))
    }

    fn eviction_rank(&self, state: &Self::State, now: Nanos) -> (Nanos, u128) {
        match state {
            Some(t) => self.0[t.budget].eviction_rank(&t.tiers, now),
            None => (now, 0),
        }
    }

    fn rebase(&self, _old: &Self, state: &Self::State, _now: Nanos) -> Self::State {
        state.clone()
    }
}

/// Keys up to this long are tagged on the stack, without allocating.
const TAGGED_ON_STACK: usize = 128;

impl Routes {
    /// `rules` (first match wins) and the `default` limits for requests no rule matches, holding
    /// at most `max_keys` keys in all.
    pub fn new(rules: Vec<Rule>, default: Option<LimitSet>, max_keys: usize) -> Self {
        let mut sets: Vec<LimitSet> = rules.iter().map(|r| r.limits.clone()).collect();
        let default = default.map(|d| {
            sets.push(d);
            sets.len() - 1
        });
        let tags = (0..sets.len())
            .map(|i| match u8::try_from(i) {
                Ok(b) if sets.len() < 128 => char::from(b).to_string(),
                _ => format!("{i}|"),
            })
            .collect();
        Routes {
            rules,
            default,
            tags,
            counters: (0..=sets.len()).map(|_| Default::default()).collect(),
            store: MemoryStore::new(Budgets(sets.into()), max_keys),
        }
    }

    /// Each budget's limits and a name for it that stays the same while its rule does (for keys
    /// kept outside this process): `r` and 16 hex digits of the SHA-256 of the rule's pattern
    /// and methods, or `d` for the default limits. A rule moved up or down keeps its budget.
    pub fn budget_ids(&self) -> Vec<(LimitSet, String)> {
        let mut out: Vec<(LimitSet, String)> = self
            .rules
            .iter()
            .map(|r| {
                let mut text = r.source.clone();
                text.push('\n');
                if let Some(m) = &r.methods {
                    text.push_str(&m.join(","));
                }
                (
                    r.limits.clone(),
                    format!("r{}", &sha256_hex(text.as_bytes())[..16]),
                )
            })
            .collect();
        if let Some(d) = self.default {
            out.push((self.store.default_config().0[d].clone(), "d".to_string()));
        }
        out
    }

    /// How many budgets there are (rules, plus the default limits if any).
    pub fn budgets(&self) -> usize {
        self.tags.len()
    }

    /// The budget a request spends and its policy name: the first matching rule's, else the
    /// default limits'.
    fn route(&self, req: &RequestView<'_>) -> Option<(usize, &str)> {
        match self.rules.iter().position(|r| r.applies(req)) {
            Some(i) => Some((i, self.rules[i].name.as_str())),
            None => self.default.map(|d| (d, "default")),
        }
    }

    /// Runs `f` with `key` tagged with `budget`.
    #[inline]
    fn tagged<R>(&self, budget: usize, key: &str, f: impl FnOnce(&str) -> R) -> R {
        let mut tagged = KeyText::<TAGGED_ON_STACK>::new();
        tagged.push_str(&self.tags[budget]);
        tagged.push_str(key);
        f(&tagged)
    }

    /// Decides one request of `key` against `budget` and counts it if admitted.
    pub fn hit(&self, budget: usize, key: &str, now: Nanos) -> Result<LimitDecision, Error> {
        self.tagged(budget, key, |tagged| {
            self.store.try_update(tagged, now, |sets, state, stats| {
                let set = &sets.0[budget];
                set.check_cost(1)?;
                let t = state.get_or_insert_with(|| {
                    Box::new(Tagged {
                        budget,
                        tiers: set.fresh(now),
                    })
                });
                let (decision, i, binding_reset_after) =
                    t.tiers.with_mut(|tiers| set.decide(tiers, now, 1, true));
                stats.record(decision.allowed, now);
                Ok(LimitDecision {
                    decision,
                    binding: set.limits()[i].spec(),
                    binding_reset_after,
                })
            })
        })
    }

    /// What [`Routes::hit`] would decide, changing nothing and creating no key.
    pub fn test(&self, budget: usize, key: &str, now: Nanos) -> Result<LimitDecision, Error> {
        self.tagged(budget, key, |tagged| {
            self.store.read(tagged, now, |sets, state, _| {
                let set = &sets.0[budget];
                set.check_cost(1)?;
                let mut scratch = match state {
                    Some(t) => t.tiers.clone(),
                    None => set.fresh(now),
                };
                let (decision, i, binding_reset_after) =
                    scratch.with_mut(|tiers| set.decide(tiers, now, 1, false));
                Ok(LimitDecision {
                    decision,
                    binding: set.limits()[i].spec(),
                    binding_reset_after,
                })
            })
        })
    }

    /// Forgets `key` in every budget.
    pub fn reset(&self, key: &str, now: Nanos) {
        for budget in 0..self.budgets() {
            self.tagged(budget, key, |tagged| self.store.reset(tagged, now));
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

/// The MCP session ids a server issued, learnt from the `mcp-session-id` header of its
/// responses: at most `capacity`, the oldest forgotten first. A session key is used only for an
/// id found here, so a client cannot get a fresh budget by writing a new `Mcp-Session-Id` of
/// its own (servers that issue no sessions — stateless, or 2026-07-28-style connections — never
/// add any). Ids are kept as 64-bit hashes under a per-process random seed, about 30 bytes each.
///
/// ```
/// use seawall::http::IssuedSessions;
///
/// let sessions = IssuedSessions::new(2);
/// sessions.issue(b"a");
/// sessions.issue(b"b");
/// sessions.issue(b"c");
/// assert!(!sessions.issued(b"a") && sessions.issued(b"b") && sessions.issued(b"c"));
/// ```
pub struct IssuedSessions {
    hasher: foldhash::fast::RandomState,
    capacity: usize,
    inner: Mutex<(HashSet<u64>, VecDeque<u64>)>,
}

impl IssuedSessions {
    /// Remembers at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        IssuedSessions {
            hasher: foldhash::fast::RandomState::default(),
            capacity: capacity.max(1),
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Records an id the server issued.
    pub fn issue(&self, id: &[u8]) {
        if id.is_empty() {
            return;
        }
        let h = self.hasher.hash_one(id);
        let mut guard = self.inner.lock();
        let (set, order) = &mut *guard;
        if set.insert(h) {
            order.push_back(h);
            if order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether the server issued `id` (and it is still remembered).
    pub fn issued(&self, id: &[u8]) -> bool {
        let h = self.hasher.hash_one(id);
        self.inner.lock().0.contains(&h)
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().1.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The middleware's whole configuration.
pub struct HttpPolicy {
    /// Where keys come from.
    pub key_source: KeySource,
    /// Trusted proxies.
    pub proxies: Proxies,
    /// The one header trusted proxies report the client in.
    pub proxy_header: ProxyHeader,
    /// MCP session ids the server issued (used by [`KeySource::McpSession`]).
    pub sessions: IssuedSessions,
    /// IPv6 clients are grouped by this prefix.
    pub ipv6_prefix: u8,
    /// Longer keys are replaced by their SHA-256.
    pub max_key_length: usize,
    /// Never limited, by client address.
    pub exempt_ips: Proxies,
    /// Never limited, by client id.
    pub exempt_clients: Vec<String>,
    /// Internal-service bypass: (lower-case header name, secret).
    pub bypass: Option<(Vec<u8>, Vec<u8>)>,
    /// One budget for everyone.
    pub global: Option<Limiter>,
    /// Per client: the route rules (first match wins) and the default limits where none
    /// matches.
    pub routes: Routes,
    /// Which rate-limit headers to render.
    pub headers: HeaderStyle,
    /// Where the budgets are decided when not in this process: Redis (then `global` and
    /// `routes` are the `on_error="local"` fallback).
    pub redis: Option<redis_budgets::RedisBudgets>,
    /// Or this machine's shared memory: the route budgets in order, then the global limits'
    /// (then `global` and `routes` only name the budgets).
    pub host: Option<crate::store::host::HostBudgets>,
    /// The client keys refused most (429s; not 503s), in this process.
    pub top_limited: crate::metrics::top_limited::TopLimited,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not limited: call the app untouched.
    Pass,
    /// Admitted: call the app, adding these headers to its response.
    Allowed(Headers),
    /// Limited: answer 429 with these headers and body; do not call the app.
    Limited(Headers, Vec<u8>),
    /// The store cannot decide and the policy is to refuse (`on_error="deny"`): answer 503
    /// with these headers (`Retry-After`, no rate-limit headers) and body; do not call the app.
    Unavailable(Headers, Vec<u8>),
}

/// The budgets a request spends: the key it is counted under, the route budget (a rule's or
/// the default limits'), and whether the global limits apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The client key (inline when short: deciding a known client in this process allocates
    /// nothing).
    pub key: KeyText,
    /// The per-client budget, if any: an index into the route budgets.
    pub route: Option<usize>,
    /// Whether the global limits apply.
    pub global: bool,
}

/// A decision across a request's budgets, before rendering: whether all admitted, the binding
/// budget's decision (its `reset_after` that of its binding limit), its period and its name.
pub(crate) struct Verdict<'a> {
    pub(crate) allowed: bool,
    pub(crate) decision: Decision,
    pub(crate) window: Nanos,
    pub(crate) name: &'a str,
}

/// The resolved identity of a request: its key and the raw id exemptions are checked against.
struct Identity {
    key: KeyText,
    raw: Raw,
    ip: Option<IpAddr>,
}

/// Where an [`Identity`]'s raw id is.
enum Raw {
    /// In the key, from this byte on (the key less its `prefix:`).
    Tail(usize),
    /// Apart from the key: a non-UTF-8 id's `0x` and hex, or the id of a hashed key.
    Own(String),
}

impl Identity {
    fn raw(&self) -> &str {
        match &self.raw {
            Raw::Tail(at) => &self.key[*at..],
            Raw::Own(raw) => raw,
        }
    }

    /// `prefix:raw`.
    fn of(prefix: &str, raw: &str, ip: Option<IpAddr>) -> Self {
        let mut key = KeyText::new();
        key.push_str(prefix);
        key.push_str(":");
        key.push_str(raw);
        Identity {
            key,
            raw: Raw::Tail(prefix.len() + 1),
            ip,
        }
    }

    /// The same raw id, keyed by the SHA-256 of the key.
    #[cold]
    #[inline(never)]
    fn hashed(self) -> Self {
        let mut key = KeyText::from("sha256:");
        key.push_str(&sha256_hex(self.key.as_bytes()));
        Identity {
            raw: Raw::Own(self.raw().to_owned()),
            key,
            ip: self.ip,
        }
    }
}

/// Bytes as lower-case hex: how a header or query value that is not UTF-8 becomes key text, so
/// that distinct byte strings never share a key (lossy decoding would map them all to U+FFFD).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl HttpPolicy {
    /// A policy over `routes` with the middleware's defaults for everything else: keyed by
    /// client IP (IPv6 by /64, keys over 256 bytes hashed), no proxies, exemptions or bypass,
    /// no global limits, `X-RateLimit-*` headers, decided in this process. Change a field with
    /// struct update syntax.
    ///
    /// ```
    /// use seawall::http::{HeaderStyle, HttpPolicy, Outcome, RequestView, Routes};
    /// use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    ///
    /// let set = LimitSet::parse("1/minute", AlgorithmKind::Gcra).unwrap();
    /// let policy = HttpPolicy {
    ///     headers: HeaderStyle::None,
    ///     ..HttpPolicy::new(Routes::new(vec![], Some(set), 100))
    /// };
    /// let req = RequestView { peer: Some("192.0.2.1"), headers: &[], path: "/", method: "GET", query: b"" };
    /// assert_eq!(policy.key_for(&req, None), "ip:192.0.2.1");
    /// assert_eq!(policy.decide(&req, 0, None, None).unwrap(), Outcome::Pass);
    /// assert!(matches!(policy.decide(&req, 0, None, None).unwrap(), Outcome::Limited(..)));
    /// ```
    pub fn new(routes: Routes) -> Self {
        HttpPolicy {
            key_source: KeySource::Ip,
            proxies: Proxies::default(),
            proxy_header: ProxyHeader::default(),
            sessions: IssuedSessions::new(1),
            ipv6_prefix: 64,
            max_key_length: 256,
            exempt_ips: Proxies::default(),
            exempt_clients: vec![],
            bypass: None,
            global: None,
            routes,
            headers: HeaderStyle::XRateLimit,
            redis: None,
            host: None,
            top_limited: Default::default(),
        }
    }

    /// Parses an exempt-address list or a proxy list, naming `param` on error.
    pub fn nets(param: &'static str, items: &[String]) -> Result<Proxies, Error> {
        Proxies::parse(items).map_err(|bad| {
            Error::invalid(
                param,
                format!("must hold IP addresses or CIDR networks, got '{bad}'"),
            )
        })
    }

    /// Whether keys come from the body.
    pub fn needs_body(&self) -> bool {
        matches!(self.key_source, KeySource::JsonRpc(_))
    }

    fn identity(&self, req: &RequestView<'_>, key: Option<&str>, body: Option<&[u8]>) -> Identity {
        let peer = req.peer.and_then(|p| p.parse::<IpAddr>().ok());
        let ip = client_ip(peer, req.headers, &self.proxies, &self.proxy_header);
        let ip_identity = || {
            let mut key = KeyText::from("ip:");
            match ip {
                Some(ip) => key.push_group(ip, self.ipv6_prefix),
                None => key.push_str("unknown"),
            }
            Identity {
                key,
                raw: Raw::Tail(3),
                ip,
            }
        };
        let from = |prefix: &str, raw: &str| Identity::of(prefix, raw, ip);
        // Bytes that are not UTF-8 get a namespace of their own ("header-hex:ff"), so that no
        // text value ("0xff") can stand for them; the raw id is "0x" and the hex.
        let from_bytes = |prefix: &str, bytes: &[u8]| match std::str::from_utf8(bytes) {
            Ok(text) => from(prefix, text),
            Err(_) => {
                let hex = hex(bytes);
                Identity {
                    key: KeyText::from(format!("{prefix}-hex:{hex}").as_str()),
                    raw: Raw::Own(format!("0x{hex}")),
                    ip,
                }
            }
        };
        let identity = if let Some(k) = key {
            // A caller's key (a `key_func`'s) has a namespace of its own: a value such as
            // "ip:198.51.100.7" must not spend that address's budget.
            from("fn", k)
        } else {
            match &self.key_source {
                KeySource::Ip => ip_identity(),
                KeySource::Header(name) if name == b"authorization" => match req.header(name) {
                    Some(v) => from("auth", &sha256_hex(v)),
                    None => ip_identity(),
                },
                KeySource::Header(name) => match req.header(name) {
                    Some(v) => from_bytes("header", v),
                    None => ip_identity(),
                },
                KeySource::McpSession => match req
                    .header(b"mcp-session-id")
                    .filter(|id| self.sessions.issued(id))
                {
                    Some(v) => from_bytes("mcp", v),
                    None => ip_identity(),
                },
                KeySource::Query(name) => match req.query_param(name) {
                    Some(v) => from_bytes("query", &v),
                    None => ip_identity(),
                },
                KeySource::JsonRpc(path) => match body.and_then(|b| json_field(b, path)) {
                    Some(v) => from("rpc", &v),
                    None => ip_identity(),
                },
            }
        };
        if identity.key.len() > self.max_key_length {
            return identity.hashed();
        }
        identity
    }

    /// The key a request is counted under.
    pub fn key_for(&self, req: &RequestView<'_>, body: Option<&[u8]>) -> String {
        self.identity(req, None, body).key.into_string()
    }

    fn bypassed(&self, req: &RequestView<'_>) -> bool {
        let Some((name, secret)) = &self.bypass else {
            return false;
        };
        req.header(name)
            .is_some_and(|v| bool::from(v.ct_eq(secret.as_slice())))
    }

    /// Which budgets a request spends; `None` if it passes unlimited (bypassed, exempt, or no
    /// limit applies).
    pub fn plan(
        &self,
        req: &RequestView<'_>,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> Option<Plan> {
        if self.bypassed(req) {
            return None;
        }
        let id = self.identity(req, key, body);
        if id.ip.is_some_and(|ip| self.exempt_ips.contains(ip))
            || self.exempt_clients.iter().any(|c| c == id.raw())
        {
            return None;
        }
        let route = self.routes.route(req).map(|(budget, _)| budget);
        let global = self.global.is_some();
        (route.is_some() || global).then_some(Plan {
            key: id.key,
            route,
            global,
        })
    }

    /// A route budget's policy name: its rule's, or "default".
    pub(crate) fn route_name(&self, budget: usize) -> &str {
        self.routes
            .rules
            .get(budget)
            .map_or("default", |r| r.name.as_str())
    }

    /// Decides `plan` in this process's stores (or the host store): all or nothing across its
    /// budgets.
    pub(crate) fn decide_here(&self, plan: &Plan, now: Nanos) -> Result<Verdict<'_>, Error> {
        if let Some(host) = &self.host {
            return self.decide_on_host(host, plan, now);
        }
        // At most two budgets: on the stack, like their decisions.
        let mut applicable: SmallVec<[(Budget<'_>, &str); 2]> = SmallVec::new();
        if let (true, Some(g)) = (plan.global, &self.global) {
            applicable.push((Budget::Global(g), "global"));
        }
        if let Some(budget) = plan.route {
            applicable.push((
                Budget::Client(&self.routes, budget, &plan.key),
                self.route_name(budget),
            ));
        }
        // All or nothing across the applicable limiters (one call under the GIL, so no other
        // Python thread interleaves). Headers describe the binding policy: its limit,
        // remaining, period, and its own reset.
        let policy = |t: LimitDecision| Decision {
            reset_after: t.binding_reset_after,
            ..t.decision
        };
        let mut decisions: SmallVec<[(Decision, Nanos, &str); 2]> = SmallVec::new();
        let allowed = decide_all(
            applicable.len(),
            true,
            &mut decisions,
            |i, commit| {
                let (budget, name) = &applicable[i];
                let t = if commit {
                    budget.hit(now)?
                } else {
                    budget.test(now)?
                };
                Ok::<_, Error>((policy(t), t.binding.period, *name))
            },
            |(d, _, _)| d.allowed,
        )?;
        let (decision, window, name) = decisions[binding(&decisions, allowed, |(d, _, _)| d)];
        Ok(Verdict {
            allowed,
            decision,
            window,
            name,
        })
    }

    /// [`HttpPolicy::decide_here`] on the host store: the global key and the client's key in its
    /// route budget locked together, so that no other process decides in between.
    fn decide_on_host(
        &self,
        host: &crate::store::host::HostBudgets,
        plan: &Plan,
        now: Nanos,
    ) -> Result<Verdict<'_>, Error> {
        let global_budget = self.routes.budgets();
        let client = plan.route.map(|b| (b, format!("{b}|{}", plan.key)));
        let policy = |t: LimitDecision, name| {
            let d = Decision {
                reset_after: t.binding_reset_after,
                ..t.decision
            };
            (d, t.binding.period, name)
        };
        let parts: Vec<(Decision, Nanos, &str)> = match (plan.global, &client) {
            (true, Some((b, key))) => {
                let (_, [g, c]) = host.hit_pair([(global_budget, "global"), (*b, key)], now)?;
                vec![policy(g, "global"), policy(c, self.route_name(*b))]
            }
            (true, None) => vec![policy(
                host.decide(global_budget, "global", now, 1, true)?,
                "global",
            )],
            (false, Some((b, key))) => vec![policy(
                host.decide(*b, key, now, 1, true)?,
                self.route_name(*b),
            )],
            (false, None) => unreachable!("a plan spends at least one budget"),
        };
        let allowed = parts.iter().all(|(d, _, _)| d.allowed);
        let (decision, window, name) = parts[binding(&parts, allowed, |(d, _, _)| d)];
        Ok(Verdict {
            allowed,
            decision,
            window,
            name,
        })
    }

    /// The response for a verdict: headers to add, or the whole 429.
    pub(crate) fn render(&self, v: &Verdict<'_>) -> Outcome {
        let headers = render::headers(self.headers, &v.decision, v.window, v.name);
        if v.allowed && headers.is_empty() {
            // Nothing to add: the middleware need not wrap `send`.
            Outcome::Pass
        } else if v.allowed {
            Outcome::Allowed(headers)
        } else {
            let (headers, body) = render::denial(headers, &v.decision);
            Outcome::Limited(headers, body)
        }
    }

    /// Decides a request in this process: one call per request. (With a Redis store, see
    /// [`HttpPolicy::begin`].)
    pub fn decide(
        &self,
        req: &RequestView<'_>,
        now: Nanos,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Outcome, Error> {
        match self.plan(req, key, body) {
            None => Ok(Outcome::Pass),
            Some(plan) => Ok(self.render(&self.decide_counted(&plan, now)?)),
        }
    }

    /// [`HttpPolicy::decide_here`], counted in the plan's route counters.
    pub(crate) fn decide_counted(&self, plan: &Plan, now: Nanos) -> Result<Verdict<'_>, Error> {
        let v = self.decide_here(plan, now)?;
        self.counters(plan).decided(v.allowed);
        if !v.allowed {
            self.top_limited.record(&plan.key);
        }
        Ok(v)
    }

    /// Keys held: the per-client ones, and the global limits' one.
    pub fn len(&self) -> usize {
        if let Some(host) = &self.host {
            return host.len();
        }
        self.routes.len() + self.global.as_ref().map_or(0, Limiter::len)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any limit is configured at all.
    pub fn limits_anything(&self) -> bool {
        self.global.is_some() || self.routes.budgets() > 0
    }

    /// Forgets `key` in every budget.
    pub fn reset(&self, key: &str, now: Nanos) {
        if let Some(host) = &self.host {
            for b in 0..self.routes.budgets() {
                host.reset(b, &format!("{b}|{key}"), now);
            }
            return;
        }
        if let Some(g) = &self.global {
            g.reset(key, now);
        }
        self.routes.reset(key, now);
    }
}

/// A budget a request spends: the global one, or a client's in one of the routes.
enum Budget<'a> {
    Global(&'a Limiter),
    Client(&'a Routes, usize, &'a str),
}

impl Budget<'_> {
    fn hit(&self, now: Nanos) -> Result<LimitDecision, Error> {
        match self {
            Budget::Global(g) => g.hit("global", now, 1),
            Budget::Client(routes, budget, key) => routes.hit(*budget, key, now),
        }
    }

    fn test(&self, now: Nanos) -> Result<LimitDecision, Error> {
        match self {
            Budget::Global(g) => g.test("global", now, 1),
            Budget::Client(routes, budget, key) => routes.test(*budget, key, now),
        }
    }
}

/// The string at `path` in a JSON body (the first element of a batch), if any.
fn json_field(body: &[u8], path: &[String]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut v = match value {
        serde_json::Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    for part in path {
        v = v.get_mut(part.as_str())?.take();
    }
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::limit::AlgorithmKind;

    fn set(text: &str) -> LimitSet {
        LimitSet::parse(text, AlgorithmKind::Gcra).unwrap()
    }

    fn policy() -> HttpPolicy {
        let login = Rule::new(
            "/auth/login",
            set("1/minute"),
            Some(vec!["post".into()]),
            None,
        );
        HttpPolicy {
            sessions: IssuedSessions::new(100),
            max_key_length: 128,
            exempt_ips: Proxies::parse(&["192.0.2.0/24"]).unwrap(),
            bypass: Some((b"x-internal-service".to_vec(), b"s3cret".to_vec())),
            top_limited: crate::metrics::top_limited::TopLimited::new(10),
            ..HttpPolicy::new(Routes::new(
                vec![login.unwrap()],
                Some(set("2/minute")),
                1000,
            ))
        }
    }

    fn req<'a>(
        peer: &'a str,
        path: &'a str,
        method: &'a str,
        headers: &'a [(&'a [u8], &'a [u8])],
    ) -> RequestView<'a> {
        RequestView {
            peer: Some(peer),
            headers,
            path,
            method,
            query: b"",
        }
    }

    #[test]
    fn rules_defaults_exemptions_and_bypass() {
        let p = policy();
        let login = req("203.0.113.1", "/auth/login", "POST", &[]);
        assert!(matches!(
            p.decide(&login, 0, None, None).unwrap(),
            Outcome::Allowed(_)
        ));
        assert!(matches!(
            p.decide(&login, 0, None, None).unwrap(),
            Outcome::Limited(_, _)
        ));
        // GET on the same path is not the rule's: the default applies, with its own budget.
        let get = req("203.0.113.1", "/auth/login", "GET", &[]);
        assert!(matches!(
            p.decide(&get, 0, None, None).unwrap(),
            Outcome::Allowed(_)
        ));
        let exempt = req("192.0.2.5", "/auth/login", "POST", &[]);
        for _ in 0..5 {
            assert_eq!(p.decide(&exempt, 0, None, None).unwrap(), Outcome::Pass);
        }
        let wrong: &[(&[u8], &[u8])] = &[(b"x-internal-service", b"guess")];
        assert!(matches!(
            p.decide(
                &req("203.0.113.1", "/auth/login", "POST", wrong),
                0,
                None,
                None
            )
            .unwrap(),
            Outcome::Limited(_, _)
        ));
        let bare: &[(&[u8], &[u8])] = &[(b"x-internal-service", b"")];
        assert!(matches!(
            p.decide(
                &req("203.0.113.1", "/auth/login", "POST", bare),
                0,
                None,
                None
            )
            .unwrap(),
            Outcome::Limited(_, _)
        ));
        let right: &[(&[u8], &[u8])] = &[(b"x-internal-service", b"s3cret")];
        assert_eq!(
            p.decide(
                &req("203.0.113.1", "/auth/login", "POST", right),
                0,
                None,
                None
            )
            .unwrap(),
            Outcome::Pass
        );
        // The three 429s, and nothing else, are in the top-K of refused keys.
        let top = p.top_limited.top(10);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].key.as_str(), top[0].count), ("ip:203.0.113.1", 3));
    }

    #[test]
    fn keys_from_each_source() {
        let mut p = policy();
        let h: &[(&[u8], &[u8])] = &[
            (b"authorization", b"Bearer t0k3n"),
            (b"mcp-session-id", b"abc"),
        ];
        let r = RequestView {
            query: b"client_id=a%20b&x=1",
            ..req("2001:db8:1:2::9", "/", "GET", h)
        };
        assert_eq!(p.key_for(&r, None), "ip:2001:db8:1:2::/64");
        p.key_source = "header:Authorization".parse().unwrap();
        let k = p.key_for(&r, None);
        assert!(k.starts_with("auth:") && !k.contains("t0k3n"));
        p.key_source = "mcp-session".parse().unwrap();
        // Only an id the server issued is a key; any other is the client's address.
        assert_eq!(p.key_for(&r, None), "ip:2001:db8:1:2::/64");
        p.sessions.issue(b"abc");
        assert_eq!(p.key_for(&r, None), "mcp:abc");
        p.key_source = "query:client_id".parse().unwrap();
        assert_eq!(p.key_for(&r, None), "query:a b");
        p.key_source = "jsonrpc:params._client_id".parse().unwrap();
        let body = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"_client_id":"c1"}}"#;
        assert_eq!(p.key_for(&r, Some(body)), "rpc:c1");
        assert_eq!(p.key_for(&r, Some(b"not json")), "ip:2001:db8:1:2::/64");
        p.key_source = "header:x-client-id".parse().unwrap();
        let long = "x".repeat(500);
        let h2: &[(&[u8], &[u8])] = &[(b"x-client-id", long.as_bytes())];
        let k = p.key_for(&req("203.0.113.1", "/", "GET", h2), None);
        assert!(k.starts_with("sha256:") && k.len() == 64 + 7);
    }

    #[test]
    fn headers_describe_the_binding_policy_alone() {
        let mut p = policy();
        p.headers = HeaderStyle::Draft;
        p.routes = Routes::new(
            vec![Rule::new("/auth/login", set("5/minute; 20/hour; 100/day"), None, None).unwrap()],
            None,
            1000,
        );
        let Outcome::Allowed(h) = p
            .decide(
                &req("203.0.113.1", "/auth/login", "POST", &[]),
                0,
                None,
                None,
            )
            .unwrap()
        else {
            panic!("denied")
        };
        let field = |name: &[u8]| {
            h.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(
            field(b"ratelimit-policy").unwrap(),
            "\"/auth/login\";q=5;w=60"
        );
        // The minute's reset (12 s for one of five), not the day's.
        assert_eq!(field(b"ratelimit").unwrap(), "\"/auth/login\";r=4;t=12");
    }

    #[test]
    fn caller_keys_have_their_own_namespace() {
        let p = policy();
        let r = req("198.51.100.7", "/", "GET", &[]);
        let Outcome::Allowed(_) = p.decide(&r, 0, Some("ip:198.51.100.7"), None).unwrap() else {
            panic!("denied")
        };
        let Outcome::Allowed(h) = p.decide(&r, 0, None, None).unwrap() else {
            panic!("denied")
        };
        assert!(h
            .iter()
            .any(|(n, v)| *n == b"x-ratelimit-remaining" && &v[..] == b"1"));
        assert_eq!(p.identity(&r, Some("u"), None).key, "fn:u");
        assert_eq!(p.identity(&r, Some("u"), None).raw(), "u");
    }

    #[test]
    fn query_keys_keep_invalid_utf8_apart() {
        let mut p = policy();
        p.key_source = "query:k".parse().unwrap();
        let key = |q: &'static [u8]| {
            p.key_for(
                &RequestView {
                    query: q,
                    ..req("203.0.113.1", "/", "GET", &[])
                },
                None,
            )
        };
        assert_eq!(key(b"k=%ff"), "query-hex:ff");
        assert_ne!(key(b"k=%ff"), key(b"k=%fe"));
        assert_ne!(key(b"k=%ff"), key(b"k=0xff"));
        assert_eq!(key(b"k=caf%C3%A9"), "query:caf\u{e9}");
    }

    #[test]
    fn get_rules_hold_head_and_bad_rules_are_refused() {
        let rule = Rule::new("/s", set("1/minute"), Some(vec!["get".into()]), None).unwrap();
        assert!(rule.applies(&req("203.0.113.1", "/s", "HEAD", &[])));
        assert!(!rule.applies(&req("203.0.113.1", "/s", "POST", &[])));
        let head = Rule::new("/s", set("1/minute"), Some(vec!["HEAD".into()]), None).unwrap();
        assert!(!head.applies(&req("203.0.113.1", "/s", "GET", &[])));
        for bad in ["api/*", "", " /api", "search"] {
            assert!(
                Rule::new(bad, set("1/minute"), None, None).is_err(),
                "{bad}"
            );
        }
        assert!(Rule::new("*/search", set("1/minute"), None, None).is_ok());
        assert!(Rule::new("/a", set("1/minute"), Some(vec![]), None).is_err());
    }

    #[test]
    fn max_keys_bounds_every_budget_together() {
        let rules = (0..4)
            .map(|i| Rule::new(&format!("/r{i}"), set("1/hour"), None, None).unwrap())
            .collect();
        let routes = Routes::new(rules, Some(set("1/hour")), 20);
        for c in 0..100 {
            for b in 0..routes.budgets() {
                routes.hit(b, &format!("ip:198.51.100.{c}"), 0).unwrap();
            }
        }
        assert!(routes.len() <= 20, "{}", routes.len());
        // One budget alone may use the whole room.
        let routes = Routes::new(
            vec![Rule::new("/a", set("1/hour"), None, None).unwrap()],
            Some(set("1/hour")),
            20,
        );
        for c in 0..20 {
            routes.hit(1, &format!("ip:198.51.100.{c}"), 0).unwrap();
        }
        assert_eq!(routes.len(), 20);
        for c in 0..20 {
            let key = format!("ip:198.51.100.{c}");
            assert!(!routes.test(1, &key, 0).unwrap().decision.allowed);
            assert!(routes.test(0, &key, 0).unwrap().decision.allowed);
        }
        routes.reset("ip:198.51.100.3", 0);
        assert!(
            routes
                .test(1, "ip:198.51.100.3", 0)
                .unwrap()
                .decision
                .allowed
        );
        // Long keys are tagged too.
        let long = "k".repeat(300);
        assert!(routes.hit(1, &long, 0).unwrap().decision.allowed);
        assert!(!routes.hit(1, &long, 0).unwrap().decision.allowed);
        assert!(routes.hit(0, &long, 0).unwrap().decision.allowed);
    }

    #[test]
    fn issued_sessions_are_bounded() {
        let s = IssuedSessions::new(3);
        for i in 0..10u8 {
            s.issue(&[i]);
            s.issue(&[i]);
        }
        assert_eq!(s.len(), 3);
        assert!(s.issued(&[9]) && s.issued(&[7]) && !s.issued(&[6]));
        s.issue(b"");
        assert!(!s.issued(b""));
    }

    #[test]
    fn non_utf8_header_keys_stay_distinct() {
        assert_eq!(hex(b"\xff\x01"), "ff01");
        let mut p = policy();
        p.key_source = "header:x-key".parse().unwrap();
        let key = |v: &'static [u8]| {
            let h: &[(&[u8], &[u8])] = &[(b"x-key", v)];
            p.key_for(&req("203.0.113.1", "/", "GET", h), None)
        };
        assert_eq!(key(b"\xff\x01"), "header-hex:ff01");
        assert_ne!(key(b"\xff\x01"), key(b"\xff\x02"));
        assert_ne!(key(b"\xff"), key(b"0xff"));
        assert_eq!(key(b"0xff"), "header:0xff");
    }

    proptest::proptest! {
        /// Any value a client puts in a key header (invalid UTF-8, quotes, braces, control
        /// bytes, a key on either side of the inline room and of `max_key_length`) is keyed as
        /// the plain `format!` model says: its own namespace for non-UTF-8 bytes, the SHA-256
        /// of the key past the limit, and an exemption matched on the raw id only.
        #[test]
        fn client_written_key_values_are_keyed_as_the_model_says(
            value in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(b"{}\"':/\\%\xff".to_vec()),
                ],
                1..200,
            ),
        ) {
            let mut p = policy();
            p.key_source = "header:x-key".parse().unwrap();
            let model = match std::str::from_utf8(&value) {
                Ok(text) => format!("header:{text}"),
                Err(_) => format!("header-hex:{}", hex(&value)),
            };
            let model = match model.len() > p.max_key_length {
                true => format!("sha256:{}", sha256_hex(model.as_bytes())),
                false => model,
            };
            let h: &[(&[u8], &[u8])] = &[(b"x-key", &value)];
            let r = req("203.0.113.1", "/", "GET", h);
            proptest::prop_assert_eq!(p.key_for(&r, None), model);
            // Exempting the id itself exempts it; exempting its key text does not.
            let raw = match std::str::from_utf8(&value) {
                Ok(text) => text.to_owned(),
                Err(_) => format!("0x{}", hex(&value)),
            };
            p.exempt_clients = vec![p.key_for(&r, None)];
            proptest::prop_assert_eq!(p.plan(&r, None, None).is_some(), raw != p.key_for(&r, None));
            p.exempt_clients = vec![raw];
            proptest::prop_assert!(p.plan(&r, None, None).is_none());
        }
    }

    #[test]
    fn globs_and_percent_decoding() {
        assert!(Pattern::new("/api/*").matches("/api/v1/items"));
        assert!(!Pattern::new("/api/*").matches("/apix"));
        assert!(Pattern::new("/v?/x").matches("/v2/x"));
        assert_eq!(percent_decode(b"a%2Fb+c%zz%"), b"a/b c%zz%".to_vec());
    }
}
