"""seawall's native rules engine vs seed 002's rules engine written in pure Python, in-process.

Measures ``seawall.rules.RulesEngine`` (issue 15) three ways, each against the same work done the
way seed 002 (Mahavishnu "Rate Limiting Integration #23", ``../shared/seeds/002_*.txt``) would do
it in Python:

1. **Selection** (``engine.select(identifier=, endpoint=, ip_address=, default=)``) with 1, 10 and
   100 filtered rules (plus a filterless default rule), for a request whose filters match exactly
   one rule and for one that matches none (it falls to the default). Seed-style:
   :class:`SeedRulesEngine.select`, the selection of SEEDS-002-003.md A3 as plain Python: every
   rule in insertion order, ``endpoints`` exact or trailing-``*`` prefix globs, ``user_ids`` equal
   to the identifier with or without a ``user:`` prefix, ``ip_addresses`` as ``ipaddress``
   networks (parsed once when the rule is added, and the request's address once per call: the
   cheapest fair Python, not the slowest), the highest priority (ties: first added), else the
   default. A breakdown table times seawall's 100-rule selection with one filter kind only
   (endpoints, user ids, CIDRs), to show where the time goes.
2. **check_limit** on a per-user token-bucket rule, a hot key and 100,000 keys round-robin:
   ``engine.check(rule_name, identifier)`` against :class:`SeedRulesEngine`'s token bucket as the
   seed describes it (a dict of buckets per ``"{rule}:{identifier}"`` key, refilled from
   ``time.monotonic()``, the algorithm dispatched per call, a fresh mutable ``RateLimitDecision``
   dataclass per call), both as a plain call and as the seed's ``await check_limit(...)`` (one
   ``asyncio.Lock`` per engine, awaited inside one ``asyncio.run``). The seed's engine also
   records per-rule metrics on every call, as seawall's engine does; the first two seed-style
   rows leave them out (that favours Python), the last pays for them.

3. **The middleware** (``--part middleware``): a request through ``seawall.rules.RulesMiddleware``
   (one ``RulesGate.decide`` per request, then the strategy's response) around a trivial ASGI
   app, called in-process with a fixed ``http`` scope (copied per call) from ``REQ_IP`` to
   ``REQ_ENDPOINT``, inside one ``asyncio.run``; the bare app's time is subtracted. Against the
   same selection and responses in Python: :class:`SeedStyleRulesASGI` (pure ASGI, the
   seed-style engine's ``select`` + ``await check_limit`` with its overrides and metrics; the
   cheapest Python) and a Starlette ``BaseHTTPMiddleware`` (the seed's likely shape). Admitted
   rows: 1, 10 and 100 rules, matching one or none, and a ``user_ids`` rule through
   ``extract_identifier``; refused rows: one rule per strategy with its budget spent (THROTTLE's
   booked wait is a real sleep, so its row times the refusal past ``max_delay``).

In parts 1 and 2 every rule admits every call (rate 1e9 per second): this measures the cost of a
decision, not of a denial. Both sides take the same keyword arguments in the timed loop.

Timing: ``time.perf_counter_ns`` around N iterations of a plain ``for`` loop whose callee and
arguments are bound to locals first, best of 5 repeats (3 with ``--quick``), cyclic GC disabled
while timing (``timeit``'s convention; it favours the Python implementations). N is calibrated per
row so a repeat takes about ``--target-ms``. The issue's bars are checked at the end; timings are
never tests, and this script always exits 0. Only in-process: no network, no Redis.

Run from the repository root (release build: ``maturin develop --release --extras dev,bench``)::

    .venv/bin/python benches/compare_rules.py [--quick] [--target-ms MS] [--part PART]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from timing import SyncTimer, abest_of, best_of, ns, plan_units, print_header, t_keys1, table

import seawall
from seawall.rules import RulesEngine

RULE_COUNTS = (1, 10, 100)
N_KEYS = 100_000
BIG_RATE = 1_000_000_000  # per 1 s window: every call is admitted
DEFAULT_RULE = "api_default"
CHECK_RULE = "api_per_user"
HOT_KEY = "user:client-0"
FAT_FILTERS = 20  # per filter kind, for the check row on a rule with filters

# The request every selection row sends. It matches rule "r{target}" only when that rule's
# filter is built from these values (see rule_filters); otherwise it matches nothing.
REQ_USER = "user:alice"
REQ_ENDPOINT = "/api/v1/orders/42"
REQ_IP = "203.0.113.7"


# --------------------------------------------------------------------------------------------
# The seed-style engine: seed 002's RateLimitRule / RateLimitDecision and engine, in pure Python


class LimitScope(str, Enum):
    GLOBAL = "global"
    PER_USER = "per_user"
    PER_IP = "per_ip"
    PER_ENDPOINT = "per_endpoint"


class RateLimitAlgorithm(str, Enum):
    TOKEN_BUCKET = "token_bucket"
    LEAKY_BUCKET = "leaky_bucket"
    FIXED_WINDOW = "fixed_window"
    SLIDING_WINDOW = "sliding_window"


class LimitStrategy(str, Enum):
    HARD = "hard"
    QUEUE = "queue"
    RETRY_AFTER = "retry_after"
    GRACEFUL = "graceful"
    THROTTLE = "throttle"


@dataclass
class RateLimitRule:
    """Seed 002's rule, field for field."""

    name: str
    scope: LimitScope
    rate: int
    window_seconds: float
    burst: int | None = None
    algorithm: RateLimitAlgorithm | None = None
    strategy: LimitStrategy | None = None
    endpoints: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    priority: int = 0
    enabled: bool = True


@dataclass
class RateLimitDecision:
    """Seed 002's decision: mutable (the seed's custom handler rewrites ``allowed``)."""

    allowed: bool
    rule_name: str
    identifier: str
    tokens_remaining: float
    retry_after: float | None
    reset_at: float
    strategy: LimitStrategy


@dataclass
class _Compiled:
    """What the engine precomputes when a rule is added (fair to Python: not per request)."""

    rule: RateLimitRule
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    has_filter: bool


class SeedRulesEngine:
    """Seed 002's engine the way its document describes it, in memory, without metrics."""

    def __init__(
        self,
        default_algorithm: RateLimitAlgorithm = RateLimitAlgorithm.TOKEN_BUCKET,
        default_strategy: LimitStrategy = LimitStrategy.RETRY_AFTER,
    ) -> None:
        self.default_algorithm = default_algorithm
        self.default_strategy = default_strategy
        self.rules: dict[str, _Compiled] = {}
        self._buckets: dict[str, dict[str, float]] = {}
        self._lock = asyncio.Lock()

    def add_rule_sync(self, rule: RateLimitRule) -> None:
        # This copy of the seed's engine carries the one algorithm the benchmark times.
        if (rule.algorithm or self.default_algorithm) is not RateLimitAlgorithm.TOKEN_BUCKET:
            raise ValueError(f"{rule.name}: only the token bucket is modelled here")
        endpoints = rule.endpoints
        self.rules[rule.name] = _Compiled(
            rule=rule,
            exact=frozenset(e for e in endpoints if not e.endswith("*")),
            prefixes=tuple(e[:-1] for e in endpoints if e.endswith("*")),
            networks=tuple(ipaddress.ip_network(a, strict=False) for a in rule.ip_addresses),
            has_filter=bool(endpoints or rule.user_ids or rule.ip_addresses),
        )

    def select(
        self,
        identifier: str | None = None,
        endpoint: str | None = None,
        ip_address: str | None = None,
        default: str | None = None,
    ) -> str | None:
        """SEEDS-002-003.md A3: among enabled rules with a filter whose every filter matches,
        the highest priority (ties: first added), else ``default``."""
        bare = identifier[5:] if identifier and identifier.startswith("user:") else identifier
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        addr_parsed = False
        best: RateLimitRule | None = None
        for c in self.rules.values():
            rule = c.rule
            if not rule.enabled or not c.has_filter:
                continue
            if rule.endpoints and not (
                endpoint is not None
                and (endpoint in c.exact or any(endpoint.startswith(p) for p in c.prefixes))
            ):
                continue
            if rule.user_ids and not (
                identifier is not None and any(u in (identifier, bare) for u in rule.user_ids)
            ):
                continue
            if rule.ip_addresses:
                if not addr_parsed:
                    addr = ipaddress.ip_address(ip_address) if ip_address else None
                    addr_parsed = True
                if addr is None or not any(addr in n for n in c.networks):
                    continue
            if best is None or rule.priority > best.priority:
                best = rule
        if best is not None:
            return best.name
        if default is not None and default not in self.rules:
            raise KeyError(default)
        return default

    def _key(self, rule: RateLimitRule, identifier: str) -> str:
        if rule.scope is LimitScope.GLOBAL:
            return f"{rule.name}:global"
        return f"{rule.name}:{identifier}"

    def check_limit_sync(self, identifier: str, rule_name: str) -> RateLimitDecision:
        compiled = self.rules.get(rule_name)
        if compiled is None:
            raise KeyError(rule_name)
        rule = compiled.rule
        strategy = rule.strategy or self.default_strategy
        # Every rule is a token bucket (add_rule_sync refuses others).
        return self._token_bucket(rule, self._key(rule, identifier), identifier, strategy)

    def _token_bucket(
        self, rule: RateLimitRule, key: str, identifier: str, strategy: LimitStrategy
    ) -> RateLimitDecision:
        now = time.monotonic()
        capacity = float(rule.burst or rule.rate)
        refill_per_second = rule.rate / rule.window_seconds
        state = self._buckets.get(key)
        if state is None:
            state = {"tokens": capacity, "last_refill": now}
            self._buckets[key] = state
        elapsed = now - state["last_refill"]
        state["tokens"] = min(capacity, state["tokens"] + elapsed * refill_per_second)
        state["last_refill"] = now
        if state["tokens"] >= 1.0:
            state["tokens"] -= 1.0
            return RateLimitDecision(
                allowed=True,
                rule_name=rule.name,
                identifier=identifier,
                tokens_remaining=state["tokens"],
                retry_after=None,
                reset_at=now + (capacity - state["tokens"]) / refill_per_second,
                strategy=strategy,
            )
        retry_after = (1.0 - state["tokens"]) / refill_per_second
        return RateLimitDecision(
            allowed=False,
            rule_name=rule.name,
            identifier=identifier,
            tokens_remaining=state["tokens"],
            retry_after=retry_after,
            reset_at=now + retry_after,
            strategy=strategy,
        )

    async def check_limit(self, identifier: str, rule_name: str) -> RateLimitDecision:
        async with self._lock:
            return self.check_limit_sync(identifier, rule_name)


@dataclass
class RateLimitMetrics:
    """Seed 002's per-rule metrics (``get_metrics``), counted on every check."""

    rule_name: str
    total_requests: int = 0
    allowed_requests: int = 0
    denied_requests: int = 0
    avg_tokens_remaining: float = 0.0
    violations_by_user: dict[str, int] = field(default_factory=dict)


@dataclass
class OverrideRecord:
    override_id: str
    target_user_id: str | None
    unlimited: bool
    expires_at: float | None


class SeedRulesEngineFull(SeedRulesEngine):
    """The seed's ``check_limit`` as its document describes it in full: the admin overrides
    looked up first (none are set here), then the limit, then the rule's metrics counted."""

    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[str, OverrideRecord] = {}
        self.metrics: dict[str, RateLimitMetrics] = {}

    def check_override_sync(self, user_id: str | None = None) -> OverrideRecord | None:
        now = time.monotonic()
        for record in self.overrides.values():
            if record.expires_at is not None and record.expires_at <= now:
                continue
            if record.target_user_id is not None and record.target_user_id == user_id:
                return record
        return None

    def check_limit_sync(self, identifier: str, rule_name: str) -> RateLimitDecision:
        override = self.check_override_sync(user_id=identifier)
        if override is not None and override.unlimited:
            rule = self.rules[rule_name].rule
            return RateLimitDecision(
                True,
                rule_name,
                identifier,
                float(rule.rate),
                None,
                0.0,
                rule.strategy or self.default_strategy,
            )
        decision = super().check_limit_sync(identifier, rule_name)
        m = self.metrics.get(rule_name)
        if m is None:
            m = self.metrics[rule_name] = RateLimitMetrics(rule_name)
        m.total_requests += 1
        if decision.allowed:
            m.allowed_requests += 1
        else:
            m.denied_requests += 1
            m.violations_by_user[identifier] = m.violations_by_user.get(identifier, 0) + 1
        m.avg_tokens_remaining += (
            decision.tokens_remaining - m.avg_tokens_remaining
        ) / m.total_requests
        return decision


# --------------------------------------------------------------------------------------------
# Rule sets


def rule_filters(i: int, target: int | None, kinds: str) -> dict[str, list[str]]:
    """Rule ``i``'s filters: one kind, rotating through ``kinds`` (``e``ndpoint, ``u``ser,
    ``i``p). Only rule ``target`` is built to match the benchmark's request (REQ_*); the others
    are near misses of the same shape (other paths, users, networks)."""
    kind = kinds[i % len(kinds)]
    hit = i == target
    if kind == "e":
        return {"endpoints": ["/api/v1/orders*" if hit else f"/api/v1/r{i}*"]}
    if kind == "u":
        return {"user_ids": ["alice" if hit else f"user-{i}"]}
    return {"ip_addresses": ["203.0.113.0/24" if hit else f"10.{i % 256}.0.0/16"]}


def rule_dicts(count: int, match: bool, kinds: str = "eui") -> list[dict[str, Any]]:
    """A filterless default rule, then ``count`` filtered rules. With ``match``, the last one
    matches the request (priority 5; the rest 0..9 in turn, so priorities vary), else none."""
    target = count - 1 if match else None
    rules: list[dict[str, Any]] = [
        {"name": DEFAULT_RULE, "scope": "per_user", "rate": BIG_RATE, "window_seconds": 1}
    ]
    for i in range(count):
        rules.append(
            {
                "name": f"r{i}",
                "scope": "per_user",
                "rate": BIG_RATE,
                "window_seconds": 1,
                "priority": 5 if i == target else i % 10,
                **rule_filters(i, target, kinds),
            }
        )
    return rules


def seawall_engine(rules: list[dict[str, Any]], max_keys: int = 100_000) -> RulesEngine:
    engine = RulesEngine(max_keys=max_keys)
    for r in rules:
        engine.add_rule(r)
    return engine


def seed_engine(rules: list[dict[str, Any]], full: bool = False) -> SeedRulesEngine:
    engine = SeedRulesEngineFull() if full else SeedRulesEngine()
    for r in rules:
        # The seed's rule has no max_queued / max_delay (seawall's bounds, defects 2 and 3).
        fields = {k: v for k, v in r.items() if k not in ("max_queued", "max_delay")}
        fields["scope"] = LimitScope(r["scope"])
        if fields.get("strategy") is not None:
            fields["strategy"] = LimitStrategy(fields["strategy"])
        engine.add_rule_sync(RateLimitRule(**fields))
    return engine


# --------------------------------------------------------------------------------------------
# Timers (each binds what it calls to locals before starting the clock)


def t_select(fn: Callable[..., object]) -> SyncTimer:
    def timer(n: int) -> int:
        f, u, e, a, d = fn, REQ_USER, REQ_ENDPOINT, REQ_IP, DEFAULT_RULE
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(identifier=u, endpoint=e, ip_address=a, default=d)
        return time.perf_counter_ns() - t0

    return timer


def t_check(fn: Callable[[str, str], object], first: str, second: str) -> SyncTimer:
    def timer(n: int) -> int:
        f, a, b = fn, first, second
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(a, b)
        return time.perf_counter_ns() - t0

    return timer


def t_check_keys(
    fn: Callable[[str, str], object], keys: list[str], rule: str, key_first: bool
) -> SyncTimer:
    """``fn(rule, key)`` (seawall) or ``fn(key, rule)`` (the seed's argument order) per key."""
    if key_first:

        def timer(rounds: int) -> int:
            f, ks, r = fn, keys, rule
            t0 = time.perf_counter_ns()
            for _ in range(rounds):
                for k in ks:
                    f(k, r)
            return time.perf_counter_ns() - t0

        return timer

    def timer_rule_first(rounds: int) -> int:
        f, ks, r = fn, keys, rule
        t0 = time.perf_counter_ns()
        for _ in range(rounds):
            for k in ks:
                f(r, k)
        return time.perf_counter_ns() - t0

    return timer_rule_first


def t_await_check(
    fn: Callable[[str, str], Coroutine[Any, Any, object]], keys: list[str], rule: str
) -> SyncTimer:
    """``await fn(key, rule)`` per key, all rounds inside one ``asyncio.run``."""

    def timer(rounds: int) -> int:
        async def run() -> int:
            f, ks, r = fn, keys, rule
            t0 = time.perf_counter_ns()
            for _ in range(rounds):
                for k in ks:
                    await f(k, r)
            return time.perf_counter_ns() - t0

        return asyncio.run(run())

    return timer


def t_select_check(
    fn_select: Callable[..., str | None], fn_check: Callable[..., object], key_first: bool
) -> SyncTimer:
    """What a middleware does per request: select the rule, then check it (seawall's
    ``check(rule, id)``, or the seed's ``check_limit(id, rule)`` with ``key_first``)."""
    if key_first:

        def timer(n: int) -> int:
            s, c, u, e, a, d = fn_select, fn_check, REQ_USER, REQ_ENDPOINT, REQ_IP, DEFAULT_RULE
            t0 = time.perf_counter_ns()
            for _ in range(n):
                c(u, s(identifier=u, endpoint=e, ip_address=a, default=d))
            return time.perf_counter_ns() - t0

        return timer

    def timer_rule_first(n: int) -> int:
        s, c, u, e, a, d = fn_select, fn_check, REQ_USER, REQ_ENDPOINT, REQ_IP, DEFAULT_RULE
        t0 = time.perf_counter_ns()
        for _ in range(n):
            c(s(identifier=u, endpoint=e, ip_address=a, default=d), u)
        return time.perf_counter_ns() - t0

    return timer_rule_first


# --------------------------------------------------------------------------------------------
# Measurement


@dataclass(frozen=True)
class Settings:
    target_ns: int
    repeats: int


def measure(timer: SyncTimer, unit_size: int, s: Settings) -> float:
    """Best ns per call; ``timer(n)`` runs ``n`` units of ``unit_size`` calls."""
    n0 = 1 if unit_size > 1 else 2_000
    timer(n0)  # warm-up; for the keyed rows a full pass, so every key exists before timing
    n = plan_units(timer(n0), n0, s.target_ns)
    return best_of(timer, n, s.repeats) / (n * unit_size)


class Wrong(Exception):
    pass


def agree(label: str, got: object, want: object) -> None:
    if got != want:
        raise Wrong(f"{label}: got {got!r}, want {want!r}")


@dataclass(frozen=True)
class SelRow:
    count: int
    match: bool
    seawall: float
    python: float


def run_selection(s: Settings) -> list[SelRow]:
    rows = []
    for count in RULE_COUNTS:
        for match in (True, False):
            rules = rule_dicts(count, match)
            sw, py = seawall_engine(rules), seed_engine(rules)
            want = f"r{count - 1}" if match else DEFAULT_RULE
            for name, fn in (("seawall", sw.select), ("seed-style", py.select)):
                got = fn(
                    identifier=REQ_USER,
                    endpoint=REQ_ENDPOINT,
                    ip_address=REQ_IP,
                    default=DEFAULT_RULE,
                )
                agree(f"{name} select, {count} rules, match={match}", got, want)
            rows.append(
                SelRow(
                    count,
                    match,
                    measure(t_select(sw.select), 1, s),
                    measure(t_select(py.select), 1, s),
                )
            )
    return rows


def run_breakdown(s: Settings) -> list[tuple[str, float, float]]:
    """seawall's 100-rule selection with one filter kind only; request matching none."""
    out = []
    base = seawall_engine(rule_dicts(0, False))
    for kinds, label in (
        ("e", "endpoints (globs)"),
        ("u", "user_ids"),
        ("i", "ip_addresses (CIDRs)"),
    ):
        rules = rule_dicts(100, False, kinds)
        sw, py = seawall_engine(rules), seed_engine(rules)
        agree(
            f"breakdown {kinds}",
            sw.select(
                identifier=REQ_USER, endpoint=REQ_ENDPOINT, ip_address=REQ_IP, default=DEFAULT_RULE
            ),
            DEFAULT_RULE,
        )
        out.append((label, measure(t_select(sw.select), 1, s), measure(t_select(py.select), 1, s)))
    out.append(("no filtered rule (the call's floor)", measure(t_select(base.select), 1, s), 0.0))
    return out


@dataclass(frozen=True)
class CheckRow:
    label: str
    seawall: float
    seed_sync: float
    seed_await: float
    seed_full: float
    floor: float  # seawall ClientRateLimiter.try_consume(key): the same bucket, no rules
    seawall_fat: float  # engine.check on a rule holding 3 x FAT_FILTERS filter entries


def check_rules(filters: int = 0) -> list[dict[str, Any]]:
    """The checked rule; with ``filters``, that many endpoint, user and CIDR filters each
    (``check`` ignores them, A4; they show what the rule's size costs per call)."""
    rule: dict[str, Any] = {
        "name": CHECK_RULE,
        "scope": "per_user",
        "rate": BIG_RATE,
        "window_seconds": 1,
    }
    if filters:
        rule["endpoints"] = [f"/api/v1/r{i}*" for i in range(filters)]
        rule["user_ids"] = [f"user-{i}" for i in range(filters)]
        rule["ip_addresses"] = [f"10.{i}.0.0/16" for i in range(filters)]
    return [rule]


def admitted(label: str, decision: Any) -> None:
    if not decision.allowed:
        raise Wrong(f"{label}: a call was denied; the benchmark must admit all")


def run_check(s: Settings, keys: list[str]) -> list[CheckRow]:
    rows = []
    for label, ks in (("hot key", [HOT_KEY]), (f"{len(keys):,} keys round-robin", keys)):
        sw = seawall_engine(check_rules(), max_keys=2 * len(keys))
        py = seed_engine(check_rules())
        if len(ks) == 1:
            t_sw = t_check(sw.check, CHECK_RULE, ks[0])
            t_py = t_check(py.check_limit_sync, ks[0], CHECK_RULE)
        else:
            t_sw = t_check_keys(sw.check, ks, CHECK_RULE, key_first=False)
            t_py = t_check_keys(py.check_limit_sync, ks, CHECK_RULE, key_first=True)
        m_sw = measure(t_sw, len(ks), s)
        fat = seawall_engine(check_rules(FAT_FILTERS), max_keys=2 * len(ks))
        m_fat = measure(t_check_keys(fat.check, ks, CHECK_RULE, key_first=False), len(ks), s)
        admitted(f"seawall check (filtered rule), {label}", fat.check(CHECK_RULE, ks[-1]))
        m_py = measure(t_py, len(ks), s)
        m_await = measure(t_await_check(py.check_limit, ks, CHECK_RULE), len(ks), s)
        bucket = seawall.TokenBucketConfig(BIG_RATE, float(BIG_RATE), BIG_RATE)
        plain = seawall.ClientRateLimiter(bucket, max_clients=2 * len(ks))
        m_floor = measure(t_keys1(plain.try_consume, ks), len(ks), s)
        full = seed_engine(check_rules(), full=True)
        m_full = measure(t_await_check(full.check_limit, ks, CHECK_RULE), len(ks), s)
        if not isinstance(full, SeedRulesEngineFull) or full.metrics[CHECK_RULE].denied_requests:
            raise Wrong(f"seed-style full engine, {label}: a call was denied")
        admitted(f"seawall check, {label}", sw.check(CHECK_RULE, ks[-1]))
        admitted(f"seed-style check, {label}", py.check_limit_sync(ks[-1], CHECK_RULE))
        if len(py._buckets) != len(ks):
            raise Wrong(f"seed-style engine holds {len(py._buckets)} of {len(ks)} keys")
        rows.append(CheckRow(label, m_sw, m_py, m_await, m_full, m_floor, m_fat))
    return rows


def run_end_to_end(s: Settings) -> list[tuple[str, float, float]]:
    out = []
    for count in (1, 100):
        rules = rule_dicts(count, True)
        sw, py = seawall_engine(rules), seed_engine(rules)
        out.append(
            (
                f"{count} rule{'s' if count > 1 else ''}, matching",
                measure(t_select_check(sw.select, sw.check, key_first=False), 1, s),
                measure(t_select_check(py.select, py.check_limit_sync, key_first=True), 1, s),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# The middleware: seawall's RulesMiddleware vs the same selection and responses in Python


def mw_scope(path: str = REQ_ENDPOINT) -> dict[str, Any]:
    """What uvicorn's httptools sends for ``GET path`` from REQ_IP (copied per call: an app may
    write ``scope["state"]``)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": (REQ_IP, 50_000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"compare_rules/1"),
            (b"accept", b"*/*"),
            (b"x-user", b"alice"),
        ],
    }


MW_HELLO = b"Hello, world!"
MW_REQUEST: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}


async def mw_receive() -> dict[str, Any]:
    return MW_REQUEST


async def mw_inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The trivial app: start + body, fresh messages each call."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": MW_HELLO, "more_body": False})


def user_from_header(request: Any) -> str | None:
    """``extract_identifier`` of the user-filter rows (a header stands for a verified claim)."""
    user = request.headers.get("x-user")
    return None if user is None else f"user:{user}"


def _json_response(
    status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class SeedStyleRulesASGI:
    """Seed 002's ``RateLimitMiddleware`` the cheapest way Python can write it: pure ASGI, the
    seed-style engine's ``select`` then ``await check_limit(identifier, rule)`` (its lock, its
    overrides and metrics), and each strategy's response as seawall answers it (429, 429 +
    ``Retry-After``, 202 bounded by ``max_queued``, the degraded flag and header, THROTTLE's
    wait bounded by ``max_delay``). Client: the peer (no trusted proxy), as seawall's default."""

    def __init__(
        self,
        app: Any,
        engine: SeedRulesEngine,
        default_rule: str | None = None,
        extract_identifier: Callable[[Any], str | None] | None = None,
        max_queued: int = 10**9,
        max_delay: float = 30.0,
    ) -> None:
        self.app = app
        self.engine = engine
        self.default_rule = default_rule
        self.extract_identifier = extract_identifier
        self.max_queued = max_queued
        self.max_delay = max_delay
        self.queued: dict[str, int] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else None
        identifier = None
        if self.extract_identifier is not None:
            from starlette.requests import Request

            identifier = self.extract_identifier(Request(scope, receive))
        if identifier is None:
            identifier = f"ip:{ip}"
        path = scope["path"]
        engine = self.engine
        name = engine.select(
            identifier=identifier, endpoint=path, ip_address=ip, default=self.default_rule
        )
        if name is None:
            await self.app(scope, receive, send)
            return
        d = await engine.check_limit(identifier, name)
        reset = max(0, math.ceil(d.reset_at - time.monotonic()))
        headers = [
            (b"x-ratelimit-limit", str(engine.rules[name].rule.rate).encode()),
            (b"x-ratelimit-remaining", str(int(d.tokens_remaining)).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]
        if not d.allowed:
            await self._refused(scope, receive, send, d, name, identifier, headers)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refused(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        d: RateLimitDecision,
        name: str,
        identifier: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        retry = max(1, math.ceil(d.retry_after or 0.0))
        strategy = d.strategy
        if strategy is LimitStrategy.GRACEFUL:
            scope["state"] = {**scope.get("state", {}), "rate_limit_degraded": True}
            extra = [*headers, (b"x-ratelimit-degraded", b"true")]

            async def send_degraded(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
                await send(message)

            await self.app(scope, receive, send_degraded)
            return
        if strategy is LimitStrategy.THROTTLE and (d.retry_after or 0.0) <= self.max_delay:
            await asyncio.sleep(d.retry_after or 0.0)
            await self.app(scope, receive, send)
            return
        if strategy is LimitStrategy.QUEUE:
            key = f"{name}:{identifier}"
            count = self.queued.get(key, 0)
            if count < self.max_queued:
                self.queued[key] = count + 1
                start, body = _json_response(
                    202,
                    {"status": "queued", "retry_after": retry},
                    [(b"retry-after", str(retry).encode())],
                )
                await send(start)
                await send(body)
                return
        error: dict[str, Any] = {"code": 429, "message": "Rate limit exceeded"}
        if strategy is LimitStrategy.HARD:
            start, body = _json_response(429, {"error": error}, [])
        else:
            error["retry_after"] = retry
            start, body = _json_response(
                429, {"error": error}, [*headers, (b"retry-after", str(retry).encode())]
            )
        await send(start)
        await send(body)


def seed_style_base_http(
    engine: SeedRulesEngine,
    default_rule: str | None,
    extract_identifier: Callable[[Any], str | None] | None = None,
) -> type:
    """The same middleware as seed 002 would most likely be written: Starlette's
    ``BaseHTTPMiddleware`` (``dispatch(request, call_next)``), allowed requests only (the
    refusal rows use the pure-ASGI one)."""
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse

    class SeedStyleRulesHTTP(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            client = request.client
            ip = client.host if client else None
            identifier = extract_identifier(request) if extract_identifier else None
            if identifier is None:
                identifier = f"ip:{ip}"
            name = engine.select(
                identifier=identifier,
                endpoint=request.url.path,
                ip_address=ip,
                default=default_rule,
            )
            if name is None:
                return await call_next(request)
            d = await engine.check_limit(identifier, name)
            if not d.allowed:
                retry = max(1, math.ceil(d.retry_after or 0.0))
                return JSONResponse(
                    {
                        "error": {
                            "code": 429,
                            "message": "Rate limit exceeded",
                            "retry_after": retry,
                        }
                    },
                    status_code=429,
                    headers={"Retry-After": str(retry)},
                )
            response = await call_next(request)
            response.headers["X-RateLimit-Limit"] = str(engine.rules[name].rule.rate)
            response.headers["X-RateLimit-Remaining"] = str(int(d.tokens_remaining))
            reset = max(0, math.ceil(d.reset_at - time.monotonic()))
            response.headers["X-RateLimit-Reset"] = str(reset)
            return response

    return SeedStyleRulesHTTP


async def _mw_validate(app: Any, label: str, status: int, header: bytes | None) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(mw_scope(), mw_receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    if len(starts) != 1 or starts[0]["status"] != status:
        raise Wrong(f"{label}: expected one {status}, got {sent!r:.300}")
    names = {bytes(k).lower() for k, _ in starts[0]["headers"]}
    if header is not None and header not in names:
        raise Wrong(f"{label}: the response lacks {header.decode()}: {sorted(names)}")


async def _mw_measure(app: Any, s: Settings, status: int) -> float:
    bad: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != status:
            bad.append(message["status"])

    scope = mw_scope()

    async def timer(n: int) -> int:
        a, copy, sc, rcv, snd = app, dict, scope, mw_receive, send
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await a(copy(sc), rcv, snd)
        return time.perf_counter_ns() - t0

    n0 = 200
    await timer(n0)
    n = plan_units(await timer(n0), n0, s.target_ns)
    best = await abest_of(timer, n, s.repeats)
    if bad:
        raise Wrong(f"{len(bad)} responses were not {status} (e.g. {bad[0]})")
    return best / n


def mw_time(
    app: Any,
    label: str,
    s: Settings,
    status: int = 200,
    header: bytes | None = None,
    spend: bool = False,
) -> float:
    """Best ns per request; with ``spend``, one request first spends the budget (the refused
    rows time refusals only)."""

    async def go() -> float:
        if spend:
            await _mw_validate(app, f"{label} (spending the budget)", 200, b"x-ratelimit-limit")
        await _mw_validate(app, label, status, header)
        return await _mw_measure(app, s, status)

    return asyncio.run(go())


@dataclass(frozen=True)
class MwRow:
    label: str
    seawall: float
    seed_asgi: float
    seed_http: float | None  # BaseHTTPMiddleware (allowed requests only)


def _mw_pair(
    rules: list[dict[str, Any]],
    label: str,
    s: Settings,
    extract: bool = False,
    status: int = 200,
    header: bytes | None = b"x-ratelimit-limit",
    max_queued: int = 10**9,
    with_http: bool = True,
) -> MwRow:
    from seawall.rules import RulesMiddleware

    sw = seawall_engine(rules)
    py = seed_engine(rules, full=True)
    fn = user_from_header if extract else None
    native = RulesMiddleware(mw_inner, sw, default_rule=DEFAULT_RULE, extract_identifier=fn)
    seed = SeedStyleRulesASGI(mw_inner, py, DEFAULT_RULE, fn, max_queued=max_queued)
    m_sw = mw_time(native, f"seawall, {label}", s, status, header, spend=not with_http)
    m_py = mw_time(seed, f"seed-style ASGI, {label}", s, status, header, spend=not with_http)
    m_http = None
    if with_http:
        cls = seed_style_base_http(seed_engine(rules, full=True), DEFAULT_RULE, fn)
        m_http = mw_time(
            cls(mw_inner), f"seed-style BaseHTTPMiddleware, {label}", s, status, header
        )
    return MwRow(label, m_sw, m_py, m_http)


def run_middleware(s: Settings) -> tuple[float, float, list[MwRow], list[MwRow]]:
    """The bare app's ns, seawall's ``RateLimitMiddleware``'s, then the admitted rows (1, 10 and
    100 rules, matching one or none, and a user filter through ``extract_identifier``) and the
    refused rows (one rule per strategy, its budget spent)."""
    bare = mw_time(mw_inner, "bare app", s, header=None)
    plain = mw_time(
        seawall.RateLimitMiddleware(mw_inner, limits="1000000000/second"),
        "RateLimitMiddleware",
        s,
    )
    admitted_rows = []
    for count in RULE_COUNTS:
        for match in (True, False):
            matches = "one matches" if match else "none match (default)"
            label = f"{count} rule{'s' if count > 1 else ''}, {matches}"
            admitted_rows.append(_mw_pair(rule_dicts(count, match), label, s))
    # The last of 100 near misses becomes a user_ids rule the request's identifier matches.
    users = rule_dicts(100, False)
    users[-1] = {k: v for k, v in users[-1].items() if k not in ("endpoints", "ip_addresses")}
    users[-1]["user_ids"] = ["alice"]
    admitted_rows.append(
        _mw_pair(users, "100 rules, a user_ids rule matches (extract_identifier)", s, extract=True)
    )
    refused_rows = []
    for strategy, status, header in (
        ("hard", 429, None),
        ("retry_after", 429, b"retry-after"),
        ("queue", 202, b"retry-after"),
        ("graceful", 200, b"x-ratelimit-degraded"),
        ("throttle", 429, b"retry-after"),
    ):
        spent = [
            {
                "name": DEFAULT_RULE,
                "scope": "per_user",
                "rate": 1,
                "window_seconds": 3600,
                "strategy": strategy,
                **({"max_queued": 10**9} if strategy == "queue" else {}),
            }
        ]
        label = {
            "hard": "hard: 429",
            "retry_after": "retry_after: 429 + Retry-After",
            "queue": "queue: 202 (a place left)",
            "graceful": "graceful: the app, degraded",
            "throttle": "throttle: no slot within max_delay, 429",
        }[strategy]
        refused_rows.append(
            _mw_pair(spent, label, s, status=status, header=header, with_http=False)
        )
    return bare, plain, admitted_rows, refused_rows


def print_middleware(
    bare: float, plain: float, admitted_rows: list[MwRow], refused_rows: list[MwRow]
) -> None:
    print("## The middleware: a request through `RulesMiddleware`, in-process")
    print()
    print(
        f"Each middleware around a trivial ASGI app (start + body; alone {ns(bare)} ns), called "
        "with an `http` scope copied per call, N calls in a loop inside one `asyncio.run`. "
        "'added' = the request's ns minus the bare app's. seed-style: the seed-style engine's "
        "`select` + `await check_limit` (lock, overrides, metrics) in a pure-ASGI middleware "
        "(the cheapest Python) and in a Starlette `BaseHTTPMiddleware` (the seed's likely shape). "
        f"For scale: seawall's `RateLimitMiddleware(limits=...)` adds {ns(plain - bare)} ns."
    )
    print()
    print("### Admitted requests (rate 1e9/s; the strategy plays no part)")
    print()
    rows = []
    for r in admitted_rows:
        added = r.seawall - bare
        http = r.seed_http if r.seed_http is not None else 0.0
        rows.append(
            [
                r.label,
                ns(added),
                ns(r.seed_asgi - bare),
                ns(http - bare),
                x(r.seed_asgi - bare, added),
                x(http - bare, added),
            ]
        )
    print(
        table(
            [
                "rules",
                "seawall added ns",
                "seed-style ASGI added ns",
                "seed-style BaseHTTP added ns",
                "ASGI / seawall",
                "BaseHTTP / seawall",
            ],
            rows,
            {1, 2, 3, 4, 5},
        )
    )
    print()
    print("### Refused requests, one rule per strategy (its budget spent)")
    print()
    print(
        table(
            ["strategy: response", "seawall ns", "seed-style ASGI ns", "ASGI / seawall"],
            [
                [r.label, ns(r.seawall), ns(r.seed_asgi), x(r.seed_asgi, r.seawall)]
                for r in refused_rows
            ],
            {1, 2, 3},
        )
    )
    print()
    print(
        "Refused rows are whole requests (the graceful row includes the app's response). "
        "THROTTLE's booked wait is a real `asyncio.sleep`, not timed: the row times the refusal "
        "past `max_delay`."
    )
    print(flush=True)


# --------------------------------------------------------------------------------------------
# Output


def x(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def engine_part(s: Settings) -> None:
    """Selection, check_limit, select + check, and the issue's bars."""
    sel = run_selection(s)
    print("## Selection: `select(identifier=, endpoint=, ip_address=, default=)`")
    print()
    rows = [
        [
            f"{r.count}",
            "one rule" if r.match else "none (default)",
            ns(r.seawall),
            ns(r.python),
            x(r.python, r.seawall),
        ]
        for r in sel
    ]
    print(
        table(
            ["filtered rules", "request matches", "seawall ns", "seed-style ns", "speedup"],
            rows,
            {0, 2, 3, 4},
        )
    )
    print(flush=True)

    brk = run_breakdown(s)
    print("## Where selection's time goes: 100 rules of one filter kind, request matching none")
    print()
    print(
        table(
            ["filters", "seawall ns", "seed-style ns"],
            [[label, ns(a), ns(b) if b else ""] for label, a, b in brk],
            {1, 2},
        )
    )
    print(flush=True)

    keys = [f"user:client-{i}" for i in range(N_KEYS)]
    chk = run_check(s, keys)
    print("## check_limit: `engine.check(rule, id)` vs seed-style (per-user token bucket)")
    print()
    engines: list[tuple[str, Callable[[CheckRow], float]]] = [
        ("seawall `engine.check(rule, id)`", lambda r: r.seawall),
        (
            f"seawall `engine.check`, the rule holding {3 * FAT_FILTERS} filter entries",
            lambda r: r.seawall_fat,
        ),
        ("floor: seawall `ClientRateLimiter.try_consume(id)` (no rules)", lambda r: r.floor),
        ("seed-style `check_limit_sync(id, rule)` (no lock, no metrics)", lambda r: r.seed_sync),
        ("seed-style `await check_limit(id, rule)` (lock, no metrics)", lambda r: r.seed_await),
        (
            "seed-style `await check_limit` + overrides + metrics (as documented)",
            lambda r: r.seed_full,
        ),
    ]
    print(
        table(
            [
                "engine",
                *(f"{r.label} ns" for r in chk),
                *(f"ratio to seawall check, {r.label}" for r in chk),
            ],
            [
                [label, *(ns(get(r)) for r in chk), *(x(get(r), r.seawall) for r in chk)]
                for label, get in engines
            ],
            set(range(1, 1 + 2 * len(chk))),
        )
    )
    print()
    print(
        "ratio to seawall check = the row's ns / seawall `engine.check` ns (on seed-style rows: "
        "seawall's speedup). seawall's engine counts per-rule metrics on every check; the "
        "first two seed-style rows leave them out, the last one pays for them. The floor "
        "row is not a rules engine: it shows what one native keyed bucket costs from Python."
    )
    print(flush=True)

    e2e = run_end_to_end(s)
    print("## Select + check (what a middleware does per request), hot key")
    print()
    print(
        table(
            ["rules", "seawall ns", "seed-style ns", "speedup"],
            [[label, ns(a), ns(b), x(b, a)] for label, a, b in e2e],
            {1, 2, 3},
        )
    )
    print()

    by = {(r.count, r.match): r.seawall for r in sel}
    print("## Bars (issue 15; informational, timings are never tests)")
    print()
    for match, what in ((True, "matching one rule"), (False, "matching none")):
        added = by[(100, match)] - by[(1, match)]
        print(
            f"bar 1: selection among 100 rules adds <= 1 us over one rule ({what}): "
            f"+{added:,.0f} ns {verdict(added <= 1000)}"
        )
    one_kind = ", ".join(f"{label}: +{a - by[(1, False)]:,.0f} ns" for label, a, _ in brk[:3])
    print(f"       (100 rules of one filter kind, over one rule, matching none: {one_kind})")
    for r in chk:
        for what, slow in (
            ("the seed's engine as documented: await, overrides, metrics", r.seed_full),
            ("strict: its sync core, no lock, no metrics", r.seed_sync),
        ):
            print(
                f"bar 2: check_limit >= 20x a seed-style engine ({r.label}; {what}): "
                f"{slow / r.seawall:.1f}x {verdict(slow / r.seawall >= 20)}"
            )
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short repeats, 3 of them")
    parser.add_argument("--target-ms", type=float, default=None, help="time per repeat")
    parser.add_argument(
        "--part",
        choices=("all", "engine", "middleware"),
        default="all",
        help="the engine's rows, the middleware's, or both",
    )
    args = parser.parse_args()
    target_ms = args.target_ms if args.target_ms is not None else (20.0 if args.quick else 200.0)
    s = Settings(target_ns=int(target_ms * 1e6), repeats=3 if args.quick else 5)

    started = time.perf_counter()
    print_header(
        "# seawall RulesEngine vs seed-002-style Python: selection and check_limit, in-process",
        {"seawall": seawall.__version__},
    )
    print(
        f"- method: perf_counter_ns around a plain `for` loop, best of {s.repeats} repeats of "
        f"~{target_ms:g} ms, GC off while timing; every call admitted (rate 1e9/s)"
    )
    print(
        f"- request: identifier `{REQ_USER}`, endpoint `{REQ_ENDPOINT}`, ip `{REQ_IP}`; rules "
        "rotate endpoint-glob / user_ids / CIDR filters; 'matching' = the last rule matches"
    )
    print(flush=True)

    if args.part in ("all", "engine"):
        engine_part(s)
    if args.part in ("all", "middleware"):
        print_middleware(*run_middleware(s))
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
