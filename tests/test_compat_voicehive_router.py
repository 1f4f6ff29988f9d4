"""Seed 003's resilience router (3.7): admin checks (B11), every endpoint's shape, resets acting
on the budgets the middleware spends (B12), ISO 8601 times (B17), 404s and the 503 before start.
Real FastAPI apps through httpx's ASGITransport; a ManualClock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from seawall.compat.voicehive.backpressure_handler import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive.circuit_breaker import CircuitBreakerConfig
from seawall.compat.voicehive.resilience_config import ResilienceConfig
from seawall.compat.voicehive.resilience_manager import (
    ResilienceManager,
    initialize_resilience_for_app,
)
from seawall.compat.voicehive.routers.resilience import (
    create_resilience_router,
    get_resilience_manager_dependency,
    require_admin_role,
    router,
)
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0
IP = "203.0.113.7"
ADMIN = {"Authorization": "Bearer admin-s3cret"}
THE_MANAGER = Depends(get_resilience_manager_dependency)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(**kw: Any) -> ResilienceConfig:
    kw.setdefault("redis_url", None)
    kw.setdefault(
        "rate_limiting_rules",
        [{"path_pattern": r"/api/.*", "config": {"requests_per_minute": 2}}],
    )
    kw.setdefault(
        "circuit_breaker_configs", {"tts_service": CircuitBreakerConfig(failure_threshold=1)}
    )
    kw.setdefault(
        "backpressure_configs",
        {"tts_synthesis": BackpressureConfig(strategy=BackpressureStrategy.DROP_OLDEST)},
    )
    kw.setdefault("admin_token", "admin-s3cret")
    return ResilienceConfig(**kw)


async def make(**kw: Any) -> tuple[FastAPI, ResilienceManager]:
    app = FastAPI()

    @app.get("/api/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    app.include_router(kw.pop("router", router))
    manager = await initialize_resilience_for_app(app, config(**kw), clock=ManualClock(T0))
    return app, manager


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(IP, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


ADMIN_ONLY = [
    ("POST", "/resilience/circuit-breakers/tts_service/reset"),
    ("POST", "/resilience/circuit-breakers/reset-all"),
    ("GET", f"/resilience/rate-limits/ip:{IP}"),
    ("POST", f"/resilience/rate-limits/ip:{IP}/reset"),
    ("GET", "/resilience/config"),
]
READS = [
    "/resilience/health",
    "/resilience/metrics",
    "/resilience/circuit-breakers",
    "/resilience/circuit-breakers/tts_service",
    "/resilience/backpressure",
    "/resilience/backpressure/tts_synthesis",
]


async def test_admin_endpoints_401_without_credentials_403_with_a_wrong_token() -> None:
    app, _ = await make()
    async with client(app) as c:
        for method, path in ADMIN_ONLY:
            missing = await c.request(method, path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            basic = await c.request(method, path, headers={"Authorization": "Basic YTpi"})
            assert basic.status_code == 401, path
            wrong = await c.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403, path
            assert (await c.request(method, path, headers=ADMIN)).status_code == 200, path
        for path in READS:
            assert (await c.get(path)).status_code == 200, path


async def test_no_admin_token_configured_is_403_for_everyone() -> None:
    app, _ = await make(admin_token=None)
    async with client(app) as c:
        for method, path in ADMIN_ONLY:
            assert (await c.request(method, path)).status_code == 403
            assert (await c.request(method, path, headers=ADMIN)).status_code == 403


async def test_reads_closed_with_require_admin_for_reads_and_a_custom_check() -> None:
    app, _ = await make(router=create_resilience_router(require_admin_for_reads=True))
    async with client(app) as c:
        for path in READS:
            assert (await c.get(path)).status_code == 401
            assert (await c.get(path, headers=ADMIN)).status_code == 200

    seen: list[str] = []

    async def custom(request: Any = None) -> dict[str, str]:
        seen.append("checked")
        return {"role": "admin"}

    app, _ = await make(router=create_resilience_router(prefix="/ops", require_admin=custom))
    async with client(app) as c:
        assert (await c.get("/ops/config")).status_code == 200
    assert seen == ["checked"]


async def test_require_admin_role_can_be_overridden() -> None:
    app, _ = await make()
    app.dependency_overrides[require_admin_role] = lambda: {"role": "admin"}
    async with client(app) as c:
        assert (await c.get("/resilience/config")).status_code == 200


async def test_503_until_the_manager_is_initialized() -> None:
    app = FastAPI()
    app.include_router(router)
    manager = ResilienceManager(config())
    app.state.resilience_manager = manager
    async with client(app) as c:
        assert (await c.get("/resilience/health")).status_code == 503
        await manager.initialize()
        assert (await c.get("/resilience/health")).json()["status"] == "healthy"


async def test_health_and_metrics_shapes() -> None:
    app, _ = await make()
    async with client(app) as c:
        health = (await c.get("/resilience/health")).json()
        metrics = (await c.get("/resilience/metrics")).json()
    assert health["status"] == "healthy" and health["initialized"] is True
    assert datetime.fromisoformat(health["startup_time"]).timestamp() == T0
    assert health["redis_connected"] is False
    assert set(health["components"]) == {"rate_limiter", "circuit_breakers", "backpressure"}
    assert health["components"]["circuit_breakers"]["breakers_count"] == 1
    assert set(metrics) == {
        "timestamp",
        "environment",
        "rate_limiter",
        "circuit_breakers",
        "backpressure",
    }
    assert metrics["circuit_breakers"]["tts_service"]["state"] == "closed"


async def test_breaker_endpoints_list_get_reset_and_404() -> None:
    app, manager = await make()
    breaker = manager.get_circuit_breaker("tts_service")
    assert breaker is not None

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    async with client(app) as c:
        listed = (await c.get("/resilience/circuit-breakers")).json()
        assert [b["name"] for b in listed] == ["tts_service"]
        one = (await c.get("/resilience/circuit-breakers/tts_service")).json()
        assert one == listed[0]
        assert one["state"] == "open" and one["total_failures"] == 1
        failed_at = datetime.fromisoformat(one["last_failure_time"])
        assert failed_at.utcoffset() is not None and failed_at.timestamp() == T0
        assert datetime.fromisoformat(one["next_attempt_time"]).timestamp() > T0
        assert (await c.get("/resilience/circuit-breakers/nope")).status_code == 404
        nope = await c.post("/resilience/circuit-breakers/nope/reset", headers=ADMIN)
        assert nope.status_code == 404
        reset = await c.post("/resilience/circuit-breakers/tts_service/reset", headers=ADMIN)
        assert reset.status_code == 200
        state = (await c.get("/resilience/circuit-breakers/tts_service")).json()["state"]
        assert state == "closed"
        with pytest.raises(ConnectionError):
            await breaker.call(fail)
        assert (await c.post("/resilience/circuit-breakers/reset-all", headers=ADMIN)).json()[
            "reset"
        ] == ["tts_service"]
        assert breaker.state.value == "closed"


async def test_backpressure_endpoints_list_get_and_404() -> None:
    app, manager = await make()
    handler = manager.get_backpressure_handler("tts_synthesis")
    assert handler is not None

    async def work() -> int:
        return 1

    task = await handler.submit_task("t", work)
    assert task is not None and await task == 1
    async with client(app) as c:
        listed = (await c.get("/resilience/backpressure")).json()
        one = (await c.get("/resilience/backpressure/tts_synthesis")).json()
        missing = await c.get("/resilience/backpressure/nope")
    assert listed == [one]
    assert one["name"] == "tts_synthesis" and one["strategy"] == "drop_oldest"
    assert one["total_processed"] == 1 and one["in_flight"] == 0
    assert missing.status_code == 404


async def test_client_stats_and_resets_act_on_the_budgets_the_middleware_spends() -> None:
    app, _ = await make()
    async with client(app) as c:
        assert [(await c.get(f"/api/items/{i}")).status_code for i in range(3)] == [200, 200, 429]
        stats = (await c.get(f"/resilience/rate-limits/ip:{IP}", headers=ADMIN)).json()
        assert stats["client_id"] == f"ip:{IP}"
        assert stats["stats"]["minute"][r"/api/.*"] == 2
        assert set(stats["stats"]) == {"minute", "hour", "day"}
        other = await c.post(
            f"/resilience/rate-limits/ip:{IP}/reset?path=/elsewhere", headers=ADMIN
        )
        # /elsewhere matches no rule: only the default budget, unused by this client (the
        # router's requests carry a bearer token, so they are another client)
        assert other.json()["reset"] == 0
        assert (await c.get("/api/items/1")).status_code == 429
        done = await c.post(f"/resilience/rate-limits/ip:{IP}/reset?path=/api/x", headers=ADMIN)
        assert done.status_code == 200 and done.json()["reset"] == 1
        assert (await c.get("/api/items/1")).status_code == 200


async def test_rate_limits_404_when_rate_limiting_is_disabled() -> None:
    app, _ = await make(rate_limiting_enabled=False)
    async with client(app) as c:
        assert (await c.get("/resilience/rate-limits/x", headers=ADMIN)).status_code == 404


async def test_config_redacts_secrets() -> None:
    app, manager = await make(internal_service_tokens={"tts-router": "svc-s3cret"})
    manager.config.redis_url = "redis://user:hunter2@cache.internal:6380/2"
    async with client(app) as c:
        body = (await c.get("/resilience/config", headers=ADMIN)).json()
    text = str(body)
    for secret in ("hunter2", "admin-s3cret", "svc-s3cret"):
        assert secret not in text
    cfg = body["config"]
    assert cfg["redis_url"] == "redis://user:***@cache.internal:6380/2"
    assert cfg["admin_token"] == "***"
    assert cfg["internal_service_tokens"] == {"tts-router": "***"}
    assert cfg["backpressure_configs"]["tts_synthesis"]["strategy"] == "drop_oldest"
    assert cfg["circuit_breaker_configs"]["tts_service"]["expected_exception"] == ["Exception"]
    assert cfg["rate_limiting_rules"][0]["path_pattern"] == r"/api/.*"


async def test_the_dependency_prefers_the_apps_manager() -> None:
    app, manager = await make()
    ResilienceManager(config())  # created later: the last one, but not this app's
    seen: list[ResilienceManager] = []

    @app.get("/mine")
    async def mine(m: ResilienceManager = THE_MANAGER) -> None:
        seen.append(m)

    async with client(app) as c:
        assert (await c.get("/mine")).status_code == 200
    assert seen == [manager]
