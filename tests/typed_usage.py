"""A typed tour of seawall's public API, as an application uses it.

``scripts/test.sh`` type-checks this module with pyright (strict) and mypy (strict): it calls
every public entry point of seawall, with plain code and the annotations a user would write, so
a stub or an annotation that hides a method (``ClientRateLimiter.consume``,
``RedisLimiter.ahit``), returns the wrong type or leaks an unknown one fails the test command.

Importing it does nothing but import. ``tests/test_typed_usage.py`` runs every function: the
in-memory ones as they are, the Redis ones against a real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastmcp import Client, Context, FastMCP
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import seawall
from seawall import (
    ALGORITHMS,
    AIMDLimit,
    Backpressure,
    CircuitBreaker,
    CircuitOpenError,
    ClientRateLimiter,
    ConcurrencyLimiter,
    ConcurrencyLimitMiddleware,
    Decision,
    Dropped,
    GradientLimit,
    HostLimiter,
    Limit,
    Limiter,
    Overloaded,
    Permit,
    RateLimitExceeded,
    RateLimitMiddleware,
    RedisLimiter,
    Rule,
    SeawallError,
    SystemClock,
    TokenBucket,
    TokenBucketConfig,
    breakers,
    rate_limit,
)
from seawall.asgi import ConcurrencyLimitMiddleware as AsgiConcurrencyLimitMiddleware
from seawall.asgi import RateLimitMiddleware as AsgiRateLimitMiddleware
from seawall.breaker import BreakerRegistry, Listener
from seawall.compat import fastmcp_example, snowflake
from seawall.compat.mahavishnu import rate_limit as mahavishnu
from seawall.compat.mahavishnu import rate_limit_tools as mahavishnu_tools
from seawall.compat.mahavishnu import rate_limiting as mahavishnu_rules
from seawall.compat.voicehive import backpressure_handler as vh_backpressure
from seawall.compat.voicehive import circuit_breaker as vh_breaker
from seawall.compat.voicehive import rate_limit_middleware as vh_middleware
from seawall.compat.voicehive import rate_limiter as vh_limiter
from seawall.compat.voicehive import resilience_config as vh_config
from seawall.compat.voicehive import resilience_manager as vh_manager
from seawall.compat.voicehive.routers import resilience as vh_router
from seawall.fastapi import RateLimitDependency, limit
from seawall.host import remove as remove_host_store
from seawall.mcp import (
    DecisionLike,
    KeyFunc,
    KeyLimiter,
    KeyName,
    ToolRateLimitedError,
    ToolRateLimitMiddleware,
    rate_limit_tool,
    reset_tool_stats,
    session_identity,
    tool_stats,
)
from seawall.otel import Instrumentation
from seawall.otel import instrument as instrument_otel
from seawall.prometheus import SeawallCollector, metrics_app
from seawall.prometheus import register as register_metrics
from seawall.rules import RuleDecision, RulesEngine, RulesGate, RulesMiddleware, load_rules
from seawall.testing import ManualClock, get_default_clock, use_clock
from seawall.types import ASGIApp, Limits, Message, Receive, Scope, Send

# --------------------------------------------------------------------------------------------
# Limiter, in memory


def in_memory_limiter(clock: ManualClock) -> list[Decision]:
    """``Limiter``'s sync API: several limits per key, overrides, statistics."""
    limits: Limits = [Limit("10/second", "token_bucket", burst=20), "1000/day"]
    limiter = Limiter(limits, algorithm="gcra", max_keys=10_000, clock=clock)
    first: Decision = limiter.hit("user:1")
    admitted: bool = limiter.allow("user:1", cost=2)
    peek: Decision = limiter.test("user:1")
    assert first.allowed and admitted and bool(peek)
    seconds: float = peek.retry_after + peek.reset_after + peek.window
    left: int = peek.remaining + peek.limit
    assert seconds >= 0 and left > 0 and not peek.limited

    limiter.set_override("vip", "100/second", algorithm="sliding_window_counter")
    limiter.clear_override("vip")
    per_key: dict[str, Any] | None = limiter.key_stats("user:1")
    used_now: list[dict[str, Any]] = limiter.usage("user:1")
    assert used_now[0]["limit"] == "10/second"
    everything: dict[str, Any] = limiter.stats()
    assert per_key is not None and everything
    configured: list[Limit] = limiter.limits
    described = [(x.count, x.period, x.algorithm, x.burst) for x in configured]
    assert described[0] == (10, 1.0, "token_bucket", 20)
    assert len(limiter) == 1 and limiter.max_keys == 10_000 and limiter.memory_bytes() > 0
    forgot: bool = limiter.reset("user:1")
    dropped: int = limiter.cleanup()
    assert forgot and dropped >= 0
    assert "gcra" in ALGORITHMS and seawall.__version__
    local: Limiter = Limiter("1/second", store="memory://", clock=clock)
    assert local.hit("k")
    watched = Limiter("1/minute", clock=clock, top_keys=50)
    watched.hit("greedy")
    watched.hit("greedy")
    refused: list[tuple[str, int]] = watched.top_limited(n=5)
    summary: dict[str, Any] = watched.top_limited_summary()
    assert refused == [("greedy", 1)] and summary["capacity"] == 50
    watched.reset_top_limited()
    return [first, peek]


async def in_memory_limiter_async(clock: ManualClock) -> Decision:
    """The awaitable twins: ``ahit`` / ``aallow`` / ``atest`` / ``areset``."""
    limiter = Limiter("2/minute", clock=clock)
    d: Decision = await limiter.ahit("k")
    allowed: bool = await limiter.aallow("k")
    probe: Decision = await limiter.atest("k")
    assert d.allowed and allowed and not probe.allowed
    reset: bool = await limiter.areset("k")
    assert reset
    return probe


# --------------------------------------------------------------------------------------------
# Limiter in Redis (Limiter(store=...) and RedisLimiter)


def redis_limiter(store: str, prefix: str) -> RedisLimiter:
    """``Limiter(..., store=url)`` is a ``RedisLimiter``; its sync API."""
    limiter: RedisLimiter = Limiter(
        "5/second; 100/hour", store=store, key_prefix=prefix, on_error="local"
    )
    d: Decision = limiter.hit("user:1")
    admitted: bool = limiter.allow("user:1")
    peek: Decision = limiter.test("user:1")
    assert d.allowed and admitted and peek.remaining == 3
    keys: list[str] = limiter.redis_keys("user:1")
    in_redis: list[dict[str, Any]] = limiter.usage("user:1")
    assert [u["used"] for u in in_redis] == [2, 2]
    assert all(k.startswith(prefix) for k in keys)
    stats: dict[str, Any] = limiter.stats()
    assert stats and limiter.store == store and limiter.key_prefix == prefix
    assert limiter.on_error == "local" and len(limiter.limits) == 2
    assert limiter.reset("user:1")
    return limiter


async def redis_limiter_async(store: str, prefix: str) -> Decision:
    """``RedisLimiter``'s awaitable methods, on the running event loop."""
    limiter = RedisLimiter(
        "2/minute", store=store, key_prefix=prefix, command_timeout=1.0, on_error="deny"
    )
    d: Decision = await limiter.ahit("k")
    allowed: bool = await limiter.aallow("k")
    probe: Decision = await limiter.atest("k")
    assert d.allowed and allowed and not probe.allowed
    had_state: bool = await limiter.areset("k")
    assert had_state
    return probe


def rules_engine(clock: ManualClock) -> RuleDecision:
    """``seawall.rules``: named rules as dicts, selection and checks."""
    engine = RulesEngine(default_strategy="hard", clock=clock)
    engine.add_rule({"name": "api", "scope": "per_user", "rate": 2, "window_seconds": 60})
    listed: list[dict[str, Any]] = engine.rules()
    chosen: str | None = engine.select(identifier="bob", default="api")
    d: RuleDecision = engine.check("api", "bob", endpoint="/x")
    assert listed[0]["rate"] == 2 and chosen == "api" and d.allowed and d.strategy == "hard"
    assert engine.get_rule("api")["scope"] == "per_user" and engine.reset("api", "bob")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.toml"
        path.write_text('[[rules]]\nname = "g"\nscope = "global"\nrate = 1\nwindow_seconds = 1\n')
        added: list[str] = load_rules(engine, path)
    assert added == ["g"] and engine.remove_rule("g")
    grant: dict[str, Any] = engine.add_override(
        {"target_user_id": "bob", "unlimited": True, "duration_minutes": 5, "admin_id": "ops"}
    )
    found: dict[str, Any] | None = engine.check_override(user_id="bob")
    assert found is not None and found["override_id"] == grant["override_id"]
    assert engine.check("api", "bob").override_id == grant["override_id"]
    assert len(engine.overrides()) == 1 and engine.remove_override(grant["override_id"])
    assert [entry["action"] for entry in engine.audit_log()] == ["add", "remove"]
    metrics: dict[str, Any] = engine.get_metrics("api")
    assert metrics["total_requests"] == 2 and "api" in engine.get_all_metrics()
    engine.reset_metrics("api")
    return d


async def rules_gate_async(clock: ManualClock) -> RuleDecision | None:
    """``RulesGate``: a rules engine applied to ASGI scopes; the awaitable twins."""
    engine = RulesEngine(default_strategy="queue", clock=clock)
    engine.add_rule({"name": "api", "scope": "per_ip", "rate": 1, "window_seconds": 60})
    gate = RulesGate(engine, default_rule="api", trusted_proxies=["10.0.0.0/8"])
    scope: dict[str, Any] = {"type": "http", "path": "/", "client": ("10.0.0.1", 1), "headers": []}
    scope["headers"] = [(b"x-forwarded-for", b"203.0.113.9")]
    first: RuleDecision | None = gate.decide(scope)
    queued: RuleDecision | None = await gate.adecide(scope)
    assert first is not None and first.allowed and gate.client_ip(scope) == "203.0.113.9"
    assert queued is not None and queued.queued and queued.retry_after_header == 60
    named: RuleDecision = await engine.acheck("api", "user:1")
    chosen: RuleDecision | None = await engine.adecide("user:2", default="api")
    picked: RuleDecision | None = engine.decide("user:3", default="api")
    assert named.allowed and chosen is not None and picked is not None and not engine.is_async
    assert engine.store == "memory://" and gate.engine is engine and gate.default_rule == "api"
    return queued


def host_limiter(name: str) -> HostLimiter:
    """``HostLimiter``: limits shared by the processes of one machine; its sync API."""
    limiter = HostLimiter("5/second; 100/hour", store=f"host://{name}", max_keys=1000)
    other = HostLimiter("1/second", store=f"host://{name}", max_keys=1000)
    d: Decision = limiter.hit("user:1")
    both: Decision = limiter.hit_with("user:1", other, "*")
    admitted: bool = limiter.allow("user:1")
    peek: Decision = limiter.test("user:1")
    assert d.allowed and both.allowed and admitted and peek.remaining == 2
    stats: dict[str, Any] = limiter.stats()
    assert stats["keys"] >= 1 and limiter.capacity == 1024 and len(limiter) >= 1
    assert limiter.store == f"host://{name}" and limiter.path.endswith(name)
    reset: bool = limiter.reset("user:1")
    assert reset and remove_host_store(name)
    return limiter


# --------------------------------------------------------------------------------------------
# Token buckets (the async consume / sync try_consume API)


async def token_buckets(clock: ManualClock) -> dict[str, Any]:
    """``TokenBucket`` and ``ClientRateLimiter``: async methods with sync twins."""
    config = TokenBucketConfig(capacity=10, refill_rate=1.0, initial_tokens=10)
    assert (config.capacity, config.refill_rate, config.initial_tokens) == (10, 1.0, 10)
    bucket = TokenBucket(config, "client-1", clock=clock)
    taken: bool = await bucket.consume(3)
    also: bool = bucket.try_consume()
    tokens: float = await bucket.peek()
    assert taken and also and tokens == bucket.peek_sync() == 6.0
    await bucket.reset()
    bucket.reset_sync()
    bucket.config = TokenBucketConfig(capacity=20, refill_rate=2.0, initial_tokens=20)
    assert bucket.client_id == "client-1" and bucket.config.capacity == 20
    assert bucket.get_stats()

    clients = ClientRateLimiter(
        config, cleanup_interval=timedelta(minutes=5), max_clients=1000, clock=clock
    )
    await clients.start()
    try:
        ok: bool = await clients.consume("alice", 2)
        could: bool = await clients.check_limit("alice")
        left: float = await clients.peek("alice")
        assert ok and could and left == 8.0
        assert clients.try_consume("bob") and clients.check_limit_sync("bob")
        assert clients.peek_sync("bob") == 9.0
        await clients.set_client_config("vip", TokenBucketConfig(100, 10.0, 100))
        clients.set_client_config_sync("vip", config)
        one: dict[str, Any] | None = await clients.get_client_stats("alice")
        assert one is not None and clients.get_client_stats_sync("nobody") is None
        assert await clients.reset_client("alice") and clients.reset_client_sync("bob")
        assert clients.cleanup() >= 0 and clients.memory_bytes() > 0 and len(clients) >= 0
        assert clients.default_config == config and clients.max_clients == 1000
        assert clients.cleanup_interval == timedelta(minutes=5)
        assert clients.get_all_stats_sync()
        return await clients.get_all_stats()
    finally:
        await clients.stop()


# --------------------------------------------------------------------------------------------
# Circuit breakers: decorator, with / async with, call / acall, registry


def circuit_breaker(name: str, clock: ManualClock) -> CircuitBreaker:
    """Every way to guard a call, and the registry."""
    seen: list[tuple[str, str, str]] = []

    def on_change(cb: CircuitBreaker, old: str, new: str, reason: str) -> None:
        seen.append((old, new, reason))

    breaker = CircuitBreaker(
        name,
        failure_threshold=2,
        recovery_timeout=10.0,
        expected_exceptions=(ConnectionError,),
        excluded_exceptions=(ConnectionRefusedError,),
        clock=clock,
    )
    listener: Listener = on_change
    breaker.add_listener(listener)

    @breaker
    def fetch(user_id: int, *, verbose: bool = False) -> dict[str, int]:
        return {"id": user_id}

    row: dict[str, int] = fetch(1, verbose=True)
    assert row == {"id": 1}
    with breaker:
        pass

    def double(x: int) -> int:
        return x * 2

    doubled: int = breaker.call(double, 21)
    assert doubled == 42

    def fail() -> None:
        raise ConnectionError("down")

    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            breaker.call(fail)
    state: str = breaker.state
    wait: float = breaker.retry_after
    assert state == "open" and wait > 0 and seen[-1][:2] == ("closed", "open")
    try:
        fetch(2)
    except CircuitOpenError as refused:
        assert refused.name == name and refused.retry_after_seconds >= 1
    else:
        raise AssertionError("the open breaker admitted a call")
    stats: dict[str, Any] = breaker.stats()
    assert stats and breaker.name == name

    registry: BreakerRegistry = breakers
    found: CircuitBreaker | None = registry.get(name)
    assert found is breaker and registry[name] is breaker and name in registry
    named: dict[str, CircuitBreaker] = registry.all()
    assert named[name] is breaker and breaker in list(registry) and len(registry) >= 1
    assert registry.stats()[name]
    breaker.force_closed()
    breaker.force_open()
    breaker.reset()
    breaker.remove_listener(listener)
    return breaker


async def circuit_breaker_async(name: str) -> str:
    """``async def`` under ``@breaker``, ``async with``, ``acall``, a fallback."""

    async def cached(city: str) -> str:
        return f"cached {city}"

    breaker = CircuitBreaker(name, timeout=5.0, fallback=cached)

    @breaker
    async def forecast(city: str) -> str:
        return f"sunny in {city}"

    sunny: str = await forecast("Oslo")
    async with breaker:
        pass
    awaited: str = await breaker.acall(forecast, "Bergen")
    plain: int = await breaker.acall(len, "abc")
    assert (sunny, awaited, plain) == ("sunny in Oslo", "sunny in Bergen", 3)
    breaker.force_open()
    fallen_back: str = await forecast("Oslo")
    return fallen_back


# --------------------------------------------------------------------------------------------
# @rate_limit on functions


current_user: contextvars.ContextVar[str] = contextvars.ContextVar("current_user")


def rate_limited_functions(clock: ManualClock) -> tuple[int, str]:
    """``@rate_limit`` on sync functions: one budget, or one per key; ``on_limit``."""

    @rate_limit("2/minute", clock=clock)
    def add(a: int, b: int) -> int:
        return a + b

    def busy(error: RateLimitExceeded) -> str:
        return f"busy for {error.retry_after_seconds} s (limit {error.limit}, {error.key})"

    def by_name(name: str) -> str:
        return name

    @rate_limit("1/minute", key=by_name, on_limit=busy, clock=clock)
    def echo(name: str) -> str:
        return name

    total: int = add(1, 2) + add(3, 4)
    try:
        add(5, 6)
    except RateLimitExceeded as refused:
        assert isinstance(refused, SeawallError) and refused.retry_after > 0
    else:
        raise AssertionError("the third call within the minute was admitted")
    assert echo("ann") == "ann" and echo("ann").startswith("busy for")
    return total, echo("bob")


async def rate_limited_coroutine(clock: ManualClock) -> str:
    """An ``async def`` under ``@rate_limit(key=ContextVar)`` stays awaitable."""

    @rate_limit("1/minute", key=current_user, clock=clock)
    async def greet(greeting: str) -> str:
        return f"{greeting}, {current_user.get('nobody')}"

    token = current_user.set("ann")
    try:
        hello: str = await greet("hello")
    finally:
        current_user.reset(token)
    return hello


# --------------------------------------------------------------------------------------------
# ASGI middleware (Starlette) and the FastAPI dependency


async def homepage(request: Request) -> Response:
    return PlainTextResponse("hello")


async def login(request: Request) -> Response:
    return JSONResponse({"ok": True})


def api_key(request: Request) -> str | None:
    return request.headers.get("x-api-key")


def rules_middleware(clock: ManualClock) -> list[int]:
    """``RulesMiddleware``: an engine's rules in front of an app; a ``hard`` rule answers 429."""
    engine = RulesEngine(clock=clock)
    rule = {"name": "api", "scope": "per_ip", "rate": 1, "window_seconds": 60, "strategy": "hard"}
    engine.add_rule(rule)
    queued: list[dict[str, Any]] = []

    def user_of(request: Request) -> str | None:
        return None  # no verified user: the default identifier, ip:<client>

    app = Starlette(routes=[Route("/", homepage)])
    app.add_middleware(
        RulesMiddleware,
        engine=engine,
        default_rule="api",
        extract_identifier=user_of,
        trusted_proxies=["10.0.0.0/8"],
        on_queue=queued.append,
        exempt_paths=["/health"],
    )
    with TestClient(app, client=("203.0.113.7", 1234)) as client:
        codes = [client.get("/").status_code for _ in range(2)]
    assert codes == [200, 429] and not queued
    return codes


def starlette_app(clock: ManualClock) -> Starlette:
    """``RateLimitMiddleware`` with default limits, route rules and a global budget."""
    app = Starlette(
        routes=[Route("/", homepage), Route("/login", login, methods=["POST"])],
    )
    app.add_middleware(
        RateLimitMiddleware,
        limits="100/minute",
        rules=[Rule("/login", "2/minute", methods=["POST"]), ("/admin/*", "1/minute")],
        global_limits="10000/minute",
        key_func=api_key,
        headers="both",
        clock=clock,
    )
    return app


def asgi_requests(clock: ManualClock) -> list[int]:
    """Real requests through the middleware; the third login is refused."""
    with TestClient(starlette_app(clock)) as client:
        codes = [client.post("/login").status_code for _ in range(3)]
        assert client.get("/").headers["x-ratelimit-limit"] == "100"
    return codes


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app, typed with seawall's aliases (no web framework needed)."""
    request: Message = await receive()
    assert request["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def wrapped_app(clock: ManualClock) -> ASGIApp:
    """The middleware wraps any ASGI app directly, too."""
    limited = AsgiRateLimitMiddleware(
        raw_app, limits="1/second", trusted_proxies=["10.0.0.0/8"], clock=clock, name="raw"
    )
    routes: list[dict[str, Any]] = limited.stats()["routes"]  # counted natively, per rule
    assert [r["route"] for r in routes] == ["default"]
    return limited


def raw_asgi_requests(clock: ManualClock) -> list[int]:
    client = TestClient(wrapped_app(clock))  # no lifespan: the bare app answers HTTP only
    return [client.get("/").status_code for _ in range(2)]


def fastapi_app(clock: ManualClock) -> tuple[FastAPI, RateLimitDependency]:
    """``Depends(limit(...))``: a budget per endpoint (or shared by reusing the dependency)."""
    app = FastAPI()
    search_limit = limit("2/minute", headers="draft", clock=clock)

    @app.get("/search", dependencies=[Depends(search_limit)])
    async def search(q: str) -> dict[str, str]:
        return {"q": q}

    items_limit = limit("5/minute", clock=clock)

    @app.get("/items")
    async def items(_: None = Depends(items_limit)) -> list[int]:
        return [1, 2, 3]

    return app, search_limit


def fastapi_requests(clock: ManualClock) -> list[int]:
    app, dependency = fastapi_app(clock)
    with TestClient(app) as client:
        codes = [client.get("/search", params={"q": "x"}).status_code for _ in range(3)]
        assert client.get("/items").json() == [1, 2, 3]
    assert dependency.limiter.key_for({"type": "http", "client": ("127.0.0.1", 1)})
    return codes


# --------------------------------------------------------------------------------------------
# MCP tools (fastmcp): the decorator, the server middleware, statistics


def mcp_server(clock: ManualClock) -> FastMCP:
    """Tools limited one by one (``rate_limit_tool``), and all at once (the middleware)."""
    server = FastMCP(
        "tools",
        middleware=[
            ToolRateLimitMiddleware(
                "100/minute", per_tool={"search": "50/minute"}, key="auto", clock=clock
            )
        ],
    )

    @server.tool()
    @rate_limit_tool("2/minute", clock=clock)
    async def search(query: str, ctx: Context) -> dict[str, Any]:
        return {"query": query, "who": session_identity(ctx)}

    shared: KeyLimiter = Limiter("1/minute", clock=clock)  # any object with hit(key)
    by_address: KeyName = "address"

    @server.tool()
    @rate_limit_tool(on_limit="raise", limiter=shared, key=by_address)
    def ping() -> str:
        return "pong"

    def by_region(ctx: Any, arguments: dict[str, Any]) -> str:
        return str(arguments.get("region", "any"))

    region_key: KeyFunc = by_region

    @server.tool()
    @rate_limit_tool("5/minute", key=region_key, on_limit="raise", clock=clock)
    def forecast(region: str) -> str:
        return f"sunny in {region}"

    return server


def first_decision(limiter: KeyLimiter, key: str) -> bool:
    """What ``rate_limit_tool(limiter=...)`` asks of a limiter: ``hit(key)``, truthy if admitted."""
    decision: DecisionLike = limiter.hit(key)
    return bool(decision.allowed)


async def mcp_calls(clock: ManualClock) -> dict[str, dict[str, Any]]:
    """Real calls in memory: the third ``search`` returns the rate-limited dict, the second
    ``ping`` is an error result."""
    reset_tool_stats()
    async with Client(mcp_server(clock)) as client:
        for _ in range(3):
            await client.call_tool("search", {"query": "q"}, raise_on_error=False)
        await client.call_tool("ping", {}, raise_on_error=False)
        refused = await client.call_tool("ping", {}, raise_on_error=False)
        assert refused.is_error
    assert issubclass(ToolRateLimitedError, RateLimitExceeded)
    return tool_stats()


# --------------------------------------------------------------------------------------------
# Test aids


def clocks() -> float:
    """``ManualClock`` made the default clock for a block; ``SystemClock``."""
    manual = ManualClock(start=1_000.0)
    with use_clock(manual) as installed:
        assert installed is manual and get_default_clock() is manual
        limiter = Limiter("1/second")  # follows the default clock
        assert limiter.hit("k") and not limiter.hit("k")
        manual.advance(1.0)
        assert limiter.hit("k")
        manual.set(5_000.0)
    assert get_default_clock() is None
    now: float = SystemClock().now() + manual.now()
    return now


# --------------------------------------------------------------------------------------------
# The drop-in APIs (seawall.compat)


def snowflake_app(clock: ManualClock) -> FastAPI:
    """Seed 000's names: the global limiter, the ``@app.middleware("http")`` class, the
    decorator reading ``current_client_id``."""
    app = FastAPI()
    app.middleware("http")(
        snowflake.RateLimitMiddleware(requests_per_second=1.0, burst_size=2, clock=clock)
    )

    @snowflake.rate_limit(requests_per_minute=60)
    async def handler() -> str | None:
        return snowflake.current_client_id.get()

    @app.get("/")
    async def root() -> dict[str, str | None]:
        return {"client": await handler()}

    shared: snowflake.ClientRateLimiter = snowflake.client_rate_limiter
    assert isinstance(shared, ClientRateLimiter)
    assert snowflake.TokenBucketConfig is TokenBucketConfig
    assert snowflake.TokenBucket is TokenBucket
    return app


def snowflake_requests(clock: ManualClock) -> list[int]:
    with TestClient(snowflake_app(clock)) as client:
        return [client.get("/", headers={"X-Client-ID": "c1"}).status_code for _ in range(3)]


def fastmcp_example_service(clock: ManualClock) -> tuple[bool, dict[str, Any]]:
    """Seed 004's ``RateLimiterService``, its middleware and its tool decorator."""
    service = fastmcp_example.RateLimiterService(default_limit=2, default_window=60, clock=clock)
    allowed, info = service.check_and_record("c1")
    service.check_and_record("c1", limit=5, window=10.0)
    assert service.reset("c1") and service.cleanup() >= 0 and len(service) == 0

    app = Starlette(routes=[Route("/", homepage)])
    app.add_middleware(fastmcp_example.RateLimitMiddleware, limiter=service, limit=1, window=60)

    server = FastMCP("seed-004")

    @server.tool()
    @fastmcp_example.rate_limit_mcp_tool(limit=5, window=60, limiter=service)
    def echo(text: str) -> dict[str, Any]:
        return {"text": text}

    return allowed, info


async def mahavishnu_limiter(clock: ManualClock) -> mahavishnu.RateLimitInfo:
    """Seed 001's ``RateLimiter``, its exception, middleware, decorators and tool statistics."""
    config = mahavishnu.RateLimitConfig(requests_per_minute=2, burst_size=2, exempt_ips={"::1"})
    limiter = mahavishnu.RateLimiter(config=config, clock=clock)
    allowed, info = await limiter.is_allowed("user:1")
    checked: tuple[bool, mahavishnu.RateLimitInfo] = limiter.check("user:1")
    assert allowed and checked[0] and not info.limited
    under: Limiter | RedisLimiter = limiter.limiter
    assert under.limits and limiter.get_violations("user:1") == 0
    offenders: dict[str, int] = limiter.get_repeat_offenders(min_violations=1)
    assert offenders == {} and limiter.cleanup() >= 0 and limiter.get_stats()
    assert limiter.reset("user:1")

    app = Starlette(routes=[Route("/", homepage)])
    app.add_middleware(mahavishnu.RateLimitMiddleware, config=config, user_id_header="X-User")

    @mahavishnu.rate_limit(requests_per_minute=1, burst_size=1, clock=clock)
    async def handler(n: int) -> int:
        return n

    one: int = await handler(1)
    try:
        await handler(2)
    except mahavishnu.RateLimitError as error:
        wait: int | None = error.retry_after
        assert one == 1 and wait is not None and isinstance(error, SeawallError)
    else:
        raise AssertionError("the second call within the minute was admitted")

    shared: mahavishnu.RateLimiter = mahavishnu_tools.get_rate_limiter()
    assert shared is mahavishnu_tools.get_rate_limiter()

    @mahavishnu_tools.rate_limit_tool(requests_per_minute=10, clock=clock, name="typed_tool")
    def tool(user_id: str) -> dict[str, Any]:
        return {"user": user_id}

    assert tool("ann") == {"user": "ann"}
    stats: dict[str, Any] = mahavishnu_tools.get_tool_stats("typed_tool")
    assert stats["total_calls"] == 1 and "typed_tool" in mahavishnu_tools.get_all_tool_stats()
    mahavishnu_tools.reset_tool_stats("typed_tool")
    mahavishnu_tools.reset_all_tool_stats()
    return info


async def voicehive_dropin(clock: ManualClock) -> vh_limiter.RateLimitResult:
    """Seed 003's rate limiter, middleware, circuit breaker and config (memory)."""
    limiter = vh_limiter.RateLimiter(None, clock=clock)
    config = vh_limiter.RateLimitConfig(
        2, 20, 100, algorithm=vh_limiter.RateLimitAlgorithm.SLIDING_WINDOW
    )
    limiter.add_rule(vh_limiter.RateLimitRule(r"/api/.*", config=config))
    limiter.default_config = vh_limiter.RateLimitConfig(requests_per_minute=5)
    first: vh_limiter.RateLimitResult = await limiter.check_rate_limit("c", "/api/1")
    kind: str = vh_limiter.ClientType.INTERNAL.value
    free = limiter.check_rate_limit_sync("svc", "/api/1", "GET", kind)
    assert first.allowed and free.limit_type == "bypass_internal"
    stats: dict[str, dict[str, int]] = await limiter.get_client_stats("c")
    assert stats["minute"]["/api/.*"] == 1 and await limiter.reset_client_limits("c") == 1

    app = Starlette(routes=[Route("/", homepage)])
    app.add_middleware(
        vh_middleware.RateLimitMiddleware,
        rules=vh_middleware.create_rate_limit_rules(),
        excluded_paths=vh_middleware.DEFAULT_EXCLUDED_PATHS,
        internal_service_tokens={"tts": "secret"},
        clock=clock,
    )
    app.add_exception_handler(
        vh_middleware.RateLimitExceededError,
        vh_middleware.rate_limit_exception_handler,  # type: ignore[arg-type]
    )
    error = vh_middleware.RateLimitExceededError(first)
    assert error.status_code == 429

    manager = vh_breaker.CircuitBreakerManager(clock=clock)
    breaker: vh_breaker.CircuitBreaker = manager.get_or_create_breaker(
        "typed_pms", vh_breaker.CircuitBreakerConfig(failure_threshold=1)
    )

    async def down() -> int:
        raise ConnectionError

    with contextlib.suppress(ConnectionError):
        await breaker.call(down)
    try:
        await breaker.call(down)
    except vh_breaker.CircuitBreakerOpenError as refused:
        assert refused.next_attempt_time.tzinfo is not None
    b_stats: vh_breaker.CircuitBreakerStats = await breaker.get_stats()
    assert b_stats.state is vh_breaker.CircuitState.OPEN and b_stats.dict()["state"] == "open"
    assert issubclass(vh_breaker.CircuitBreakerTimeoutError, TimeoutError)
    await manager.reset_all()

    @vh_breaker.circuit_breaker("typed_decorated", failure_threshold=2)
    async def guarded(n: int) -> int:
        return n

    assert await guarded(3) == 3

    prod: vh_config.ResilienceConfig = vh_config.get_resilience_config("prod")
    assert prod == vh_config.PRODUCTION_CONFIG == vh_config.create_production_resilience_config()
    dev = vh_config.apply_environment(vh_config.create_default_resilience_config(), "dev")
    assert dev == vh_config.DEVELOPMENT_CONFIG == vh_config.create_development_resilience_config()
    assert vh_config.DEFAULT_CONFIG.rate_limiting_rules and vh_config.ResilienceConfig.from_env({})
    return first


async def voicehive_manager_dropin(clock: ManualClock) -> dict[str, Any]:
    """Seed 003's backpressure handler, resilience manager and router (memory)."""
    handlers = vh_backpressure.BackpressureManager(clock=clock)
    drop_newest = vh_backpressure.BackpressureStrategy.DROP_NEWEST
    bp_config = vh_backpressure.BackpressureConfig(max_concurrency=2, strategy=drop_newest)
    handler: vh_backpressure.BackpressureHandler = handlers.create_handler("typed_tts", bp_config)

    async def synth(text: str) -> int:
        return len(text)

    task: asyncio.Task[Any] | None = await handler.submit_task("t1", synth, "hello")
    assert task is not None and await task == 5
    bp_stats: vh_backpressure.BackpressureStats = await handler.get_stats()
    assert bp_stats.total_processed == 1 and bp_stats.model_dump()["strategy"] == "drop_newest"
    assert issubclass(vh_backpressure.BackpressureDroppedError, Overloaded)

    @vh_backpressure.with_backpressure("typed_decorated", manager=handlers)
    async def decorated(n: int) -> int:
        return n

    assert await decorated(2) == 2 and handlers.get_handler("typed_decorated") is not None
    await handlers.shutdown_all()

    config = vh_config.ResilienceConfig(redis_url=None, admin_token="typed-admin")
    app = FastAPI()
    app.include_router(vh_router.router)
    app.include_router(
        vh_router.create_resilience_router(prefix="/ops", require_admin_for_reads=True)
    )
    manager: vh_manager.ResilienceManager = await vh_manager.initialize_resilience_for_app(
        app, config, clock=clock
    )
    assert vh_manager.get_resilience_manager() is manager

    @app.get("/typed-admin", dependencies=[Depends(vh_router.require_admin_role)])
    async def admin_only(
        m: Annotated[
            vh_manager.ResilienceManager, Depends(vh_router.get_resilience_manager_dependency)
        ],
    ) -> dict[str, str]:
        return {"environment": m.environment}

    other = FastAPI()
    later = vh_manager.setup_resilience(other, config)
    with TestClient(app) as client, TestClient(other):
        assert later.initialized
        admin = {"Authorization": "Bearer typed-admin"}
        assert client.get("/typed-admin", headers=admin).json() == {"environment": "production"}
        assert client.get("/ops/health").status_code == 401
        assert (
            client.get("/resilience/config", headers=admin).json()["config"]["admin_token"] == "***"
        )
    health: dict[str, Any] = await manager.get_health_status()
    return health


# --------------------------------------------------------------------------------------------
# Seed 002's drop-in: seawall.compat.mahavishnu.rate_limiting


class TypedCounter:
    """A custom algorithm (``mahavishnu_rules.CustomAlgorithm``): one request per key."""

    async def check(self, state: Any, current_time: float) -> tuple[bool, dict[str, int]]:
        return not state, {"used": 1}

    def get_retry_after(self, state: Any) -> float:
        return 1.0


class TypedHandler(mahavishnu_rules.RateLimitStrategyHandler):
    async def apply_strategy(
        self, decision: mahavishnu_rules.RateLimitDecision, identifier: str
    ) -> mahavishnu_rules.RateLimitDecision:
        return decision


async def mahavishnu_rules_engine(clock: ManualClock) -> mahavishnu_rules.RateLimitMetrics:
    """Seed 002's engine: rules, checks, overrides, audit and metrics."""
    engine: mahavishnu_rules.RateLimitEngine = mahavishnu_rules.create_rate_limiter(
        default_algorithm=mahavishnu_rules.RateLimitAlgorithm.TOKEN_BUCKET,
        default_strategy=mahavishnu_rules.LimitStrategy.RETRY_AFTER,
        clock=clock,
    )
    engine.set_strategy_handler(TypedHandler(engine))
    for default in mahavishnu_rules.create_default_rules():
        await engine.add_rule(default)
    algorithm: mahavishnu_rules.CustomAlgorithm = TypedCounter()
    await engine.add_rule(
        mahavishnu_rules.RateLimitRule(
            "custom", mahavishnu_rules.LimitScope.PER_IP, rate=1, algorithm=algorithm
        )
    )
    d: mahavishnu_rules.RateLimitDecision = await engine.check_limit(
        "user:1", "api_per_user", endpoint="/x"
    )
    wait: int | None = d.retry_after
    tokens: float = d.tokens_remaining
    assert d.allowed and wait is None and tokens == 9.0
    assert (await engine.check_limit("ip:1", "custom")).allowed
    assert not engine.check_limit_sync("user:1", "api_per_user", ip_address="::1").queued
    rules: list[mahavishnu_rules.RateLimitRule] = await engine.list_rules()
    assert (
        await engine.get_rule("api_global")
    ).scope is mahavishnu_rules.LimitScope.GLOBAL and len(rules) == 5
    request = mahavishnu_rules.OverrideRequest(
        admin_id="ops",
        reason=mahavishnu_rules.OverrideReason.INCIDENT_RESPONSE,
        target_user_id="user:1",
    )
    record: mahavishnu_rules.OverrideRecord = await engine.add_override(request)
    found: mahavishnu_rules.OverrideRecord | None = await engine.check_override(user_id="user:1")
    assert found is not None and found.override_id == record.override_id
    assert await engine.remove_override(record.override_id, admin_id="ops")
    log: list[mahavishnu_rules.OverrideAuditEntry] = await engine.get_audit_log(limit=10)
    assert [e.action for e in log] == ["add", "remove"]
    everything: dict[str, mahavishnu_rules.RateLimitMetrics] = await engine.get_all_metrics()
    metrics = await engine.get_metrics("api_per_user")
    assert metrics.calculate_hit_rate() == 0.0 and set(everything) >= {"custom"}
    await engine.reset_metrics()
    assert await engine.remove_rule("custom")

    app = Starlette(routes=[Route("/", homepage)])
    app.add_middleware(
        mahavishnu_rules.RateLimitMiddleware, engine=engine, default_rule="api_per_user"
    )
    middleware = mahavishnu_rules.RateLimitMiddleware(app, engine, "api_per_ip")
    assert middleware.default_rule == "api_per_ip"
    return metrics


async def adaptive_concurrency(clock: ManualClock) -> dict[str, Any]:
    """An adaptive concurrency limit: permits, outcomes, the queue, and the shedding middleware."""
    limiter = ConcurrencyLimiter(
        GradientLimit(10, max_limit=50), max_queue=5, partitions={"critical": 0.5}, clock=clock
    )
    permit: Permit | None = limiter.try_acquire("critical")
    assert permit is not None
    clock.advance(0.02)
    permit.success()
    async with await limiter.acquire(timeout=1.0) as held:
        assert not held.done
    aimd = ConcurrencyLimiter(AIMDLimit(1, timeout=2.0), clock=clock)
    first = await aimd.acquire()
    refused: Overloaded | None = None
    try:
        await aimd.acquire()
    except Overloaded as e:
        refused = e
    first.dropped()
    assert refused is not None and refused.reason == "limit" and not isinstance(refused, Dropped)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    shedding: ASGIApp = ConcurrencyLimitMiddleware(app, limit=AIMDLimit(4), clock=clock)
    same: type[ConcurrencyLimitMiddleware] = AsgiConcurrencyLimitMiddleware
    assert callable(shedding) and same is ConcurrencyLimitMiddleware
    return limiter.stats()


# --------------------------------------------------------------------------------------------
# Everything that needs no network, in one place for the test


# --------------------------------------------------------------------------------------------
# Backpressure: run, submit, slot, the decorator, refusals, stats, close


async def backpressure(clock: ManualClock) -> dict[str, Any]:
    """Bounded admission in each of its shapes; the refusals it raises."""

    def weight(chunk: bytes) -> int:
        return len(chunk)

    bp = Backpressure(
        "audio",
        max_concurrency=2,
        max_queue=1,
        max_queue_bytes=1024,
        strategy="drop_oldest",
        queue_timeout=5.0,
        order="lifo",
        adaptive_threshold=0.9,
        size_of=weight,
        clock=clock,
    )

    async def transcribe(chunk: bytes) -> int:
        return len(chunk)

    n: int = await bp.run(transcribe, b"abc")
    task: asyncio.Task[int] = bp.submit(transcribe, b"de")
    assert await task == 2 and n == 3

    @bp
    async def decorated(chunk: bytes) -> int:
        return len(chunk)

    assert await decorated(b"x") == 1
    async with bp.slot(size=10), bp.slot(size=10):
        queued = bp.submit(transcribe, b"1")  # waits: both slots are taken
        newer = bp.submit(transcribe, b"2")  # drop_oldest: displaces the one queued
        try:
            await queued
        except Dropped as dropped:
            assert dropped.reason == "dropped"
        refused: Overloaded | None = None
        try:
            await bp.run(transcribe, b"z" * 2000)  # larger than the whole byte budget
        except Overloaded as e:
            refused = e
        assert refused is not None and refused.reason == "memory"
        wait: float | None = refused.retry_after
        assert wait is None or wait >= 0
    assert await newer == 1
    expired: int = bp.check_timeouts()
    counts: tuple[int, int, int, int, int] = (
        bp.in_flight,
        bp.queued,
        bp.waiting,
        bp.queued_bytes,
        bp.limit,
    )
    assert expired == 0 and counts == (0, 0, 0, 0, 2)
    await bp.close(cancel_running=False)
    stats: dict[str, Any] = bp.stats()
    return stats


def prometheus_metrics(clock: ManualClock) -> str:
    """seawall.prometheus: a collector in a registry, and the /metrics app under Starlette."""
    from prometheus_client import CollectorRegistry, generate_latest

    limiter = Limiter("5/second", clock=clock)
    limiter.hit("user-1")
    registry = CollectorRegistry()
    collector: SeawallCollector = register_metrics(registry)
    assert any(f.name == "seawall_limiter_decisions" for f in collector.collect())
    app = Starlette(routes=[Mount("/metrics", app=metrics_app(registry))])
    with TestClient(app) as client:
        text = client.get("/metrics/").text
    # Opt-in, behind authentication in a real app: it shows client keys.
    opt_in = Starlette(routes=[Mount("/metrics", app=metrics_app(top_keys=True))])
    with TestClient(opt_in) as client:
        assert "limiters" in client.get("/metrics/top-keys").json()
    assert "seawall_limiter_decisions_total" in generate_latest(registry).decode()
    assert "seawall_limiter_decisions_total" in text
    return text


def otel_metrics(clock: ManualClock) -> tuple[str, ...]:
    """seawall.otel: asynchronous instruments on an OpenTelemetry meter provider."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    limiter = Limiter("5/second", clock=clock)
    limiter.hit("user-1")
    reader = InMemoryMetricReader()
    handle: Instrumentation = instrument_otel(MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    assert data is not None and handle.active
    scopes = [sm for rm in data.resource_metrics for sm in rm.scope_metrics]
    names = tuple(m.name for sm in scopes for m in sm.metrics)
    assert "seawall_limiter_decisions" in names
    handle.stop()
    return handle.instruments


SYNC_PARTS: list[Callable[[ManualClock], object]] = [
    rules_engine,
    in_memory_limiter,
    rate_limited_functions,
    asgi_requests,
    rules_middleware,
    raw_asgi_requests,
    fastapi_requests,
    mcp_server,
    snowflake_requests,
    fastmcp_example_service,
    prometheus_metrics,
    otel_metrics,
]
ASYNC_PARTS: list[Callable[[ManualClock], Awaitable[object]]] = [
    in_memory_limiter_async,
    rules_gate_async,
    token_buckets,
    rate_limited_coroutine,
    mcp_calls,
    mahavishnu_limiter,
    mahavishnu_rules_engine,
    backpressure,
    voicehive_dropin,
    voicehive_manager_dropin,
    adaptive_concurrency,
]
