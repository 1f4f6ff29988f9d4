"""Seed 000 (Snowflake MCP server), ``rate_limiting/token_bucket.py``, on seawall's native types.

Same names, parameters, defaults and stats keys. Fixed behaviour: cleanup drops only buckets that
are full again (the original dropped active buckets that had never been rejected, handing their
clients a fresh bucket), and memory is bounded by ``max_clients``.
"""

from __future__ import annotations

from seawall import ClientRateLimiter, TokenBucket, TokenBucketConfig

__all__ = ["ClientRateLimiter", "TokenBucket", "TokenBucketConfig", "client_rate_limiter"]

# Global client rate limiter, with the original's defaults.
client_rate_limiter = ClientRateLimiter(
    TokenBucketConfig(
        capacity=100,  # 100 requests burst
        refill_rate=10.0,  # 10 requests per second
        initial_tokens=50,  # start with half capacity
    )
)
