"""Seed 002's drop-in ``RateLimitMiddleware``: selection (A3), overrides (A22) and the client's
identity (A27) through it, on the native ``RulesMiddleware``."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from test_compat_mahavishnu_rules import T0, Counting, Lenient, limiter, rule

from seawall.compat.mahavishnu.rate_limiting import (
    OverrideRequest,
    RateLimitEngine,
    RateLimitMiddleware,
    create_default_rules,
)
from seawall.testing import ManualClock

# --------------------------------------------------------------------------------------------
# The middleware: A3, A13, A22, A27 through RateLimitMiddleware


def app_with(engine: RateLimitEngine, **options: Any) -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{path:path}", ok)])
    app.add_middleware(RateLimitMiddleware, engine=engine, **options)
    return app


def statuses(client: TestClient, path: str, n: int, **headers: str) -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(n)]


def test_a3_the_middleware_selects_by_filters_and_priority_else_the_default_rule() -> None:
    engine = limiter(ManualClock(T0), *create_default_rules())
    engine.set_strategy_handler(Lenient(engine))  # for check_limit callers only
    client = TestClient(app_with(engine, default_rule="api_per_user"), client=("10.1.2.3", 9))
    assert statuses(client, "/api/search", 3) == [200, 200, 429]  # expensive_operations: burst 2
    assert statuses(client, "/api/items", 11) == [200] * 10 + [429]  # api_per_user: burst 10
    refused = client.get("/api/items")
    assert refused.headers["Retry-After"] == "1"  # 100 a minute: one every 0.6 s
    expensive = engine.get_metrics_sync("expensive_operations")
    assert (expensive.total_requests, expensive.denied_requests) == (3, 1)
    assert expensive.violations_by_endpoint == {"/api/search": 1}
    assert engine.get_metrics_sync("api_per_user").violations_by_ip == {"10.1.2.3": 2}


def test_a22_a27_overrides_and_identifiers_through_the_middleware() -> None:
    engine = limiter(ManualClock(T0), rule("api", rate=1))

    def extract_user_id(request: Request) -> str | None:
        # Stands for a verified session: the test's own header, never a client's claim in
        # production.
        user = request.headers.get("x-test-user")
        return f"user:{user}" if user else None

    app = app_with(engine, default_rule="api", extract_identifier=extract_user_id)
    client = TestClient(app, client=("192.0.2.9", 9))
    engine.add_override_sync(
        OverrideRequest(admin_id="ops", reason="r", target_user_id="ann", unlimited=True)
    )
    assert statuses(client, "/x", 3, **{"x-test-user": "ann"}) == [200] * 3
    assert statuses(client, "/x", 2, **{"x-test-user": "bob"}) == [200, 429]
    # The default identifier is the peer address; a forwarded one is believed from trusted
    # proxies only.
    assert statuses(client, "/x", 2, **{"x-forwarded-for": "203.0.113.1"}) == [200, 429]
    proxied = TestClient(
        app_with(engine, default_rule="api", trusted_proxies=["10.0.0.0/8"]), client=("10.0.0.2", 9)
    )
    assert statuses(proxied, "/x", 2, **{"x-forwarded-for": "203.0.113.7"}) == [200, 429]
    assert statuses(proxied, "/x", 1, **{"x-forwarded-for": "203.0.113.8"}) == [200]


def test_the_middleware_takes_a_drop_in_engine_and_no_custom_default_rule() -> None:
    engine = limiter(ManualClock(T0), rule("c", algorithm=Counting(1)))
    with pytest.raises(ValueError, match="custom algorithm"):
        RateLimitMiddleware(app_with(engine), engine=engine, default_rule="c")
    with pytest.raises(TypeError, match="create_rate_limiter"):
        RateLimitMiddleware(app_with(engine), engine=engine.native)  # type: ignore[arg-type]
