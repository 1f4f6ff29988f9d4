"""``RulesEngine`` on every store, and ``RulesGate`` (issue 15): selection and decision in one
call, the same answers in memory, on the host store and on Redis (sync and awaited), QUEUE's
bounded places, THROTTLE's booking and Retry-After's exact whole seconds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import seawall.host
from seawall.rules import RuleDecision, RulesEngine, RulesGate
from seawall.testing import ManualClock

RULES = [
    {"name": "api", "scope": "per_user", "rate": 3, "window_seconds": 60},
    {
        "name": "queued",
        "scope": "per_ip",
        "rate": 2,
        "window_seconds": 10,
        "strategy": "queue",
        "max_queued": 1,
        "endpoints": ["/jobs*"],
        "priority": 5,
    },
    {
        "name": "slow",
        "scope": "global",
        "rate": 2,
        "window_seconds": 1,
        "strategy": "throttle",
        "max_delay": 1,
        "endpoints": ["/slow"],
        "priority": 5,
    },
    {
        "name": "soft",
        "scope": "per_endpoint",
        "rate": 1,
        "window_seconds": 60,
        "strategy": "graceful",
        "endpoints": ["/soft"],
        "priority": 5,
    },
]


def filled(clock: ManualClock, **store: str) -> RulesEngine:
    engine = RulesEngine(clock=clock, **store)
    for rule in RULES:
        engine.add_rule(rule)
    return engine


def seen(d: RuleDecision | None) -> tuple[object, ...] | None:
    if d is None:
        return None
    return (d.rule, d.allowed, d.remaining, d.retry_after_header, d.queued, d.delay, d.degraded)


# (identifier, endpoint, ip, seconds to advance before it)
SCRIPT = [
    ("u1", "/", None, 0),
    ("u1", "/", None, 0),
    ("u1", "/", None, 0),
    ("u1", "/", None, 0),  # refused: 4th of 3 per minute
    ("u2", "/jobs/1", "10.0.0.1", 0),
    ("u2", "/jobs/1", "10.0.0.1", 0),
    ("u2", "/jobs/1", "10.0.0.1", 0),  # refused, queued
    ("u2", "/jobs/2", "10.0.0.1", 0),  # refused, queue full
    ("u3", "/slow", None, 0),
    ("u4", "/slow", None, 0),
    ("u5", "/slow", None, 0),  # refused, slot booked 0.5 s on
    ("u6", "/slow", None, 0),  # refused, next slot 1 s on: booked (max_delay 1)
    ("u7", "/slow", None, 0),  # refused, beyond max_delay: not booked
    ("u8", "/soft", None, 0),
    ("u9", "/soft", None, 0),  # refused, degraded
    ("u1", "/", None, 20),  # one token back
    ("u1", "/", None, 0),
]


def memory_answers() -> list[tuple[object, ...] | None]:
    clock = ManualClock(1_000)
    return run_sync(filled(clock), clock)


def run_sync(engine: RulesEngine, clock: ManualClock) -> list[tuple[object, ...] | None]:
    out = []
    for identifier, endpoint, ip, advance in SCRIPT:
        clock.advance(advance)
        out.append(seen(engine.decide(identifier, endpoint=endpoint, ip_address=ip, default="api")))
    return out


async def run_async(engine: RulesEngine, clock: ManualClock) -> list[tuple[object, ...] | None]:
    out = []
    for identifier, endpoint, ip, advance in SCRIPT:
        clock.advance(advance)
        d = await engine.adecide(identifier, endpoint=endpoint, ip_address=ip, default="api")
        out.append(seen(d))
    return out


@pytest.fixture
def host_store() -> Iterator[str]:
    name = f"rules-{uuid.uuid4().hex[:12]}"
    yield f"host://{name}"
    seawall.host.remove(name)


def test_memory_answers_the_script() -> None:
    clock = ManualClock(1_000)
    got = run_sync(filled(clock), clock)
    assert got[3] == ("api", False, 0, 20, False, 0.0, False)
    assert [g[4] for g in got[4:8] if g] == [False, False, True, False]  # queued once, then full
    assert [g[5] for g in got[8:13] if g] == [0.0, 0.0, 0.5, 1.0, 0.0]  # booked, then past bound
    assert got[14] == ("soft", False, 0, 60, False, 0.0, True)
    assert got[15] is not None and got[15][1] and got[16] is not None and not got[16][1]


def test_the_host_store_answers_as_memory_does(host_store: str) -> None:
    clock = ManualClock(1_000)
    expected = memory_answers()
    assert run_sync(filled(clock, store=host_store), clock) == expected


def test_host_store_budgets_are_shared_by_two_engines(host_store: str) -> None:
    clock = ManualClock(1_000)
    one, two = filled(clock, store=host_store), filled(clock, store=host_store)
    admitted = [e.check("api", "u").allowed for e in (one, two, one, two)]
    assert admitted == [True, True, True, False]


def test_redis_answers_as_memory_does_sync_and_awaited(redis_url: str, redis_prefix: str) -> None:
    expected = memory_answers()
    clock = ManualClock(1_000)
    redis = filled(clock, store=redis_url, key_prefix=redis_prefix + "s:")
    assert redis.is_async and run_sync(redis, clock) == expected
    clock = ManualClock(1_000)
    redis = filled(clock, store=redis_url, key_prefix=redis_prefix + "a:")
    assert asyncio.run(run_async(redis, clock)) == expected


def test_redis_counts_exactly_under_concurrency(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_000)
    one = filled(clock, store=redis_url, key_prefix=redis_prefix)
    two = filled(clock, store=redis_url, key_prefix=redis_prefix)

    async def flood() -> list[RuleDecision]:
        calls = [e.acheck("api", "shared") for _ in range(50) for e in (one, two)]
        return await asyncio.gather(*calls)

    decisions = asyncio.run(flood())
    assert sum(d.allowed for d in decisions) == 3
    two.sync()  # its counts reach the store now (else within its sync_interval)
    assert one.get_metrics("api")["allowed_requests"] == 3  # the sum over both engines
    assert one.reset("api", "shared") and one.check("api", "shared").allowed


def test_retry_after_header_is_exact_whole_seconds() -> None:
    clock = ManualClock(1_000)
    engine = RulesEngine(clock=clock)
    engine.add_rule({"name": "ten", "scope": "per_user", "rate": 10, "window_seconds": 60})
    engine.add_rule({"name": "two", "scope": "per_user", "rate": 2, "window_seconds": 60})
    ten = [engine.check("ten", "u") for _ in range(11)]
    two = [engine.check("two", "u") for _ in range(3)]
    assert [d.retry_after_header for d in ten] == [0] * 10 + [6]
    assert [d.retry_after_header for d in two] == [0, 0, 30]
    clock.advance(6)
    assert engine.check("ten", "u").allowed  # waiting exactly that long admits the retry


def test_the_gate_reads_the_client_through_trusted_proxies_only() -> None:
    engine = RulesEngine(clock=ManualClock(1_000))
    engine.add_rule({"name": "by_ip", "scope": "per_ip", "rate": 1, "window_seconds": 60})
    engine.add_rule(
        {
            "name": "office",
            "scope": "per_ip",
            "rate": 100,
            "window_seconds": 60,
            "ip_addresses": ["192.0.2.0/24"],
            "priority": 1,
        }
    )
    gate = RulesGate(engine, default_rule="by_ip", trusted_proxies=["10.0.0.0/8"])

    def scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"type": "http", "path": "/", "client": (peer, 1), "headers": headers}

    # Behind the trusted proxy, the forwarded address is the client's (and selects "office").
    via_proxy = gate.decide(scope("10.1.1.1", "192.0.2.7"))
    assert via_proxy is not None and via_proxy.rule == "office"
    assert gate.client_ip(scope("10.1.1.1", "192.0.2.7")) == "192.0.2.7"
    # From anyone else the header is forged: the peer is the client, and its budget is spent.
    forged = [gate.decide(scope("203.0.113.5", f"192.0.2.{i}")) for i in range(3)]
    answers = [(d.rule, d.allowed) for d in forged if d is not None]
    assert answers == [("by_ip", True)] + [("by_ip", False)] * 2
    assert RulesGate(engine).decide(scope("203.0.113.6")) is None  # no rule, no default
    with pytest.raises(KeyError, match="nope"):
        RulesGate(engine, default_rule="nope")
    with pytest.raises(ValueError, match="trusted_proxies"):
        RulesGate(engine, trusted_proxies=["not-an-ip"])


def test_bad_store_options_are_named() -> None:
    with pytest.raises(ValueError, match="max_queued"):
        RulesEngine().add_rule(
            {"name": "q", "scope": "global", "rate": 1, "window_seconds": 1, "max_queued": 0}
        )
    with pytest.raises(ValueError, match="key_prefix"):
        RulesEngine(store="redis://127.0.0.1:1/0", key_prefix="a{b}")
    with pytest.raises(ValueError, match="on_error"):
        RulesEngine(store="redis://127.0.0.1:1/0", on_error="maybe")
    with pytest.raises(ValueError, match="store"):
        RulesEngine(store="ftp://nowhere")


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Polls until ``condition`` holds (another engine's watcher thread applies changes)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the change did not reach the other engine"
        time.sleep(0.01)


def test_rules_overrides_and_metrics_are_shared_through_redis(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    here = RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix, sync_interval=0.05)
    there = RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix, sync_interval=0.05)
    assert there.rules() == []  # loaded (nothing yet), and its watcher runs
    here.add_rule({"name": "api", "scope": "per_user", "rate": 3, "window_seconds": 60})
    wait_for(lambda: [r["name"] for r in there.rules()] == ["api"])
    # One budget for both (Redis), counted exactly.
    admitted = [e.check("api", "u").allowed for e in (here, there, here, there)]
    assert admitted == [True, True, True, False]
    # Metrics: each engine's counts, summed in the store.
    for e in (here, there):
        e.sync()
    both = here.get_metrics("api")
    assert (both["total_requests"], both["denied_requests"]) == (4, 1)
    assert both["violations_by_user"]["entries"] == [{"key": "u", "count": 1, "error": 0}]
    # An override added in one engine lets the client through in the other.
    grant = here.add_override(
        {"target_user_id": "u", "unlimited": True, "duration_minutes": 1, "admin_id": "ops"}
    )
    wait_for(lambda: there.check_override(user_id="u") is not None)
    assert there.check("api", "u").override_id == grant["override_id"]
    assert there.remove_override(grant["override_id"], "ops-2")
    wait_for(lambda: here.check_override(user_id="u") is None)
    assert [(e["action"], e["admin_id"]) for e in here.audit_log()] == [
        ("add", "ops"),
        ("remove", "ops-2"),
    ]
    # A replaced rule and a removed one reach the other engine; reset zeroes the shared totals.
    here.add_rule({"name": "api", "scope": "per_user", "rate": 5, "window_seconds": 60})
    wait_for(lambda: there.get_rule("api")["rate"] == 5)
    there.reset_metrics("api")
    assert here.get_metrics("api")["total_requests"] == 0
    assert there.remove_rule("api")
    wait_for(lambda: here.rules() == [])
    with pytest.raises(KeyError, match="api"):
        here.check("api", "u")


def test_an_override_that_ends_is_logged_once_in_the_shared_audit(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    engines = [
        RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix, sync_interval=0.02)
        for _ in range(3)
    ]
    engines[0].add_rule({"name": "api", "scope": "per_user", "rate": 1, "window_seconds": 60})
    engines[0].add_override(
        {"target_user_id": "u", "unlimited": True, "duration_minutes": 1, "admin_id": "ops"}
    )
    for e in engines:
        e.sync()
    clock.advance(61)
    wait_for(lambda: all(e.check_override(user_id="u") is None for e in engines))
    wait_for(lambda: len(engines[1].audit_log()) == 2)
    time.sleep(0.1)  # every watcher has had its turns: still one expiry
    assert [e["action"] for e in engines[2].audit_log()] == ["add", "expire"]


@pytest.mark.parametrize("on_error", ["deny", "allow", "local"])
def test_a_process_that_cannot_read_the_shared_rules_decides_by_on_error(on_error: str) -> None:
    """Redis down since the process started: no rule is known, so ``on_error`` decides, marked
    as a fallback (never an exception per request)."""
    from redis_servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    engine = RulesEngine(store=url, on_error=on_error, connect_timeout=0.1, command_timeout=0.1)
    d = engine.decide("u", default="api")
    assert d is not None and d.fallback and d.rule == "api"
    assert d.allowed == (on_error != "deny")
    assert d.retry_after_header == (0 if on_error != "deny" else 1)
    awaited = asyncio.run(engine.acheck("api", "u"))
    assert awaited.fallback and awaited.allowed == (on_error != "deny")
    with pytest.raises(OSError, match="could not"):
        engine.add_rule({"name": "api", "scope": "global", "rate": 1, "window_seconds": 1})


def test_every_engine_on_a_store_breaks_priority_ties_alike(
    redis_url: str, redis_prefix: str
) -> None:
    """Ties go to the rule added first to the store, whichever process added it."""
    clock = ManualClock(1_000)
    here = RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix)
    for i in range(8):
        rule = {"name": f"r{i}", "scope": "global", "rate": 5, "window_seconds": 60}
        here.add_rule({**rule, "endpoints": ["/p"], "priority": 1})
    there = RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix)
    there.sync()
    assert [r["name"] for r in there.rules()] == [f"r{i}" for i in range(8)]
    assert here.select(endpoint="/p") == there.select(endpoint="/p") == "r0"
    there.add_rule({"name": "r0", "scope": "global", "rate": 6, "window_seconds": 60})
    here.sync()  # replaced elsewhere: it keeps its place, and now has no filter
    assert here.select(endpoint="/p") == there.select(endpoint="/p") == "r1"


def test_overrides_match_a_user_id_given_apart_from_the_identifier() -> None:
    """A22: a user target matches ``user_id=`` when given, else the identifier."""
    engine = RulesEngine(clock=ManualClock(1_000))
    engine.add_rule({"name": "api", "scope": "per_ip", "rate": 1, "window_seconds": 60})
    engine.add_override({"target_user_id": "alice", "unlimited": True, "duration_minutes": 5})
    keyed_by_ip = [engine.check("api", "ip:10.0.0.1", user_id="alice") for _ in range(3)]
    assert all(d.allowed and d.override_id is not None for d in keyed_by_ip)
    # The override spent nothing: bob, on the same budget, has its one request, then no more.
    assert [engine.check("api", "ip:10.0.0.1", user_id="bob").allowed for _ in range(2)] == [
        True,
        False,
    ]
    chosen = engine.decide("ip:10.0.0.2", default="api", user_id="user:alice")
    assert chosen is not None and chosen.override_id is not None


def test_the_store_url_reads_back_without_its_password() -> None:
    engine = RulesEngine(store="redis://app:s3cret@127.0.0.1:1/0")
    assert engine.store == "redis://app:***@127.0.0.1:1/0"


def test_a_client_varying_the_path_under_an_endpoint_glob_shares_one_budget() -> None:
    """Attacker's view: a PER_ENDPOINT rule for ``/api/search*`` keys by its filter, so
    ``/api/search/1``, ``/api/search/2``, ... spend one budget (no fresh budget per path, and no
    key per path for the rule to hold)."""
    engine = RulesEngine(clock=ManualClock(1_000))
    engine.add_rule(
        {
            "name": "search",
            "scope": "per_endpoint",
            "rate": 3,
            "window_seconds": 60,
            "endpoints": ["/api/search*"],
            "priority": 1,
        }
    )
    answers = [engine.decide("u", endpoint=f"/api/search/{i}") for i in range(10)]
    assert [d.allowed for d in answers if d is not None] == [True] * 3 + [False] * 7
    # A named check of the same rule from a path outside its filters keys by that path.
    assert engine.check("search", "u", endpoint="/elsewhere").allowed
