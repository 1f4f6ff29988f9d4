"""``store=`` / ``limiter=`` on ``seawall.rate_limit`` and ``seawall.mcp`` (issue 13), against a
real redis-server: two limiter instances (as two workers hold) share one budget exactly, sync
and async, and ``on_error`` decides when Redis is not there."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import free_port

import seawall
from seawall import Limiter, RateLimitExceeded, rate_limit
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _admitted_sync(funcs: list[Any], calls: int) -> int:
    admitted = 0
    for i in range(calls):
        try:
            funcs[i % len(funcs)]()
        except RateLimitExceeded:
            continue
        admitted += 1
    return admitted


def test_two_sync_decorators_on_redis_share_one_budget_exactly(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    workers = []
    for _ in range(2):  # as two worker processes would each build it

        @rate_limit("5/minute", store=redis_url, key_prefix=redis_prefix, clock=clock)
        def endpoint() -> str:
            return "ok"

        workers.append(endpoint)
    assert _admitted_sync(workers, 12) == 5
    clock.advance(12)  # GCRA: one more every 12 s
    assert _admitted_sync(workers, 4) == 1


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=30),
    calls=st.integers(min_value=0, max_value=60),
    workers=st.integers(min_value=1, max_value=4),
)
def test_workers_on_redis_admit_exactly_the_limit(
    redis_url: str, limit: int, calls: int, workers: int
) -> None:
    prefix = f"t:prop:{uuid.uuid4().hex}:"
    clock = ManualClock(1_000)
    funcs = []
    for _ in range(workers):

        @rate_limit(f"{limit}/hour", store=redis_url, key_prefix=prefix, clock=clock)
        def endpoint() -> None:
            return None

        funcs.append(endpoint)
    assert _admitted_sync(funcs, calls) == min(limit, calls)


async def test_two_async_decorators_on_redis_share_one_budget_exactly(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    workers = []
    for _ in range(2):

        @rate_limit("4/minute", store=redis_url, key_prefix=redis_prefix, clock=clock)
        async def endpoint() -> str:
            return "ok"

        workers.append(endpoint)
    admitted = 0
    for i in range(10):
        try:
            await workers[i % 2]()
        except RateLimitExceeded:
            continue
        admitted += 1
    assert admitted == 4


async def test_async_function_awaits_redis_without_blocking_the_loop(
    redis_url: str, redis_prefix: str
) -> None:
    """The event loop runs other tasks while the Redis decision is in flight: a blocking
    ``hit`` inside the async wrapper would finish in its first step, before any other task."""

    @rate_limit("100/minute", store=redis_url, key_prefix=redis_prefix)
    async def endpoint() -> str:
        return "ok"

    done = False
    ticks = 0

    async def call() -> None:
        nonlocal done
        await endpoint()
        done = True

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    await asyncio.gather(call(), ticker())
    assert ticks > 0


def test_ready_limiter_is_shared_by_decorators(redis_url: str, redis_prefix: str) -> None:
    shared = Limiter("3/minute", store=redis_url, key_prefix=redis_prefix, clock=ManualClock(5))

    @rate_limit(limiter=shared)
    def a() -> int:
        return 1

    @rate_limit(limiter=shared)
    def b() -> int:
        return 2

    assert _admitted_sync([a, b], 8) == 3


@pytest.mark.parametrize(("on_error", "admitted"), [("allow", 6), ("deny", 0), ("local", 2)])
def test_on_error_with_a_dead_redis_port(on_error: str, admitted: int) -> None:
    @rate_limit(
        "2/minute",
        store=f"redis://127.0.0.1:{free_port()}/0",
        on_error=on_error,
        connect_timeout=0.5,
    )
    def endpoint() -> None:
        return None

    assert _admitted_sync([endpoint], 6) == admitted


async def test_on_error_deny_async_with_a_dead_redis_port() -> None:
    @rate_limit(
        "2/minute",
        store=f"redis://127.0.0.1:{free_port()}/0",
        on_error="deny",
        connect_timeout=0.5,
    )
    async def endpoint() -> None:
        return None

    with pytest.raises(RateLimitExceeded):
        await endpoint()


def test_redis_options_with_the_memory_store_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"command_timeout, key_prefix apply only with a Redis"):
        rate_limit("1/second", key_prefix="x:", command_timeout=1.0)
    with pytest.raises(ValueError, match="on_error"):
        rate_limit("1/second", store="memory://", on_error="deny")


def test_limiter_beside_its_own_settings_is_refused_by_name(redis_url: str) -> None:
    shared = Limiter("1/second")
    with pytest.raises(ValueError, match="store"):
        rate_limit(limiter=shared, store=redis_url)
    with pytest.raises(ValueError, match="key_prefix"):
        rate_limit(limiter=shared, key_prefix="p:")
    with pytest.raises(ValueError, match="limits"):
        rate_limit("5/second", limiter=shared)
    with pytest.raises(ValueError, match="limits"):
        rate_limit("60/minute", limiter=shared)  # the default's text, passed: still refused
    with pytest.raises(ValueError, match="algorithm"):
        rate_limit(limiter=shared, algorithm="sliding_window")
    with pytest.raises(TypeError, match="limiter"):
        rate_limit(limiter=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store"):
        rate_limit("1/second", store=6379)  # type: ignore[arg-type]


def test_bad_redis_option_values_are_named(redis_url: str) -> None:
    with pytest.raises(ValueError, match="on_error"):
        rate_limit("1/second", store=redis_url, on_error="sometimes")
    with pytest.raises(ValueError, match="port"):
        rate_limit("1/second", store="redis://127.0.0.1:99999/0")


# --- seawall.mcp --------------------------------------------------------------------------------

fastmcp = pytest.importorskip("fastmcp")

from fastmcp import Client, FastMCP  # noqa: E402

from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool  # noqa: E402
from seawall.mcp._stats import reset_tool_stats  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_stats() -> None:
    reset_tool_stats()


def _tool_server(redis_url: str, prefix: str, clock: ManualClock) -> FastMCP:
    server = FastMCP("w")

    @server.tool()
    @rate_limit_tool("3/minute", key="user_id", store=redis_url, key_prefix=prefix, clock=clock)
    async def search(user_id: str) -> dict[str, Any]:
        return {"user": user_id}

    @server.tool()
    @rate_limit_tool("2/minute", key="user_id", store=redis_url, key_prefix=prefix, clock=clock)
    def lookup(user_id: str) -> dict[str, Any]:
        return {"user": user_id}

    return server


async def _admitted_tool(servers: list[FastMCP], tool: str, calls: int) -> int:
    admitted = 0
    for i in range(calls):
        async with Client(servers[i % len(servers)], mode="legacy") as c:
            result = await c.call_tool(tool, {"user_id": "ann"}, raise_on_error=False)
        data = result.structured_content or {}
        if not result.is_error and not data.get("rate_limited"):
            admitted += 1
    return admitted


async def test_mcp_tools_on_redis_share_one_budget_across_two_servers(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    servers = [_tool_server(redis_url, redis_prefix, clock) for _ in range(2)]
    assert await _admitted_tool(servers, "search", 8) == 3  # async tool: ahit
    assert await _admitted_tool(servers, "lookup", 6) == 2  # sync tool: hit


async def test_mcp_middleware_on_redis_shares_one_budget_across_two_servers(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    servers = []
    for _ in range(2):
        server = FastMCP(
            "mw",
            middleware=[
                ToolRateLimitMiddleware(
                    "3/minute",
                    per_tool={"expensive": "1/minute"},
                    key="global",
                    store=redis_url,
                    key_prefix=redis_prefix,
                    clock=clock,
                )
            ],
        )

        @server.tool()
        def cheap() -> int:
            return 1

        @server.tool()
        def expensive() -> int:
            return 2

        servers.append(server)

    async def admitted(tool: str, calls: int) -> int:
        n = 0
        for i in range(calls):
            async with Client(servers[i % 2], mode="legacy") as c:
                n += not (await c.call_tool(tool, {}, raise_on_error=False)).is_error
        return n

    assert await admitted("cheap", 7) == 3
    assert await admitted("expensive", 4) == 1


async def global_limits_are_all_or_nothing(**store: Any) -> None:
    """A tool's per-client limit and the server-wide one on ``store`` (``store=`` and its
    options), across two servers: a call refused by either spends neither."""
    clock = ManualClock(1_000)
    servers = []
    for _ in range(2):
        server = FastMCP(
            "global",
            middleware=[
                ToolRateLimitMiddleware(
                    "2/minute",
                    per_tool={"wide": "10/minute"},
                    global_limits="4/minute",
                    key=lambda context: "one-client",
                    clock=clock,
                    **store,
                )
            ],
        )

        @server.tool()
        def narrow() -> int:
            return 1

        @server.tool()
        def wide() -> int:
            return 2

        servers.append(server)

    async def admitted(tool: str, calls: int) -> int:
        n = 0
        for i in range(calls):
            async with Client(servers[i % 2], mode="legacy") as c:
                n += not (await c.call_tool(tool, {}, raise_on_error=False)).is_error
        return n

    # narrow's own limit (2) binds first; its 3 refused calls spend none of the global 4.
    assert await admitted("narrow", 5) == 2
    # wide's own limit is 10: the global limit has 2 left, then refuses.
    assert await admitted("wide", 6) == 2
    clock.advance(15)  # GCRA: the global budget frees one every 15 s
    assert await admitted("wide", 3) == 1


async def test_mcp_global_limits_on_redis_are_all_or_nothing_across_servers(
    redis_url: str, redis_prefix: str
) -> None:
    """One script call for both limits, across two servers."""
    await global_limits_are_all_or_nothing(store=redis_url, key_prefix=redis_prefix)


def test_mcp_global_limits_on_redis_need_the_store_they_build(redis_url: str) -> None:
    ready = Limiter("3/minute", store=redis_url)
    with pytest.raises(ValueError, match="global_limits on Redis needs store="):
        ToolRateLimitMiddleware(limiter=ready, global_limits="10/minute")
    with pytest.raises(ValueError, match="global_limits on Redis needs store="):
        ToolRateLimitMiddleware(
            "3/minute",
            per_tool={"t": Limiter("1/minute", store=redis_url.replace("/0", "/1"))},
            global_limits="10/minute",
            store=redis_url,
        )


async def test_redis_hit_with_is_one_script_all_or_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    clock = ManualClock(1_000)
    tool = seawall.RedisLimiter("2/minute", store=redis_url, key_prefix=redis_prefix, clock=clock)
    server_wide = seawall.RedisLimiter(
        "3/minute", store=redis_url, key_prefix=redis_prefix, clock=clock
    )
    got = [tool.hit_with("a", server_wide, "*").allowed for _ in range(3)]
    assert got == [True, True, False]
    assert server_wide.test("*").remaining == 1, "a's refused call spent no global budget"
    assert (await tool.ahit_with("b", server_wide, "*")).allowed
    refused = await tool.ahit_with("c", server_wide, "*")
    assert not refused.allowed
    assert refused.limit == 3, "the global limit binds"
    assert tool.test("c").remaining == 2, "c's refused call spent nothing of its own"
    assert tool.test("a").remaining == 0, "decided with another, a key keeps its budget"
    assert tool.hit("a").allowed is False
    other_store = seawall.RedisLimiter("1/minute", store=redis_url.replace("/0", "/1"))
    with pytest.raises(ValueError, match="other"):
        tool.hit_with("a", other_store, "*")


def test_mcp_store_and_limiter_arguments_are_checked(redis_url: str) -> None:
    with pytest.raises(ValueError, match="on_error apply only with a Redis"):
        rate_limit_tool("1/minute", on_error="deny")
    with pytest.raises(ValueError, match="key_prefix apply only with a Redis"):
        ToolRateLimitMiddleware("1/minute", key_prefix="p:")
    ready = Limiter("1/minute")
    with pytest.raises(ValueError, match="limits"):
        rate_limit_tool("2/minute", limiter=ready)
    with pytest.raises(ValueError, match="store"):
        rate_limit_tool(limiter=ready, store=redis_url)
    with pytest.raises(ValueError, match="limits"):
        ToolRateLimitMiddleware("2/minute", limiter=ready)
    with pytest.raises(ValueError, match="max_keys"):
        ToolRateLimitMiddleware(limiter=ready, max_keys=10)
    with pytest.raises(ValueError, match="algorithm"):
        ToolRateLimitMiddleware(limiter=ready, algorithm="sliding_window")
    with pytest.raises(ValueError, match=r"per_tool\['x'\]"):
        ToolRateLimitMiddleware(limiter=ready, per_tool={"x": "1/minute"})
    mw = ToolRateLimitMiddleware(limiter=ready, per_tool={"x": Limiter("5/minute")})
    assert mw._default is ready


def test_public_names_unchanged() -> None:
    assert seawall.rate_limit is rate_limit


def test_redis_hit_with_on_a_cluster_keeps_one_slot(
    redis_cluster_url: str, redis_prefix: str
) -> None:
    tool = seawall.RedisLimiter("2/minute", store=redis_cluster_url, key_prefix=redis_prefix)
    server_wide = seawall.RedisLimiter("3/minute", store=redis_cluster_url, key_prefix=redis_prefix)
    got = [tool.hit_with(f"client-{i % 2}", server_wide, "*").allowed for i in range(5)]
    assert got == [True, True, True, False, False]
    assert server_wide.test("*").remaining == 0
