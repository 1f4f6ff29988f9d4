"""seawall: native rate limiting, quotas, circuit breakers and backpressure for Python servers.

The decisions are made in Rust (``seawall._seawall``); this package adds what must be Python: the
``async`` forms, the ASGI and MCP glue, the test aids and the CLI.
"""

from seawall._limiter import Limiter
from seawall._seawall import (
    ALGORITHMS,
    Decision,
    Limit,
    SystemClock,
    TokenBucketConfig,
    __version__,
)
from seawall._token_bucket import ClientRateLimiter, TokenBucket

__all__ = [
    "ALGORITHMS",
    "ClientRateLimiter",
    "Decision",
    "Limit",
    "Limiter",
    "SystemClock",
    "TokenBucket",
    "TokenBucketConfig",
    "__version__",
]
