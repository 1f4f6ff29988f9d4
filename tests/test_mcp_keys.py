"""Whose budget an MCP call spends (issue 11, items 3, 22 and 28), on real in-memory servers.

A client must not be able to choose its key: rotating ``_meta.client_id`` gives it nothing, two
in-memory clients have a budget each, client-written values are used only when asked for
(``key="client-id"``, ``key="user_id"``), namespaced, and capped in length; the middleware's
statistics and limiter keys do not grow with the tool names clients make up; refusals are not
logged at ERROR. (Streamable HTTP over uvicorn: tests/test_mcp_http.py.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

fastmcp = pytest.importorskip("fastmcp")

from fastmcp import Client, FastMCP  # noqa: E402

from seawall import Limiter  # noqa: E402
from seawall.mcp import (  # noqa: E402
    ToolRateLimitMiddleware,
    rate_limit_tool,
    reset_tool_stats,
    tool_stats,
)
from seawall.mcp import _identity as mcp_identity  # noqa: E402
from seawall.testing import ManualClock  # noqa: E402

try:
    from mcp.client.client import Client as SDKClient
    from mcp.server.mcpserver import MCPServer
except ImportError:  # the SDK v1 has no in-memory Client
    MCPServer = None

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_stats() -> None:
    reset_tool_stats()
    mcp_identity._warned.clear()


class Recording:
    """A real ``seawall.Limiter`` that also records the keys it is asked about."""

    def __init__(self, limits: str, clock: ManualClock) -> None:
        self.limiter = Limiter(limits, clock=clock)
        self.keys: list[str] = []

    def hit(self, key: str) -> Any:
        self.keys.append(key)
        return self.limiter.hit(key)


async def admitted(c: Client[Any], tool: str, metas: list[dict[str, Any] | None]) -> int:
    """How many of the calls (one per ``_meta``) the server admitted."""
    count = 0
    for meta in metas:
        result = await c.call_tool(tool, {}, meta=meta, raise_on_error=False)
        refused = result.is_error or (
            isinstance(result.data, dict) and result.data.get("rate_limited") is True
        )
        count += not refused
    return count


def limited_server(clock: ManualClock, **options: Any) -> FastMCP:
    mcp = FastMCP("keys")

    @mcp.tool()
    @rate_limit_tool("3/minute", clock=clock, **options)
    def deco() -> dict[str, Any]:
        return {"ok": True}

    return mcp


def middleware_server(clock: ManualClock, **options: Any) -> FastMCP:
    mcp = FastMCP("keys", middleware=[ToolRateLimitMiddleware("3/minute", clock=clock, **options)])

    @mcp.tool()
    def plain() -> int:
        return 1

    @mcp.tool()
    def other() -> int:
        return 2

    return mcp


ROTATING = [{"client_id": f"client-{i}"} for i in range(6)]


# --------------------------------------------------------------------------------------------
# Item 3: keys a client writes


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_rotating_meta_client_id_does_not_reset_the_decorator_budget(mode: str) -> None:
    clock = ManualClock(0)
    async with Client(limited_server(clock), mode=mode) as c:  # type: ignore[arg-type]
        assert await admitted(c, "deco", ROTATING) == 3


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_rotating_meta_client_id_does_not_reset_the_middleware_budget(mode: str) -> None:
    clock = ManualClock(0)
    async with Client(middleware_server(clock), mode=mode) as c:  # type: ignore[arg-type]
        assert await admitted(c, "plain", ROTATING) == 3


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_separate_in_memory_clients_have_a_budget_each(mode: str, caplog: Any) -> None:
    # Nothing but the connection tells two in-memory clients apart: each connection is one
    # client (and a client that reconnects starts afresh, as with a new session).
    clock = ManualClock(0)
    deco, mw = limited_server(clock), middleware_server(clock)
    async with (
        Client(deco, mode=mode) as c1,  # type: ignore[arg-type]
        Client(deco, mode=mode) as c2,  # type: ignore[arg-type]
        Client(mw, mode=mode) as m1,  # type: ignore[arg-type]
        Client(mw, mode=mode) as m2,  # type: ignore[arg-type]
    ):
        assert await admitted(c1, "deco", [None] * 4) == 3
        assert await admitted(c2, "deco", [None] * 4) == 3
        assert await admitted(m1, "plain", [None] * 4) == 3
        assert await admitted(m2, "plain", [None] * 4) == 3
        assert await admitted(c1, "deco", [None]) == 0  # still c1's own spent budget
    assert not [r for r in caplog.records if r.name == "seawall.mcp"]


@pytest.mark.skipif(MCPServer is None, reason="needs the mcp SDK v2 (MCPServer, in-memory Client)")
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_in_memory_clients_have_a_budget_each(mode: str, caplog: Any) -> None:
    clock = ManualClock(0)
    server = MCPServer("sdk")

    @server.tool()
    @rate_limit_tool("2/minute", clock=clock, on_limit="raise")
    def ping() -> int:
        return 1

    async with SDKClient(server, mode=mode) as c1, SDKClient(server, mode=mode) as c2:  # type: ignore[arg-type]
        for c in (c1, c2):
            results = [await c.call_tool("ping", {}, meta=m) for m in ROTATING[:3]]
            assert [r.is_error for r in results] == [False, False, True]
    assert not [r for r in caplog.records if r.name == "seawall.mcp"]


async def test_client_id_only_by_explicit_opt_in_and_namespaced() -> None:
    clock = ManualClock(0)
    mcp = FastMCP("opt-in")
    recording = Recording("1/minute", clock)

    @mcp.tool()
    @rate_limit_tool(key="client-id", limiter=recording)
    def by_client_id() -> dict[str, Any]:
        return {"ok": True}

    async with Client(mcp) as c:
        assert await admitted(c, "by_client_id", [{"client_id": "ann"}] * 2) == 1
        assert await admitted(c, "by_client_id", [{"client_id": "bob"}]) == 1
        # Without a client id: the key="auto" identity (here the connection), not "client-id:…"
        assert await admitted(c, "by_client_id", [None, None]) == 1
        # A client id that spells another source's key does not spend that source's budget.
        conn = recording.keys[-1].removeprefix("by_client_id:")
        assert conn.startswith("conn:")
        assert await admitted(c, "by_client_id", [{"client_id": conn}]) == 1
    assert recording.keys[:3] == [
        "by_client_id:client-id:ann",
        "by_client_id:client-id:ann",
        "by_client_id:client-id:bob",
    ]


async def test_middleware_client_id_opt_in() -> None:
    clock = ManualClock(0)
    async with Client(middleware_server(clock, key="client-id")) as c:
        assert await admitted(c, "plain", [{"client_id": "ann"}] * 4) == 3
        assert await admitted(c, "plain", [{"client_id": "bob"}] * 4) == 3


def test_key_names_are_checked() -> None:
    with pytest.raises(ValueError, match="key"):
        rate_limit_tool(key="meta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        ToolRateLimitMiddleware(key="user_id")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trusted_proxies"):
        rate_limit_tool(trusted_proxies=["not an address"])
    with pytest.raises(ValueError, match="trusted_proxies"):
        ToolRateLimitMiddleware(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(TypeError, match="trusted_proxies"):
        rate_limit_tool(trusted_proxies="10.0.0.1")
    for bad in (0, -1, 16, 70):
        with pytest.raises(ValueError, match="max_key_length"):
            rate_limit_tool(max_key_length=bad)
        with pytest.raises(ValueError, match="max_key_length"):
            ToolRateLimitMiddleware(max_key_length=bad)
    with pytest.raises(TypeError, match="max_key_length"):
        rate_limit_tool(max_key_length=True)


# --------------------------------------------------------------------------------------------
# Item 22: client-written keys are capped; statistics do not grow with made-up tool names


async def test_long_client_written_keys_are_capped_and_kept_apart() -> None:
    clock = ManualClock(0)
    mcp = FastMCP("long")
    recording = Recording("1/minute", clock)

    @mcp.tool()
    @rate_limit_tool(key="client-id", limiter=recording)
    def by_client_id() -> dict[str, Any]:
        return {"ok": True}

    long_ids = [f"{i}-" + "x" * 20_000 for i in range(100)]
    async with Client(mcp) as c:
        assert await admitted(c, "by_client_id", [{"client_id": v} for v in long_ids]) == 100
        # Two different long ids never share a budget; the same one does.
        assert await admitted(c, "by_client_id", [{"client_id": long_ids[0]}]) == 0
    assert max(len(k) for k in recording.keys) <= 256
    assert len(set(recording.keys)) == 100
    assert len(recording.limiter) == 100


def test_huge_user_ids_are_not_stored_at_full_length() -> None:
    # 300 ids of 100 KB once cost the limiter 28.6 MB of keys: now 300 keys of 71 characters.
    recording = Recording("1/minute", ManualClock(0))

    def tool(user_id: str) -> dict[str, Any]:
        return {"ok": True}

    limited = rate_limit_tool(key="user_id", limiter=recording)(tool)
    ids = [f"{i}:" + "z" * 100_000 for i in range(300)]
    assert all(limited(user_id=u) == {"ok": True} for u in ids)
    assert all(limited(user_id=u)["rate_limited"] is True for u in ids[:3])
    assert max(len(k) for k in recording.keys) <= 256
    assert len(recording.limiter) == 300


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.text(min_size=0, max_size=600), min_size=2, max_size=6, unique=True),
    cap=st.integers(71, 512),
)
def test_user_id_keys_capped_and_distinct(values: list[str], cap: int) -> None:
    clock = ManualClock(0)
    recording = Recording("1/minute", clock)

    def tool(user_id: str) -> dict[str, Any]:
        return {"user": user_id}

    limited = rate_limit_tool(key="user_id", limiter=recording, max_key_length=cap)(tool)
    for value in values:
        assert limited(user_id=value) == {"user": value}  # every value has a budget of its own
    for value in values:
        assert limited(user_id=value)["rate_limited"] is True
    assert all(len(k) <= cap for k in recording.keys)
    assert len(set(recording.keys)) == len(values)


async def test_middleware_stats_and_keys_bounded_under_made_up_tool_names() -> None:
    clock = ManualClock(0)
    mw = ToolRateLimitMiddleware("3/minute", per_tool={"other": "5/minute"}, clock=clock)
    mcp = FastMCP("names", middleware=[mw])

    @mcp.tool()
    def plain() -> int:
        return 1

    @mcp.tool()
    def other() -> int:
        return 2

    async with Client(mcp) as c:
        results = [
            await c.call_tool(f"nope-{i}-" + "y" * 1000, {}, raise_on_error=False)
            for i in range(200)
        ]
        assert all(r.is_error for r in results)
        # Made-up names share one budget: most of those calls were refused by it.
        assert sum("retry after" in str(r.content) for r in results) == 197
        assert (await c.call_tool("plain", {}, raise_on_error=False)).data == 1
        assert (await c.call_tool("other", {}, raise_on_error=False)).data == 2
    stats = tool_stats()
    assert set(stats) == {"plain", "other", "<unknown>"}
    assert stats["<unknown>"] == {"total_calls": 200, "limited_calls": 197, "last_limited": 0.0}
    assert stats["plain"]["total_calls"] == 1
    assert len(mw._default) == 2  # plain's key and <unknown>'s (other has its own limiter)


async def test_per_tool_names_are_known_before_their_first_call() -> None:
    clock = ManualClock(0)
    mw = ToolRateLimitMiddleware("5/minute", per_tool={"other": "1/minute"}, clock=clock)
    mcp = FastMCP("names", middleware=[mw])

    @mcp.tool()
    def other() -> int:
        return 2

    async with Client(mcp) as c:
        assert (await c.call_tool("other", {}, raise_on_error=False)).data == 2
        refused = await c.call_tool("other", {}, raise_on_error=False)
        assert refused.is_error and "retry after 60 s" in str(refused.content)
    assert tool_stats("other")["other"]["limited_calls"] == 1


# --------------------------------------------------------------------------------------------
# Item 28: refusals are not logged at ERROR


@pytest.fixture
def fastmcp_logs(caplog: Any) -> Iterator[Any]:
    """Every record of fastmcp's loggers (which do not propagate to the root) and seawall's."""
    handler = caplog.handler
    loggers = [logging.getLogger("fastmcp"), logging.getLogger("mcp")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


async def test_refusals_are_not_logged_at_error(fastmcp_logs: Any) -> None:
    clock = ManualClock(0)
    deco = limited_server(clock, on_limit="raise")
    mw = middleware_server(clock)
    async with Client(deco) as c, Client(mw) as m:
        assert await admitted(c, "deco", [None] * 50) == 3
        assert await admitted(m, "plain", [None] * 50) == 3
    loud = [r for r in fastmcp_logs.records if r.levelno >= logging.INFO]
    assert not loud, [(r.name, r.levelname, r.getMessage()) for r in loud]


async def test_a_failing_tool_is_still_logged_at_error(fastmcp_logs: Any) -> None:
    # Only refusals are quiet: fastmcp's own ToolError keeps its level.
    from fastmcp.exceptions import ToolError

    mcp = FastMCP("fails")

    @mcp.tool()
    @rate_limit_tool("3/minute", clock=ManualClock(0), on_limit="raise")
    def broken() -> int:
        raise ToolError("broken on purpose")

    async with Client(mcp) as c:
        assert (await c.call_tool("broken", {}, raise_on_error=False)).is_error
    assert any(
        r.levelno == logging.ERROR and "broken" in r.getMessage() for r in fastmcp_logs.records
    )
