"""Seed 003's resilience_manager (3.6): one manager per app (B10), start-up before serving and in
the lifespan (B19), the middleware spending the manager's own limiter, health and metrics shapes.
Real FastAPI apps through httpx's ASGITransport and Starlette's TestClient; a ManualClock."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from seawall.compat.voicehive.backpressure_handler import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive.circuit_breaker import CircuitBreakerConfig
from seawall.compat.voicehive.rate_limit_middleware import RateLimitMiddleware
from seawall.compat.voicehive.resilience_config import ResilienceConfig
from seawall.compat.voicehive.resilience_manager import (
    ResilienceManager,
    get_resilience_manager,
    initialize_resilience_for_app,
    setup_resilience,
)
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0
IP = "203.0.113.7"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(**kw: Any) -> ResilienceConfig:
    kw.setdefault("redis_url", None)
    kw.setdefault(
        "rate_limiting_rules",
        [{"path_pattern": r"/api/.*", "config": {"requests_per_minute": 2}}],
    )
    kw.setdefault("circuit_breaker_configs", {"tts_service": CircuitBreakerConfig()})
    kw.setdefault(
        "backpressure_configs",
        {"tts_synthesis": BackpressureConfig(strategy=BackpressureStrategy.DROP_OLDEST)},
    )
    return ResilienceConfig(**kw)


def api() -> FastAPI:
    app = FastAPI()

    @app.get("/api/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(IP, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_each_app_gets_its_own_manager_and_the_middleware_spends_its_limiter() -> None:
    clock = ManualClock(T0)
    one, two = api(), api()
    m1 = await initialize_resilience_for_app(one, config(), clock=clock)
    m2 = await initialize_resilience_for_app(two, config(), clock=clock)
    assert m1 is not m2
    assert one.state.resilience_manager is m1 and two.state.resilience_manager is m2
    assert get_resilience_manager() is m2  # the last one created
    async with client(one) as c:
        codes = [(await c.get(f"/api/items/{i}")).status_code for i in range(3)]
    assert codes == [200, 200, 429]  # one budget for every path the rule matches (B3)
    assert m1.rate_limiter is not None and m2.rate_limiter is not None
    assert (await m1.rate_limiter.get_client_stats(f"ip:{IP}"))["minute"][r"/api/.*"] == 2
    assert (await m2.rate_limiter.get_client_stats(f"ip:{IP}"))["minute"][r"/api/.*"] == 0
    assert await m1.rate_limiter.reset_client_limits(f"ip:{IP}", "/api/items/1") == 1
    async with client(one) as c:
        assert (await c.get("/api/items/9")).status_code == 200


async def test_a_supplied_config_is_used_as_is() -> None:
    custom = config(
        rate_limiting_rules=[{"path_pattern": "/x", "config": {"requests_per_minute": 7}}]
    )
    m = ResilienceManager(custom, "production")
    assert m.config is custom and m.environment == "production"
    assert m.rate_limiter is not None
    assert m.rate_limiter.rules[0].config.requests_per_minute == 7  # no profile applied
    with pytest.raises(TypeError, match="config"):
        ResilienceManager({"redis_url": None})  # type: ignore[arg-type]


def test_no_config_follows_the_environment() -> None:
    dev = ResilienceManager(None, "development")
    prod = ResilienceManager(None, "production")
    assert dev.config.rate_limiting_rules and dev.config != prod.config


def test_get_resilience_manager_returns_the_last_or_a_new_one_for_new_arguments() -> None:
    last = ResilienceManager(config(), "production")
    assert get_resilience_manager() is last
    assert get_resilience_manager(environment="staging") is last  # no config: the last one
    other = get_resilience_manager(config(), "staging")
    assert other is not last and other.environment == "staging"
    assert get_resilience_manager() is other


async def test_initialize_after_the_app_started_is_a_clear_runtime_error() -> None:
    app = api()
    async with client(app) as c:
        assert (await c.get("/api/items/1")).status_code == 200
    with pytest.raises(RuntimeError, match="before the app serves"):
        await initialize_resilience_for_app(app, config())
    with pytest.raises(RuntimeError, match="before the app serves"):
        setup_resilience(app, config())


def test_setup_resilience_adds_the_middleware_now_and_initializes_in_the_lifespan() -> None:
    app = api()
    seen: list[str] = []

    @app.get("/whoami")
    async def whoami() -> dict[str, bool]:
        return {"ok": True}

    @asynccontextmanager
    async def own(a: Any) -> Any:
        seen.append("start")
        yield
        seen.append("stop")

    app.router.lifespan_context = own
    clock = ManualClock(T0)
    manager = setup_resilience(app, config(), clock=clock)
    assert [m.cls for m in app.user_middleware] == [RateLimitMiddleware]  # type: ignore[comparison-overlap]
    assert app.state.resilience_manager is manager and not manager.initialized
    with TestClient(app) as c:
        assert manager.initialized and seen == ["start"]
        assert manager.startup_time == datetime.fromtimestamp(T0, timezone.utc)
        assert [c.get("/api/items/1").status_code for _ in range(3)] == [200, 200, 429]
    assert seen == ["start", "stop"] and not manager.initialized


async def test_health_and_metrics_shapes() -> None:
    clock = ManualClock(T0)
    m = ResilienceManager(config(), "production", clock=clock)
    assert await m.initialize() is True
    breaker = m.get_circuit_breaker("pms_connector", CircuitBreakerConfig(failure_threshold=1))
    handler = m.get_backpressure_handler("extra")
    assert breaker is not None and handler is not None

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    health = await m.get_health_status()
    assert set(health) == {
        "initialized",
        "startup_time",
        "environment",
        "redis_connected",
        "components",
    }
    assert health["startup_time"] == datetime.fromtimestamp(T0, timezone.utc).isoformat()
    assert (health["initialized"], health["redis_connected"]) == (True, False)
    comps = health["components"]
    assert comps["rate_limiter"] == {"enabled": True, "rules_count": 1}
    assert comps["circuit_breakers"]["breakers_count"] == 2
    assert comps["circuit_breakers"]["stats"]["pms_connector"]["state"] == "open"
    assert comps["backpressure"]["handlers_count"] == 2
    assert set(comps["backpressure"]["stats"]) == {"tts_synthesis", "extra"}
    clock.advance(5)
    metrics = await m.get_metrics()
    assert set(metrics) == {
        "timestamp",
        "environment",
        "rate_limiter",
        "circuit_breakers",
        "backpressure",
    }
    assert metrics["timestamp"] == datetime.fromtimestamp(T0 + 5, timezone.utc).isoformat()
    assert metrics["circuit_breakers"]["pms_connector"] == {
        "state": "open",
        "failure_count": 1,
        "success_count": 0,
        "total_requests": 1,
        "total_failures": 1,
        "total_successes": 0,
    }
    assert metrics["backpressure"]["tts_synthesis"]["strategy"] == "drop_oldest"
    await m.reset_all_circuit_breakers()
    assert (await breaker.get_stats()).state.value == "closed"
    await m.shutdown()
    assert not m.initialized


async def test_disabled_components_are_none() -> None:
    m = ResilienceManager(
        config(
            rate_limiting_enabled=False, circuit_breakers_enabled=False, backpressure_enabled=False
        )
    )
    assert m.rate_limiter is None and m.create_rate_limit_middleware() is None
    assert m.get_circuit_breaker("x") is None and m.get_backpressure_handler("x") is None
    comps = (await m.get_health_status())["components"]
    assert [c["enabled"] for c in comps.values()] == [False, False, False]
    app = api()
    await initialize_resilience_for_app(app, m.config)
    assert app.user_middleware == []


def test_create_rate_limit_middleware_gives_keyword_arguments() -> None:
    m = ResilienceManager(
        config(internal_service_tokens={"svc": "tok"}, trusted_proxies=["10.0.0.1"])
    )
    kwargs = m.create_rate_limit_middleware()
    assert kwargs is not None
    assert kwargs["limiter"] is m.rate_limiter and kwargs["rules"] == []
    assert kwargs["internal_service_tokens"] == {"svc": "tok"}
    assert "X-Service-Token" not in kwargs["internal_service_headers"]
    assert kwargs["trusted_proxies"] == ["10.0.0.1"]
    RateLimitMiddleware(api(), **kwargs)  # accepted as is
    assert m.rate_limiter is not None and len(m.rate_limiter.rules) == 1  # no rule added twice


async def test_internal_tokens_reach_the_middleware() -> None:
    app = api()
    await initialize_resilience_for_app(app, config(internal_service_tokens={"svc": "tok"}))
    async with client(app) as c:
        codes = [
            (await c.get("/api/items/1", headers={"X-Service-Token": "tok"})).status_code
            for _ in range(4)
        ]
    assert codes == [200] * 4


async def test_a_manager_on_redis_reports_it_and_spends_budgets_there(
    redis_url: str, redis_prefix: str
) -> None:
    m = ResilienceManager(config(redis_url=redis_url), clock=ManualClock(T0))
    await m.initialize()
    assert (await m.get_health_status())["redis_connected"] is True
    assert m.rate_limiter is not None
    m.rate_limiter.key_prefix = redis_prefix
    first = await m.rate_limiter.check_rate_limit(f"{redis_prefix}c", "/api/x", client_type="api")
    assert first.allowed and first.remaining == 1
    stats = await m.rate_limiter.get_client_stats(f"{redis_prefix}c")
    assert stats["minute"][r"/api/.*"] == 1
