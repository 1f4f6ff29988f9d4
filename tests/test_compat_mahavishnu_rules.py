"""Seed 002's drop-in ``seawall.compat.mahavishnu.rate_limiting``: the resolutions of the seed's
ambiguities (SEEDS-002-003.md) about rules, decisions, strategy handlers and engines, on
seawall's clock (never a sleep). Overrides and metrics: ``..._overrides.py``; the middleware:
``..._middleware.py``; Redis: ``..._redis.py``; the seed's own tests: ``..._seed.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from seawall.compat.mahavishnu.rate_limiting import (
    LimitScope,
    LimitStrategy,
    OverrideReason,
    OverrideRequest,
    RateLimitAlgorithm,
    RateLimitDecision,
    RateLimitEngine,
    RateLimitRule,
    RateLimitStrategyHandler,
    create_default_rules,
    create_rate_limiter,
)
from seawall.compat.mahavishnu.rate_limiting._engine import store_url
from seawall.testing import ManualClock, use_clock

T0 = 1_800_000_000.0


def rule(name: str = "r", scope: LimitScope = LimitScope.PER_USER, **fields: Any) -> RateLimitRule:
    fields.setdefault("rate", 10)
    return RateLimitRule(name=name, scope=scope, **fields)


def limiter(clock: ManualClock, *rules: RateLimitRule, **options: Any) -> RateLimitEngine:
    engine = create_rate_limiter(clock=clock, **options)
    for r in rules:
        engine.add_rule_sync(r)
    return engine


def allowed(engine: RateLimitEngine, n: int, identifier: str = "u", name: str = "r") -> list[bool]:
    return [engine.check_limit_sync(identifier, name).allowed for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Rules: A1, A2, A19, A21, A28


def test_a1_burst_per_algorithm() -> None:
    clock = ManualClock(T0)
    engine = limiter(
        clock,
        rule("tb", rate=10, burst=4),
        rule("leaky", rate=10, burst=20, algorithm=RateLimitAlgorithm.LEAKY_BUCKET),
        rule("fixed", rate=3, burst=1, algorithm=RateLimitAlgorithm.FIXED_WINDOW),
    )
    assert allowed(engine, 5, name="tb") == [True] * 4 + [False]  # the bucket holds `burst`
    assert allowed(engine, 2, name="leaky") == [True, False]  # no bursts: one per 6 s
    assert allowed(engine, 4, name="fixed") == [True] * 3 + [False]  # `rate`; burst unused
    clock.advance(6)
    assert allowed(engine, 2, name="tb") == [True, False]  # refilled at rate per window
    assert allowed(engine, 2, name="leaky") == [True, False]


def test_a2_fields_read_back_as_given_and_defaults_come_from_the_engine() -> None:
    given: dict[str, Any] = {
        "name": "api",
        "scope": LimitScope.PER_IP,
        "rate": 100,
        "burst": 10,
        "window_seconds": 60,
        "algorithm": RateLimitAlgorithm.SLIDING_WINDOW,
        "strategy": LimitStrategy.THROTTLE,
        "endpoints": ["/api/search"],
        "user_ids": ("premium_user",),
        "ip_addresses": ["192.168.1.0/24"],
        "priority": 100,
        "enabled": False,
        "max_delay": 5.0,
        "max_queued": None,
    }
    r = RateLimitRule(**given)
    assert {f.name: getattr(r, f.name) for f in dataclasses.fields(r)} == given
    assert r.scope is LimitScope.PER_IP and r.algorithm is RateLimitAlgorithm.SLIDING_WINDOW
    plain = RateLimitRule(name="p", scope=LimitScope.GLOBAL, rate=1)
    assert plain.algorithm is None and plain.strategy is None
    engine = limiter(ManualClock(T0), plain, default_strategy=LimitStrategy.HARD)
    engine.add_rule_sync(rule("soft", strategy=LimitStrategy.GRACEFUL))
    assert engine.check_limit_sync("u", "p").strategy is LimitStrategy.HARD
    assert engine.check_limit_sync("u", "soft").strategy is LimitStrategy.GRACEFUL
    listed = engine.get_rule_sync("soft")
    assert listed.strategy is LimitStrategy.GRACEFUL and listed.scope is LimitScope.PER_USER
    assert [r.name for r in engine.list_rules_sync()] == ["p", "soft"]


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"window_seconds": 0}, ValueError, "window_seconds"),
        ({"rate": 10, "burst": 21}, ValueError, "burst"),
        ({"burst": 0}, ValueError, "burst"),
        ({"ip_addresses": ["10.0.0.0/33"]}, ValueError, "ip_addresses"),
        ({"name": ""}, ValueError, "name"),
        ({"scope": "per_usr"}, ValueError, "per_usr"),
        ({"strategy": "soft"}, ValueError, "strategy"),
        ({"rate": "10"}, ValueError, "rate"),
        ({"endpoints": "/api/search"}, TypeError, "endpoints"),
        ({"algorithm": object()}, TypeError, "algorithm"),
        ({"max_delay": -1}, ValueError, "max_delay"),
    ],
)
def test_a19_bad_rules_are_refused_when_made_naming_the_field(
    fields: dict[str, Any], error: type[Exception], field: str
) -> None:
    fields = {"name": "r", "scope": LimitScope.PER_USER, "rate": 10, **fields}
    with pytest.raises(error, match=field):
        RateLimitRule(**fields)


def test_a19_a_rule_changed_after_it_was_made_is_checked_again_when_added() -> None:
    r = rule()
    r.rate = 0
    with pytest.raises(ValueError, match="rate"):
        create_rate_limiter().add_rule_sync(r)


def test_a21_enum_values_are_the_lower_case_names() -> None:
    for enum in (LimitScope, LimitStrategy, RateLimitAlgorithm, OverrideReason):
        for member in enum:
            assert member.value == member.name.lower() and enum(member.value) is member
            assert isinstance(member, str)
    assert LimitStrategy("hard") is LimitStrategy.HARD
    assert LimitScope.PER_ENDPOINT.value == "per_endpoint"


def test_a28_replacing_a_rule_keeps_its_budgets_only_if_its_numbers_stay() -> None:
    engine = limiter(ManualClock(T0), rule(rate=2))
    assert allowed(engine, 3) == [True, True, False]
    engine.add_rule_sync(rule(rate=2, priority=5))  # same numbers: still spent
    assert allowed(engine, 1) == [False]
    engine.add_rule_sync(rule(rate=3))  # new numbers: a fresh budget
    assert allowed(engine, 4) == [True] * 3 + [False]
    assert engine.remove_rule_sync("r") and not engine.remove_rule_sync("r")


# --------------------------------------------------------------------------------------------
# Decisions: A6, A7, A8, A9, A26


@pytest.mark.parametrize(("rate", "wait"), [(10, 6), (2, 30), (7, 9)])
def test_a8_retry_after_is_exact_whole_seconds(rate: int, wait: int) -> None:
    clock = ManualClock(T0)
    engine = limiter(clock, rule(rate=rate))
    decisions = [engine.check_limit_sync("u", "r") for _ in range(rate + 1)]
    assert all(d.retry_after is None for d in decisions[:-1])
    refused = decisions[-1]
    assert not refused.allowed and refused.retry_after == wait
    assert type(refused.retry_after) is int
    clock.advance(wait)  # waiting exactly that long admits the retry
    assert engine.check_limit_sync("u", "r").allowed


def test_a9_tokens_remaining_keeps_fractions_for_buckets() -> None:
    clock = ManualClock(T0)
    engine = limiter(
        clock, rule(rate=10), rule("w", rate=10, algorithm=RateLimitAlgorithm.FIXED_WINDOW)
    )
    first = engine.check_limit_sync("u", "r")
    assert first.tokens_remaining == 9.0 and isinstance(first.tokens_remaining, float)
    allowed(engine, 9)
    clock.advance(3)  # half a token back (one every 6 s)
    half = engine.check_limit_sync("u", "r")
    assert not half.allowed and half.tokens_remaining == pytest.approx(0.5)
    clock.advance(3)
    assert engine.check_limit_sync("u", "r").tokens_remaining == pytest.approx(0.0)
    assert engine.check_limit_sync("u", "w").tokens_remaining == 9.0  # windows: whole requests


def test_a6_a7_strategies_keep_the_limiters_verdict() -> None:
    clock = ManualClock(T0)
    engine = limiter(
        clock,
        rule("hard", rate=1, strategy=LimitStrategy.HARD),
        rule("soft", rate=1, strategy=LimitStrategy.GRACEFUL),
        rule("slow", rate=2, strategy=LimitStrategy.THROTTLE, max_delay=45),
    )
    allowed(engine, 1, name="hard")
    hard = engine.check_limit_sync("u", "hard")
    assert not hard.allowed and hard.retry_after == 60  # filled for callers (A7)
    allowed(engine, 1, name="soft")
    soft = engine.check_limit_sync("u", "soft")
    assert not soft.allowed and soft.degraded and soft.strategy is LimitStrategy.GRACEFUL
    slow = [engine.check_limit_sync("u", "slow") for _ in range(4)]
    assert [d.allowed for d in slow] == [True, True, False, False]
    assert [d.delay for d in slow] == pytest.approx([0, 0, 30, 0])  # one slot booked, once


def test_a6_queue_gives_a_bounded_number_of_places() -> None:
    engine = limiter(ManualClock(T0), rule(rate=1, strategy=LimitStrategy.QUEUE, max_queued=2))
    got = [engine.check_limit_sync("u", "r") for _ in range(4)]
    assert [d.allowed for d in got] == [True, False, False, False]
    assert [d.queued for d in got] == [False, True, True, False]  # then 429
    assert all(d.retry_after == 60 for d in got[1:])


def test_a26_an_unknown_rule_is_a_lookup_error_naming_it() -> None:
    engine = create_rate_limiter()
    for call in (
        lambda: engine.check_limit_sync("u", "nope"),
        lambda: engine.get_metrics_sync("nope"),
        lambda: engine.get_rule_sync("nope"),
    ):
        with pytest.raises(LookupError, match="nope"):
            call()


# --------------------------------------------------------------------------------------------
# Strategy handlers: A17


class Lenient(RateLimitStrategyHandler):
    """The seed's custom handler."""

    calls = 0

    async def apply_strategy(
        self, decision: RateLimitDecision, identifier: str
    ) -> RateLimitDecision:
        Lenient.calls += 1
        if not decision.allowed:
            decision.allowed = True
            decision.tokens_remaining = 0.1
        return decision


def test_a17_a_handler_cannot_disable_the_limit_for_anyone_else() -> None:
    engine = limiter(ManualClock(T0), rule("g", LimitScope.GLOBAL, rate=1))
    Lenient.calls = 0
    Lenient(engine)  # constructing registers nothing
    assert allowed(engine, 2, name="g") == [True, False] and Lenient.calls == 0

    engine.set_strategy_handler(Lenient(engine))
    rewritten = engine.check_limit_sync("alice", "g")
    assert rewritten.allowed and rewritten.tokens_remaining == 0.1 and Lenient.calls == 1
    plain = limiter(ManualClock(T0), rule("g", LimitScope.GLOBAL, rate=1))
    assert allowed(plain, 2, "bob", "g") == [True, False]  # another engine: untouched
    engine.set_strategy_handler(None)
    assert not engine.check_limit_sync("bob", "g").allowed  # the limit itself never moved
    m = engine.get_metrics_sync("g")
    assert (m.allowed_requests, m.denied_requests) == (1, 3)  # counted before the handler


def test_a17_what_a_handler_returns_is_returned_under_await_too() -> None:
    seen: list[RateLimitDecision] = []

    class Keep(RateLimitStrategyHandler):
        async def apply_strategy(
            self, decision: RateLimitDecision, identifier: str
        ) -> RateLimitDecision:
            seen.append(decision)
            return dataclasses.replace(decision, rule_name="changed")

    engine = create_rate_limiter(clock=ManualClock(T0))
    engine.add_rule_sync(rule())
    engine.set_strategy_handler(Keep(engine))
    got = asyncio.run(engine.check_limit("u", "r"))
    assert got.rule_name == "changed" and seen[0].rule_name == "r" and got is not seen[0]


# --------------------------------------------------------------------------------------------
# Engines: A16, A20, A30


def test_a20_new_independent_engines_and_default_rules() -> None:
    clock = ManualClock(T0)
    one, two = create_rate_limiter(clock=clock), create_rate_limiter(clock=clock)
    assert one is not two
    one.add_rule_sync(rule(rate=1))
    with pytest.raises(LookupError):
        two.check_limit_sync("u", "r")
    rules = create_default_rules()
    assert rules is not create_default_rules() and rules[0] is not create_default_rules()[0]
    numbers = {r.name: (r.scope, r.rate, r.window_seconds) for r in rules}
    assert numbers == {
        "api_global": (LimitScope.GLOBAL, 1000, 60),
        "api_per_user": (LimitScope.PER_USER, 100, 60),
        "api_per_ip": (LimitScope.PER_IP, 50, 60),
        "expensive_operations": (LimitScope.PER_USER, 10, 60),
    }
    assert all(r.burst is None or 1 <= r.burst <= 2 * r.rate for r in rules)
    assert list(rules[3].endpoints) == ["/api/search", "/api/export"]
    for r in rules:
        one.add_rule_sync(r)
    assert one.check_limit_sync("u", "api_per_user").allowed


def test_a20_factory_defaults_and_seed_store_urls() -> None:
    engine = create_rate_limiter()
    assert engine.default_algorithm is RateLimitAlgorithm.TOKEN_BUCKET
    assert engine.default_strategy is LimitStrategy.RETRY_AFTER
    with pytest.raises(ValueError, match="default_strategy"):
        create_rate_limiter(default_strategy="soft")
    assert store_url("sentinel://localhost:26379/0") == "redis+sentinel://localhost:26379/0"
    assert store_url("redis-cluster://localhost:7000/0") == "redis+cluster://localhost:7000/0"
    assert store_url("redis://:pw@localhost:6379/0") == "redis://:pw@localhost:6379/0"
    assert store_url(None) is None


def test_a30_every_method_has_a_sync_twin_and_engines_outlive_event_loops() -> None:
    engine = create_rate_limiter(clock=ManualClock(T0))
    coroutines = {
        name
        for name, f in inspect.getmembers(RateLimitEngine, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert coroutines == {
        *("add_rule", "remove_rule", "get_rule", "list_rules", "check_limit"),
        *("add_override", "remove_override", "check_override", "get_audit_log"),
        *("get_metrics", "get_all_metrics", "reset_metrics"),
    }
    for name in coroutines:
        assert callable(getattr(engine, f"{name}_sync")), name

    async def fill() -> None:
        await engine.add_rule(rule(rate=2))
        assert (await engine.check_limit("u", "r")).allowed

    async def serve() -> list[bool]:
        return [(await engine.check_limit("u", "r")).allowed for _ in range(2)]

    asyncio.run(fill())
    assert asyncio.run(serve()) == [True, False]


def test_a30_an_engine_without_a_clock_reads_seawalls_default_clock() -> None:
    engine = limiter(ManualClock(0), rule(rate=1))  # a clock of its own
    shared = create_rate_limiter()
    shared.add_rule_sync(rule(rate=1))
    with use_clock(ManualClock(T0)) as clock:
        assert clock is not None
        grant = shared.add_override_sync(
            OverrideRequest(admin_id="a", reason="r", target_user_id="x", duration_minutes=1)
        )
        assert grant.created_at == datetime.fromtimestamp(T0, tz=timezone.utc)
        assert allowed(shared, 2) == [True, False]
        clock.advance(60)
        assert allowed(shared, 1) == [True] and shared.check_override_sync(user_id="x") is None
    assert engine.add_override_sync(grant.request).created_at.timestamp() == 0


class Counting:
    """A custom algorithm: ``rate`` requests per key, then refused; it records the times seen."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.times: list[float] = []

    async def check(self, state: dict[str, Any], current_time: float) -> tuple[bool, Any]:
        self.times.append(current_time)
        used = state.get("used", 0)
        if used >= self.rate:
            return False, state
        return True, {"used": used + 1, "tokens": self.rate - used - 1}

    def get_retry_after(self, state: dict[str, Any]) -> float:
        return 2.5


def test_a16_a_custom_algorithm_decides_in_python_on_seawalls_clock() -> None:
    clock = ManualClock(T0)
    algorithm = Counting(2)
    engine = limiter(clock, rule("c", algorithm=algorithm, strategy=LimitStrategy.HARD))
    got = [engine.check_limit_sync("u", "c") for _ in range(3)]
    assert [d.allowed for d in got] == [True, True, False]
    assert got[0].tokens_remaining == 1.0 and got[2].retry_after == 3
    assert got[2].strategy is LimitStrategy.HARD
    assert algorithm.times == [T0] * 3
    assert asyncio.run(engine.check_limit("other", "c")).allowed  # a key per user
    m = engine.get_metrics_sync("c")
    assert (m.total_requests, m.denied_requests, m.violations_by_user) == (4, 1, {"u": 1})
    assert engine.get_rule_sync("c").algorithm is algorithm
    assert engine.remove_rule_sync("c")


def test_a30_sync_twins_run_an_async_handler_that_never_waits_even_inside_a_loop() -> None:
    class Waits(RateLimitStrategyHandler):
        async def apply_strategy(
            self, decision: RateLimitDecision, identifier: str
        ) -> RateLimitDecision:
            await asyncio.sleep(0)
            return decision

    engine = limiter(ManualClock(T0), rule("g", LimitScope.GLOBAL, rate=1))
    engine.set_strategy_handler(Lenient(engine))

    async def inside() -> None:
        assert engine.check_limit_sync("a", "g").allowed
        assert engine.check_limit_sync("b", "g").allowed  # the handler ran to its end here
        engine.set_strategy_handler(Waits(engine))
        with pytest.raises(RuntimeError, match="await the engine's async method"):
            engine.check_limit_sync("c", "g")

    asyncio.run(inside())
    assert not engine.check_limit_sync("d", "g").allowed  # outside a loop: a loop of its own


def test_a18_a_disabled_rule_admits_when_named() -> None:
    engine = limiter(ManualClock(T0), rule(rate=1, enabled=False))
    assert allowed(engine, 3) == [True] * 3
    assert engine.get_metrics_sync("r").allowed_requests == 3


def test_defect_13_a_memory_engine_in_one_of_several_workers_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setattr("seawall._workers._warned", False)
    with caplog.at_level(logging.WARNING, logger="seawall"):
        create_rate_limiter(redis_url="redis://127.0.0.1:1/0")  # shared: no warning
        assert not caplog.records
        create_rate_limiter()
    (warning,) = caplog.records
    assert "create_rate_limiter keeps its limits in this process's memory" in warning.getMessage()
