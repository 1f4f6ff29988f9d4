"""seawall: native rate limiting, quotas, circuit breakers and backpressure for Python servers.

The decisions are made in Rust (``seawall._seawall``); this package adds what must be Python: the
``async`` forms, the ASGI and MCP glue, the test aids and the CLI. ``seawall.fastapi`` (the FastAPI
dependency) is imported on its own, so that ``import seawall`` needs no web framework.
"""

from seawall._limiter import Limiter
from seawall._redis import RedisLimiter
from seawall._seawall import (
    ALGORITHMS,
    Decision,
    Limit,
    SystemClock,
    TokenBucketConfig,
    __version__,
)
from seawall._token_bucket import ClientRateLimiter, TokenBucket
from seawall.asgi import RateLimitMiddleware, Rule
from seawall.breaker import CircuitBreaker, breakers
from seawall.decorators import rate_limit
from seawall.errors import CircuitOpenError, RateLimitExceeded, SeawallError

__all__ = [
    "ALGORITHMS",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientRateLimiter",
    "Decision",
    "Limit",
    "Limiter",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "RedisLimiter",
    "Rule",
    "SeawallError",
    "SystemClock",
    "TokenBucket",
    "TokenBucketConfig",
    "__version__",
    "breakers",
    "rate_limit",
]
