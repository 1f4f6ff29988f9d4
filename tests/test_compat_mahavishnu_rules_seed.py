"""Seed 002's own tests (its "Testing" section), verbatim but for the import: the unit test, run
by anyio's pytest plugin (the seed marks it for pytest-asyncio, which seawall does not use)."""
# ruff: noqa: B007, I001

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
