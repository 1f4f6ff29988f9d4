"""The native counters behind seawall's metrics, exact against driven objects: the middleware's
per-route decisions (a real Starlette app through httpx), Redis round trips and their latency
histogram (a real redis-server), breaker transitions and time in state, backpressure and
concurrency waits (the manual clock), MCP tool calls (a real FastMCP server in memory). Label
values are object names only, never a client key."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis_servers import RedisServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_prometheus import check_metrics

from seawall import Backpressure, CircuitBreaker, RateLimitMiddleware, RedisLimiter, Rule
from seawall._metrics_model import unique_names
from seawall._metrics_registry import live
from seawall.concurrency import ConcurrencyLimiter
from seawall.prometheus import register
from seawall.testing import ManualClock

Labels = tuple[tuple[str, str], ...]


def scrape() -> dict[tuple[str, Labels], float]:
    """Every sample of a scrape, the exposition checked against promtool's rules first."""
    registry = CollectorRegistry()
    register(registry)
    text = generate_latest(registry).decode()
    check_metrics(text)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


def label_values(scraped: dict[tuple[str, Labels], float]) -> set[str]:
    return {v for _, labels in scraped for _, v in labels}


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", hello, methods=["GET", "POST"])])


async def drive(mw: RateLimitMiddleware, requests: list[tuple[str, str, str]]) -> list[int]:
    """(client IP, method, path) each, in order; the status codes."""
    statuses = []
    for ip, method, path in requests:
        transport = httpx.ASGITransport(app=mw, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            statuses.append((await c.request(method, path)).status_code)
    return statuses


def test_middleware_counts_per_route_rule() -> None:
    mw = RateLimitMiddleware(
        app(),
        name="counted-routes",
        limits="3/minute",
        rules=[
            Rule("/login", "1/minute"),
            Rule("/api/*", "2/minute", methods=["GET"]),
            Rule("/api/*", "5/minute", methods=["POST"]),
        ],
        exempt_ips=["192.0.2.0/24"],
        clock=ManualClock(),
    )
    a, b = "203.0.113.7", "198.51.100.9"
    steps = [(a, "POST", "/login")] * 3 + [(b, "POST", "/login")]
    steps += [(a, "GET", "/api/x")] * 3 + [(a, "POST", "/api/y")]
    steps += [(a, "GET", "/")] * 4 + [("192.0.2.5", "GET", "/")] * 2  # exempt: not counted
    statuses = asyncio.run(drive(mw, steps))
    assert statuses == [200, 429, 429, 200] + [200, 200, 429, 200] + [200] * 3 + [429] + [200] * 2
    routes = {r["route"] + str(i): r for i, r in enumerate(mw.stats()["routes"])}
    assert mw.stats()["store"] is None
    got = {k: (r["allowed"], r["denied"]) for k, r in routes.items()}
    assert got == {
        "/login0": (2, 2),
        "/api/*1": (2, 1),
        "/api/*2": (1, 0),
        "default3": (3, 1),
    }
    scraped = scrape()
    http = "seawall_http_requests_total"
    mine = {"middleware": "counted-routes"}
    assert value(scraped, http, **mine, route="/login", outcome="denied") == 2
    assert value(scraped, http, **mine, route="/api/*", outcome="allowed") == 2
    # The second rule with the same pattern keeps a label of its own.
    assert value(scraped, http, **mine, route="/api/*#2", outcome="allowed") == 1
    assert value(scraped, http, **mine, route="default", outcome="denied") == 1
    assert not {a, b} & label_values(scraped)
    assert not any(v.startswith("ip:") for v in label_values(scraped))


def test_global_only_requests_and_unnamed_middlewares() -> None:
    clock = ManualClock()
    first = RateLimitMiddleware(app(), global_limits="2/minute", clock=clock)
    second = RateLimitMiddleware(app(), global_limits="2/minute", clock=clock)
    asyncio.run(drive(first, [("203.0.113.1", "GET", "/")] * 3))
    assert first.stats()["routes"] == [
        {
            "route": "global",
            "allowed": 2,
            "denied": 1,
            "store_ok": 0,
            "store_fallback": 0,
            "store_error": 0,
        }
    ]
    scraped = scrape()
    labels = {dict(lb)["middleware"] for n, lb in scraped if n == "seawall_http_requests_total"}
    assert {"default", "default#2"} <= labels
    assert second.stats()["routes"][0]["allowed"] == 0


def test_middleware_on_redis_counts_store_outcomes_and_round_trips(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    mw = RateLimitMiddleware(
        app(),
        name="counted-redis",
        limits="2/minute",
        rules=[Rule("/login", "1/minute")],
        store=redis_server.url,
        key_prefix=redis_prefix,
        on_error="deny",
        connect_timeout=0.2,
        command_timeout=0.2,
        breaker_failures=1,
        breaker_recovery=3600.0,
        clock=ManualClock(),
    )
    ip = "203.0.113.8"
    up = asyncio.run(drive(mw, [(ip, "GET", "/login")] * 2 + [(ip, "GET", "/")] * 3))
    assert up == [200, 429, 200, 200, 429]
    store = mw.stats()["store"]
    assert store["round_trips"] == store["round_trip_decisions"] == 5
    h = store["round_trip_seconds"]
    assert h["count"] == 5 and h["cumulative"][-1] == 5 and len(h["bounds"]) == 16
    assert h["sum"] > 0 and store["breaker"] == "closed"
    redis_server.kill()
    down = asyncio.run(drive(mw, [(ip, "GET", "/")] * 3))
    assert down == [503] * 3  # the first fails (and opens the breaker), the rest never ask
    routes = {r["route"]: r for r in mw.stats()["routes"]}
    login, default = routes["/login"], routes["default"]
    assert (login["allowed"], login["denied"], login["store_ok"]) == (1, 1, 2)
    assert (default["allowed"], default["denied"]) == (2, 4)
    assert (default["store_ok"], default["store_fallback"], default["store_error"]) == (3, 3, 0)
    assert mw.stats()["store"]["round_trips"] == 5  # failed calls are not round trips
    scraped = scrape()
    rt = {"limiter": "middleware:counted-redis"}
    assert value(scraped, "seawall_redis_round_trips_total", **rt) == 5
    assert value(scraped, "seawall_redis_round_trip_decisions_total", **rt) == 5
    assert value(scraped, "seawall_redis_round_trip_seconds_count", **rt) == 5
    assert value(scraped, "seawall_redis_round_trip_seconds_bucket", **rt, le="+Inf") == 5
    assert value(scraped, "seawall_redis_breaker_open", **rt) == 1
    store_family = "seawall_http_store_decisions_total"
    mine = {"middleware": "counted-redis", "route": "default"}
    assert value(scraped, store_family, **mine, outcome="fallback") == 3
    assert value(scraped, store_family, **mine, outcome="ok") == 3
    assert ip not in label_values(scraped)


def test_configuration_errors_are_counted_as_store_errors(redis_url: str) -> None:
    mw = RateLimitMiddleware(
        app(), name="counted-config", limits="2/minute", store=redis_url.rsplit("/", 1)[0] + "/99"
    )
    with pytest.raises(OSError, match="configuration error"):
        asyncio.run(drive(mw, [("203.0.113.9", "GET", "/")]))
    [default] = mw.stats()["routes"]
    assert (default["store_error"], default["allowed"], default["denied"]) == (1, 0, 0)


def test_redis_limiter_round_trips_carry_batched_decisions(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = RedisLimiter("997/minute", store=redis_url, key_prefix=redis_prefix)

    async def bursts() -> tuple[int, int]:
        """Bursts of 20 concurrent decisions until one shares script calls (the direct
        connection connects in the background); the decisions made and the bursts."""
        made = 0
        for burst in range(1, 101):
            before = limiter.stats()["round_trips"]
            await asyncio.gather(*(limiter.ahit(f"key-{i}") for i in range(20)))
            made += 20
            if limiter.stats()["round_trips"] - before < 20:
                return made, burst
            await asyncio.sleep(0.01)  # lets the connection come up (bounded: 100 bursts)
        return made, 0

    made, burst = asyncio.run(bursts())
    assert burst > 0, "no burst of 20 concurrent decisions shared a script call"
    for i in range(3):
        limiter.hit(f"key-{i}")
    s = limiter.stats()
    # Every decision rode a round trip; some rode together.
    assert s["round_trip_decisions"] == made + 3
    assert s["round_trips"] < made + 3
    assert s["round_trip_seconds"]["count"] == s["round_trips"]
    scraped = scrape()
    assert value(scraped, "seawall_redis_breaker_open", limiter="997/minute") == 0
    assert not any(v.startswith("key-") for v in label_values(scraped))


def test_breaker_transitions_and_time_in_state() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "counted-breaker", failure_threshold=1, recovery_timeout=10.0, clock=clock, replace=True
    )
    clock.advance(5.0)
    with pytest.raises(RuntimeError), breaker:
        raise RuntimeError("down")
    clock.advance(12.0)  # open for 10 s, then half-open, noticed now
    assert breaker.state == "half_open"
    clock.advance(1.0)
    with breaker:
        pass  # the probe succeeds: closed
    clock.advance(2.0)
    s = breaker.stats()
    transitions = (s["transitions_to_open"], s["transitions_to_half_open"])
    assert transitions == (1, 1) and s["transitions_to_closed"] == 1
    scraped = scrape()
    mine = {"breaker": "counted-breaker"}
    for to in ("open", "half_open", "closed"):
        assert value(scraped, "seawall_breaker_transitions_total", **mine, to=to) == 1
    seconds = "seawall_breaker_state_seconds_total"
    # A change is noticed when the breaker is used or read: it was seen half-open 12 s after
    # opening, and closed 1 s after that.
    assert value(scraped, seconds, **mine, state="closed") == pytest.approx(7.0)
    assert value(scraped, seconds, **mine, state="open") == pytest.approx(12.0)
    assert value(scraped, seconds, **mine, state="half_open") == pytest.approx(1.0)


def test_backpressure_and_concurrency_wait_histograms() -> None:
    clock = ManualClock()
    bp = Backpressure("counted-bp", max_concurrency=1, max_queue=4, clock=clock)
    concurrency = ConcurrencyLimiter(1, max_queue=4, clock=clock)

    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            started.set()
            await release.wait()

        async def quick() -> None:
            return None

        first = asyncio.create_task(bp.run(hold))
        await started.wait()
        second = asyncio.create_task(bp.run(quick))
        await asyncio.sleep(0)
        clock.advance(0.003)  # the second waits 3 ms
        release.set()
        await asyncio.gather(first, second)

        permit = await concurrency.acquire()
        waiter = asyncio.create_task(concurrency.acquire())
        await asyncio.sleep(0)
        clock.advance(0.2)
        permit.success()
        (await waiter).success()

    asyncio.run(main())
    waits = bp.stats()["wait_seconds"]
    assert (waits["count"], waits["cumulative"][0], waits["sum"]) == (2, 1, pytest.approx(0.003))
    c = concurrency.stats()["wait_seconds"]
    assert (c["count"], c["cumulative"][0], c["sum"]) == (2, 1, pytest.approx(0.2))
    scraped = scrape()
    bucket = "seawall_backpressure_wait_seconds_bucket"
    assert value(scraped, bucket, handler="counted-bp", le="0.005") == 2
    assert value(scraped, bucket, handler="counted-bp", le="0.0025") == 1
    limiters = [o for o in live() if isinstance(o, ConcurrencyLimiter)]
    [mine] = [label for label, o in unique_names(limiters, lambda c: "default") if o is concurrency]
    bucket = "seawall_concurrency_wait_seconds_bucket"
    assert value(scraped, bucket, limiter=mine, le="0.25") == 2
    assert value(scraped, bucket, limiter=mine, le="0.1") == 1


def test_mcp_tool_calls_by_tool() -> None:
    fastmcp = pytest.importorskip("fastmcp")
    from seawall.mcp import rate_limit_tool, reset_tool_stats

    reset_tool_stats()
    clock = ManualClock()
    server: Any = fastmcp.FastMCP("counted")

    @server.tool()
    @rate_limit_tool("2/minute", clock=clock)
    def counted_tool(x: int) -> dict[str, Any]:
        return {"x": x}

    async def main() -> None:
        async with fastmcp.Client(server) as c:
            for i in range(5):
                await c.call_tool("counted_tool", {"x": i}, raise_on_error=False)

    asyncio.run(main())
    scraped = scrape()
    calls = "seawall_mcp_tool_calls_total"
    assert value(scraped, calls, tool="counted_tool", outcome="allowed") == 2
    assert value(scraped, calls, tool="counted_tool", outcome="denied") == 3
    reset_tool_stats()
