"""Seed 004's RateLimiterService: the seed's own tests, and the same admissions as its list of
timestamps per client."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from seawall.compat.fastmcp_example import (
    RateLimiterService,
    RateLimitMiddleware,
    rate_limit_mcp_tool,
)
from seawall.testing import ManualClock


def test_rate_limiter_allows_within_limit() -> None:
    limiter = RateLimiterService(default_limit=3, default_window=10)
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is False


def test_rate_limiter_isolates_clients() -> None:
    limiter = RateLimiterService(default_limit=1, default_window=10)
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is False
    assert limiter.check_and_record("client2")[0] is True


def test_info_holds_remaining_reset_and_retry_after() -> None:
    clock = ManualClock(start=1000.0)
    limiter = RateLimiterService(default_limit=2, default_window=60, clock=clock)
    allowed, info = limiter.check_and_record("c")
    assert allowed and info == {
        "limit": 2,
        "window": 60,
        "remaining": 1,
        "reset_time": 1060.0,
        "retry_after": 0,
    }
    clock.advance(10)
    limiter.check_and_record("c")
    allowed, info = limiter.check_and_record("c")
    assert not allowed
    assert info["retry_after"] == 50  # the first entry leaves at 1060
    assert info["reset_time"] == 1070.0
    allowed, info = limiter.check_and_record("c", limit=20, window=5)
    assert allowed and info["limit"] == 20


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="default_limit"):
        RateLimiterService(default_limit=0)
    with pytest.raises(ValueError, match="default_window"):
        RateLimiterService(default_window=0)
    limiter = RateLimiterService()
    with pytest.raises(ValueError, match="limit"):
        limiter.check_and_record("c", limit=0)
    with pytest.raises(ValueError, match="window"):
        limiter.check_and_record("c", window=-1)
    with pytest.raises(TypeError):
        limiter.check_and_record(5)  # type: ignore[arg-type]


class SeedService:
    """Seed 004's algorithm: a list of timestamps per client, pruned by each call's window.

    Times are whole milliseconds here, so that the model is exact: the seed's float seconds would
    decide `now - t < window` at the boundary by rounding noise.
    """

    def __init__(self) -> None:
        self.log: dict[str, list[int]] = {}

    def check_and_record(self, client: str, limit: int, window_ms: int, now_ms: int) -> bool:
        kept = [t for t in self.log.get(client, []) if now_ms - t < window_ms]
        self.log[client] = kept
        if len(kept) >= limit:
            return False
        kept.append(now_ms)
        return True


@settings(max_examples=300, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.integers(0, 4000),  # ms since the previous call
            st.sampled_from(["a", "b"]),
            st.integers(1, 6),  # limit
            st.sampled_from([1, 2, 5, 10]),  # window, seconds
        ),
        min_size=1,
        max_size=80,
    )
)
def test_same_admissions_as_the_seed(calls: list[tuple[int, str, int, int]]) -> None:
    clock = ManualClock(start=5000.0)
    ours = RateLimiterService(clock=clock)
    seed = SeedService()
    elapsed_ms = 0
    for gap, client, limit, window in calls:
        clock.advance(gap / 1000)
        elapsed_ms += gap
        allowed, info = ours.check_and_record(client, limit, window)
        assert allowed == seed.check_and_record(client, limit, window * 1000, elapsed_ms)
        assert info["remaining"] == max(0, limit - len(seed.log[client]))
        if not allowed:
            oldest = seed.log[client][len(seed.log[client]) - limit]
            wait_ms = oldest + window * 1000 - elapsed_ms
            assert info["retry_after"] == math.ceil(wait_ms / 1000)


# --- store= (issue 13): the same service on a real Redis --------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.integers(0, 4000), st.sampled_from(["a", "b", "c"])),
        min_size=1,
        max_size=60,
    )
)
def test_redis_store_gives_the_memory_answers(redis_url: str, calls: list[tuple[int, str]]) -> None:
    """Each client checked with its own (limit, window), as the middleware and a tool do: the
    Redis logs answer exactly as the memory ones, info dict included, on one manual clock."""
    pairs = {"a": (3, 10), "b": (1, 2), "c": (5, 60)}
    clock = ManualClock(start=5000.0)
    memory = RateLimiterService(clock=clock)
    redis = RateLimiterService(clock=clock, store=redis_url, key_prefix=f"t:{uuid.uuid4().hex}:")
    for gap, client in calls:
        clock.advance(gap / 1000)
        limit, window = pairs[client]
        assert redis.check_and_record(client, limit, window) == memory.check_and_record(
            client, limit, window
        )


def test_two_services_on_one_redis_share_the_logs(redis_url: str, redis_prefix: str) -> None:
    """Two workers' services on one Redis and prefix: one log per client, exactly the limit
    admitted between them, sync and async alike."""
    clock = ManualClock(start=1000.0)
    one, two = (
        RateLimiterService(3, 10, clock=clock, store=redis_url, key_prefix=redis_prefix)
        for _ in range(2)
    )

    async def scenario() -> list[bool]:
        admitted = []
        for i in range(8):
            if i % 2:
                admitted.append((await two.acheck_and_record("c"))[0])
            else:
                admitted.append(one.check_and_record("c")[0])
        return admitted

    assert asyncio.run(scenario()) == [True] * 3 + [False] * 5
    allowed, info = two.check_and_record("c")
    assert not allowed and info["retry_after"] == 10 and info["reset_time"] == 1010.0
    clock.advance(10)
    assert one.check_and_record("c")[0]
    assert two.reset("c") and one.check_and_record("c")[1]["remaining"] == 2
    assert one.cleanup() == 0 and len(one) == 0  # Redis holds the logs, and expires them
    assert one.store is not None and RateLimiterService().store is None


def test_redis_keeps_a_log_per_pair(redis_url: str, redis_prefix: str) -> None:
    """The documented difference: memory keeps one log per client whatever the pair, Redis
    one per (limit, window) pair."""
    clock = ManualClock(start=1000.0)
    memory = RateLimiterService(clock=clock)
    redis = RateLimiterService(clock=clock, store=redis_url, key_prefix=redis_prefix)
    for service in (memory, redis):
        assert service.check_and_record("c", 1, 10)[0]
    assert not memory.check_and_record("c", 1, 60)[0]  # the 10 s pair's entry counts here
    assert redis.check_and_record("c", 1, 60)[0]  # its own log


def test_store_and_its_options_are_checked(redis_url: str) -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        RateLimiterService(key_prefix="x:")  # memory: a Redis option would be ignored
    with pytest.raises(ValueError, match="on_error"):
        RateLimiterService(store="memory://", on_error="deny")
    with pytest.raises(TypeError, match="store"):
        RateLimiterService(store=6379)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        RateLimiterService(store="redis://127.0.0.1:99999")
    with pytest.raises(ValueError, match="on_error"):
        RateLimiterService(store=redis_url, on_error="maybe")
    with pytest.raises(ValueError, match="default_window"):
        RateLimiterService(default_window=2.5, store=redis_url)  # type: ignore[arg-type]
    service = RateLimiterService(store=redis_url, key_prefix=f"t:{uuid.uuid4().hex}:")
    with pytest.raises(ValueError, match="window"):
        service.check_and_record("c", 3, 0.5)
    with pytest.raises(ValueError, match="limit"):
        service.check_and_record("c", 0, 10)
    app = Starlette()
    with pytest.raises(ValueError, match="store"):
        RateLimitMiddleware(app, limiter=service, store=redis_url)
    with pytest.raises(ValueError, match="key_prefix"):
        rate_limit_mcp_tool(1, 10, limiter=service, key_prefix="p:")
    with pytest.raises(ValueError, match="command_timeout"):
        rate_limit_mcp_tool(1, 10, command_timeout=0.5)  # memory


def test_tool_decorator_on_redis(redis_url: str, redis_prefix: str) -> None:
    """``rate_limit_mcp_tool(store=...)`` on a real FastMCP server: the tool's calls go to the
    session's Redis log, which another worker's service (same Redis and prefix) shares."""
    fastmcp = pytest.importorskip("fastmcp")
    from seawall.mcp import session_identity

    clock = ManualClock(start=1000.0)
    server = fastmcp.FastMCP("compat-redis")
    # Another worker's service: the same Redis, prefix and clock.
    other = RateLimiterService(3, 10, clock=clock, store=redis_url, key_prefix=redis_prefix)
    worker = RateLimiterService(clock=clock, store=redis_url, key_prefix=redis_prefix)

    @server.tool()
    @rate_limit_mcp_tool(limit=3, window=10, limiter=worker)
    async def get_time() -> dict[str, object]:
        return {"ok": True}

    @server.tool()
    @rate_limit_mcp_tool(limit=3, window=10, limiter=worker)
    def sync_time() -> dict[str, object]:
        return {"ok": True}

    def ident(ctx: object) -> str:
        return session_identity(ctx)

    # Real classes, not this module's postponed strings: fastmcp injects the Context by type.
    ident.__annotations__ = {"ctx": fastmcp.Context, "return": str}
    server.tool()(ident)

    async def scenario() -> None:
        async with fastmcp.Client(server, mode="legacy") as c:

            async def call(tool: str) -> object:
                return (await c.call_tool(tool, {}, raise_on_error=False)).data

            assert await call("get_time") == {"ok": True}
            client = f"mcp_session_{await call('ident')}"
            assert other.check_and_record(client)[0]  # the other worker: 2 of 3 now
            assert await call("sync_time") == {"ok": True}  # tools share the session's log
            refused = await call("get_time")
            assert isinstance(refused, dict) and refused["rate_limited"] is True
            assert refused["retry_after"] == 10
            clock.advance(10)
            assert await call("get_time") == {"ok": True}

    asyncio.run(scenario())


def test_a_subclass_check_and_record_is_still_called_on_redis(
    redis_url: str, redis_prefix: str
) -> None:
    """The seed's own pattern for Redis is a subclass overriding ``check_and_record``: the
    async path and the tool decorator call the override, not around it."""
    seen: list[str] = []

    class Audited(RateLimiterService):
        def check_and_record(
            self, client_id: str, limit: int | None = None, window: float | None = None
        ) -> tuple[bool, dict[str, object]]:
            seen.append(client_id)
            return super().check_and_record(client_id, limit, window)

    service = Audited(1, 10, clock=ManualClock(1000.0), store=redis_url, key_prefix=redis_prefix)
    assert asyncio.run(service.acheck_and_record("a"))[0]
    assert not service._tool_limiter(1, 10, "tool:key:").hit("tool:key:a").allowed
    assert seen == ["a", "a"]
