"""Seed 002's drop-in on a real redis-server: ``redis_url`` in the seed's spellings, budgets
shared by engines (workers) that name the same server, and what stays memory-only."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import pytest
from redis_servers import RedisServer

from seawall.compat.mahavishnu.rate_limiting import (
    LimitScope,
    OverrideReason,
    OverrideRequest,
    RateLimitRule,
    create_rate_limiter,
)
from seawall.testing import ManualClock

T0 = 1_800_000_000.0


def test_a20_a_bad_url_fails_at_once_and_a_good_one_waits_for_first_use() -> None:
    for bad in ("http://localhost:6379", "redis-cluster://127.0.0.1:7000/3", "memcached://x"):
        with pytest.raises(ValueError, match="store"):
            create_rate_limiter(redis_url=bad)
    # Nothing listens on port 1: building does not connect.
    for url in ("redis://127.0.0.1:1/0", "sentinel://127.0.0.1:1/0", "redis-cluster://127.0.0.1:1"):
        assert create_rate_limiter(redis_url=url).native.store.startswith("redis")


def test_budgets_are_shared_by_every_engine_on_the_server(redis_server: RedisServer) -> None:
    clock = ManualClock(T0)
    workers = [create_rate_limiter(redis_url=redis_server.url, clock=clock) for _ in range(2)]
    for w in workers:
        w.add_rule_sync(RateLimitRule(name="api", scope=LimitScope.PER_USER, rate=3))

    async def requests() -> list[bool]:
        return [(await workers[i % 2].check_limit("u", "api")).allowed for i in range(4)]

    assert asyncio.run(requests()) == [True, True, True, False]
    refused = workers[0].check_limit_sync("u", "api")
    assert not refused.allowed and refused.retry_after == 20
    clock.advance(20)
    assert workers[1].check_limit_sync("u", "api").allowed


def test_a16_custom_algorithms_are_refused_with_redis(redis_server: RedisServer) -> None:
    class Always:
        def check(self, state: object, current_time: float) -> tuple[bool, object]:
            return True, state

        def get_retry_after(self, state: object) -> float:
            return 1.0

    engine = create_rate_limiter(redis_url=redis_server.url)
    custom = RateLimitRule(name="c", scope=LimitScope.GLOBAL, rate=1, algorithm=Always())
    with pytest.raises(ValueError, match="algorithm"):
        engine.add_rule_sync(custom)


def test_rules_overrides_audit_and_metrics_are_shared_through_redis(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    here, there = (create_rate_limiter(redis_url=redis_server.url, clock=clock) for _ in range(2))

    async def scenario() -> None:
        await here.add_rule(RateLimitRule(name="api", scope=LimitScope.PER_USER, rate=2))
        there.native.sync()  # else within its sync interval (0.25 s)
        assert [r.name for r in await there.list_rules()] == ["api"]
        got = [(await e.check_limit("u", "api")).allowed for e in (here, there, here)]
        assert got == [True, True, False]
        for e in (here, there):
            e.native.sync()  # each worker's counts reach the store
        m = await there.get_metrics("api")
        assert (m.total_requests, m.denied_requests, m.violations_by_user) == (3, 1, {"u": 1})

        request = OverrideRequest(
            admin_id="ops", reason=OverrideReason.INCIDENT_RESPONSE, target_user_id="u"
        )
        record = await here.add_override(request)
        there.native.sync()
        found = await there.check_override(user_id="u")
        assert found is not None and found.override_id == record.override_id
        assert found.request == request
        assert (await there.check_limit("u", "api")).override_id == record.override_id
        assert await there.remove_override(record.override_id, admin_id="ops-2")
        log = await here.get_audit_log()
        assert [(e.action, e.admin_id) for e in log] == [("add", "ops"), ("remove", "ops-2")]
        await there.reset_metrics("api")
        assert (await here.get_metrics("api")).total_requests == 0

    with caplog.at_level(logging.INFO, logger="seawall.compat.mahavishnu.audit"):
        asyncio.run(scenario())
    actions = [r.getMessage().split()[2] for r in caplog.records if "audit" in r.name]
    assert actions == ["added", "removed"]  # each by the engine that did it


def test_an_expiry_on_redis_is_logged_once_by_the_engine_that_added_it(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    here, there = (create_rate_limiter(redis_url=redis_server.url, clock=clock) for _ in range(2))
    here.add_rule_sync(RateLimitRule(name="api", scope=LimitScope.PER_USER, rate=1))
    request = OverrideRequest(admin_id="ops", reason="r", target_user_id="u", duration_minutes=1)

    def logged() -> list[list[str]]:
        audit = [r for r in caplog.records if r.name == "seawall.compat.mahavishnu.audit"]
        return [r.getMessage().split()[:3] for r in audit]

    with caplog.at_level(logging.INFO, logger="seawall.compat.mahavishnu.audit"):
        record = here.add_override_sync(request)
        clock.advance(61)
        there.native.sync()
        assert there.check_override_sync(user_id="u") is None  # ended, on the shared clock
        deadline = time.monotonic() + 5
        while len(logged()) < 2:  # the store logs the expiry a moment later
            assert time.monotonic() < deadline, "the expiry was never logged"
            here.check_limit_sync("u", "api")
            time.sleep(0.01)
        for e in (here, there):
            e.check_limit_sync("u", "api")
    assert [e.action for e in there.get_audit_log_sync()] == ["add", "expire"]
    assert logged() == [
        ["override", str(record.override_id), "added"],
        ["override", str(record.override_id), "expired"],
    ]


def test_a15_the_seeds_cli_sees_what_the_drop_in_engines_share(redis_server: RedisServer) -> None:
    engine = create_rate_limiter(redis_url=redis_server.url)
    engine.add_rule_sync(RateLimitRule(name="api_limit", scope=LimitScope.PER_USER, rate=100))
    cli = [sys.executable, "-m", "seawall.compat.mahavishnu.rate_limiting"]
    listed = subprocess.run(
        [*cli, "--redis-url", redis_server.url, "rate-limit-list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "api_limit" in listed.stdout
    removed = subprocess.run(
        [*cli, "--redis-url", redis_server.url, "rate-limit-remove", "--name", "api_limit"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    engine.native.sync()
    assert engine.list_rules_sync() == []
