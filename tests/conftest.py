from __future__ import annotations

import pytest

from seawall import TokenBucketConfig


@pytest.fixture
def config() -> TokenBucketConfig:
    """The seed's global defaults: a burst of 100, 10 per second, starting at half."""
    return TokenBucketConfig(capacity=100, refill_rate=10.0, initial_tokens=50)
