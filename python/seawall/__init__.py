"""seawall: native rate limiting, quotas, circuit breakers and backpressure for Python servers.

The decisions are made in Rust (``seawall._seawall``); this package adds what must be Python: the
``async`` forms, the ASGI and MCP glue, the test aids and the CLI. ``seawall.fastapi`` (the FastAPI
dependency) is imported on its own, so that ``import seawall`` needs no web framework.

Sync and async names follow one rule. In seawall's own API a method that can be awaited has a
sync twin, and the awaitable one is named ``a`` + the sync name: ``Limiter.hit`` /
``Limiter.ahit`` (likewise ``allow`` / ``aallow``, ``test`` / ``atest``, ``reset`` /
``areset``, on ``Limiter`` and ``RedisLimiter``), ``CircuitBreaker.call`` /
``CircuitBreaker.acall``, ``with breaker:`` / ``async with breaker:``. No name of seawall's own
says ``async`` or ``sync`` otherwise (``CircuitBreaker.sync()`` shares a breaker's state
through Redis: there "sync" means synchronise). Decorators and middleware take sync and
``async def`` functions alike under one name (``rate_limit``, ``rate_limit_tool``,
``CircuitBreaker`` as ``@breaker``), and framework hooks keep the framework's names. The
drop-in APIs keep the names of the code they replace, because those names are their contract:
seed 000's ``TokenBucket`` / ``ClientRateLimiter`` (``consume`` is async, ``try_consume`` sync;
``peek`` / ``peek_sync``, ...) and everything in ``seawall.compat``. A name that broke the rule
(``CircuitBreaker.call_async``) still works, with a ``DeprecationWarning``.
"""

from seawall._host import HostLimiter
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
from seawall.backpressure import Backpressure
from seawall.breaker import CircuitBreaker, breakers
from seawall.concurrency import AIMDLimit, ConcurrencyLimiter, GradientLimit, Permit
from seawall.decorators import rate_limit
from seawall.errors import (
    CircuitOpenError,
    Dropped,
    Overloaded,
    RateLimitExceeded,
    SeawallError,
)
from seawall.shedding import ConcurrencyLimitMiddleware

# Plain sorted order (tests/test_asgi.py checks it), not ruff's constants-first.
__all__ = [  # noqa: RUF022
    "AIMDLimit",
    "ALGORITHMS",
    "Backpressure",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientRateLimiter",
    "ConcurrencyLimitMiddleware",
    "ConcurrencyLimiter",
    "Decision",
    "Dropped",
    "GradientLimit",
    "HostLimiter",
    "Limit",
    "Limiter",
    "Overloaded",
    "Permit",
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
