"""Seed 002's own tests (its "Testing" section), verbatim but for the imports: the unit test, run
by anyio's pytest plugin (the seed marks it for pytest-asyncio, which seawall does not use), and
the integration test, against an app of ours (the seed leaves its app out)."""
# ruff: noqa: B007, E402, I001

import pytest
from seawall.compat.mahavishnu.rate_limiting import (
    create_rate_limiter,
    RateLimitRule,
    LimitScope,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.asyncio
async def test_rate_limit():
    limiter = create_rate_limiter()

    await limiter.add_rule(
        RateLimitRule(
            name="test",
            scope=LimitScope.PER_USER,
            rate=10,
            burst=10,
            window_seconds=60,
        )
    )

    # Make requests up to limit
    for i in range(10):
        decision = await limiter.check_limit("user_1", "test")
        assert decision.allowed is True

    # Next request should be denied
    decision = await limiter.check_limit("user_1", "test")
    assert decision.allowed is False


from fastapi.testclient import TestClient
from seawall.compat.mahavishnu.rate_limiting import RateLimitMiddleware

# The app: 10 requests a minute per client, the seed's middleware setup, on a clock only a test
# could move.
from fastapi import FastAPI
from seawall.testing import ManualClock

_limiter = create_rate_limiter(clock=ManualClock())
_limiter.add_rule_sync(
    RateLimitRule(name="api_test", scope=LimitScope.PER_USER, rate=10, window_seconds=60)
)
app = FastAPI()
app.add_middleware(RateLimitMiddleware, engine=_limiter, default_rule="api_test")


@app.get("/api/test")
async def api_test() -> dict[str, str]:
    return {"status": "ok"}


def test_rate_limit_middleware():
    client = TestClient(app)

    # Make requests up to limit
    for i in range(10):
        response = client.get("/api/test")
        assert response.status_code == 200

    # Next request should be rate limited
    response = client.get("/api/test")
    assert response.status_code == 429
    assert "Retry-After" in response.headers
