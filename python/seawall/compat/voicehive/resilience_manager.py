"""Drop-in for the VoiceHive service's ``resilience_manager`` module (seed 003, 3.6; B10, B19).

One :class:`ResilienceManager` holds a service's rate limiter, breakers and backpressure handlers,
built from a :class:`ResilienceConfig` when it is constructed (no event loop needed), so the
middleware added before the app serves spends the manager's own ``rate_limiter``: the router's
client stats and resets act on the budgets the middleware spends. Fixed against the service
(defects 17, 18): each app gets its own manager (``app.state.resilience_manager``; B10), the
middleware is added before the app starts, never from a startup hook (B19), and it is given
its keyword arguments, not a half-built middleware's ``__dict__``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette

from seawall._time import now
from seawall.compat.voicehive import _manager_reports
from seawall.compat.voicehive.backpressure_handler import (
    BackpressureConfig,
    BackpressureHandler,
    BackpressureManager,
)
from seawall.compat.voicehive.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
)
from seawall.compat.voicehive.rate_limit_middleware import RateLimitMiddleware
from seawall.compat.voicehive.rate_limiter import RateLimiter
from seawall.compat.voicehive.resilience_config import ResilienceConfig, get_resilience_config

__all__ = [
    "ResilienceManager",
    "get_resilience_manager",
    "initialize_resilience_for_app",
    "setup_resilience",
]

_last: ResilienceManager | None = None


class ResilienceManager:
    """The service's resilience components. ``config=None``: ``get_resilience_config(
    environment)``; a supplied config is used as is (``environment`` is then a label, B10).
    ``clock``: given to every component (a ``seawall.testing.ManualClock`` in tests).

    The components exist from construction (``None`` when their feature is disabled);
    :meth:`initialize` marks the start (``initialized``, ``startup_time``)."""

    def __init__(
        self,
        config: ResilienceConfig | None = None,
        environment: str = "production",
        *,
        clock: Any = None,
    ) -> None:
        global _last
        if config is not None and not isinstance(config, ResilienceConfig):
            raise TypeError(f"config must be a ResilienceConfig, got {type(config).__name__}")
        if not isinstance(environment, str):
            raise TypeError(f"environment must be a str, got {type(environment).__name__}")
        self.config = config if config is not None else get_resilience_config(environment)
        self.environment = environment
        self.clock = clock
        self.initialized = False
        self.startup_time: datetime | None = None
        c = self.config
        self.rate_limiter: RateLimiter | None = None
        if c.rate_limiting_enabled:
            self.rate_limiter = RateLimiter(c.redis_url, clock=clock)
            if c.default_rate_limit_config is not None:
                self.rate_limiter.default_config = c.default_rate_limit_config
            for rule in c.rate_limiting_rules:
                self.rate_limiter.add_rule(rule)
        self.circuit_breaker_manager: CircuitBreakerManager | None = None
        if c.circuit_breakers_enabled:
            self.circuit_breaker_manager = CircuitBreakerManager(c.redis_url, clock=clock)
            for name, bc in c.circuit_breaker_configs.items():
                self.circuit_breaker_manager.get_or_create_breaker(name, bc)
        self.backpressure_manager: BackpressureManager | None = None
        if c.backpressure_enabled:
            self.backpressure_manager = BackpressureManager(clock=clock)
            for name, bpc in c.backpressure_configs.items():
                self.backpressure_manager.create_handler(name, bpc)
        _last = self

    @property
    def redis_connected(self) -> bool:
        """Whether state lives in Redis (``False`` on the memory store)."""
        return self.config.redis_url not in (None, "", "memory://")

    async def initialize(self) -> bool:
        """Marks the manager started (idempotent); returns ``True``."""
        if not self.initialized:
            self.startup_time = datetime.fromtimestamp(now(self.clock), timezone.utc)
            self.initialized = True
        return True

    def create_rate_limit_middleware(self) -> dict[str, Any] | None:
        """The keyword arguments for ``app.add_middleware(RateLimitMiddleware, **kwargs)``: the
        manager's ``rate_limiter`` (its rules already added) and the config's tokens, excluded
        paths and proxies; ``None`` when rate limiting is disabled."""
        if self.rate_limiter is None:
            return None
        c = self.config
        token_header = "X-Service-Token"
        return {
            "limiter": self.rate_limiter,
            "rules": [],
            "internal_service_tokens": dict(c.internal_service_tokens),
            "internal_service_headers": [
                h for h in c.internal_service_headers if h.lower() != token_header.lower()
            ],
            "service_token_header": token_header,
            "excluded_paths": list(c.excluded_paths),
            "trusted_proxies": list(c.trusted_proxies),
        }

    def get_circuit_breaker(
        self, name: str, config: CircuitBreakerConfig | None = None
    ) -> CircuitBreaker | None:
        """The breaker ``name`` (made with ``config``, or the config's entry, the first time);
        ``None`` when breakers are disabled."""
        if self.circuit_breaker_manager is None:
            return None
        return self.circuit_breaker_manager.get_or_create_breaker(
            name, config or self.config.circuit_breaker_configs.get(name)
        )

    def get_backpressure_handler(
        self, name: str, config: BackpressureConfig | None = None
    ) -> BackpressureHandler | None:
        """The handler ``name`` (made with ``config``, or the config's entry, the first time);
        ``None`` when backpressure is disabled."""
        if self.backpressure_manager is None:
            return None
        return self.backpressure_manager.create_handler(
            name, config or self.config.backpressure_configs.get(name)
        )

    async def get_health_status(self) -> dict[str, Any]:
        return await _manager_reports.health(self)

    async def get_metrics(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(now(self.clock), timezone.utc)
        return await _manager_reports.metrics(self, moment)

    async def reset_all_circuit_breakers(self) -> None:
        if self.circuit_breaker_manager is not None:
            await self.circuit_breaker_manager.reset_all()

    async def shutdown(self) -> None:
        """Shuts every backpressure handler down; the manager is no longer initialized."""
        if self.backpressure_manager is not None:
            await self.backpressure_manager.shutdown_all()
        self.initialized = False


def get_resilience_manager(
    config: ResilienceConfig | None = None, environment: str = "production"
) -> ResilienceManager:
    """The last manager created, for code that wants one without an app (B10); a new one (which
    becomes the last) when none exists yet or when ``config`` is given (the service ignored a
    config once it had a manager, defect 17). ``environment`` is used when one is created."""
    if _last is None or config is not None:
        return ResilienceManager(config, environment)
    return _last


def _check_not_started(app: Starlette, what: str) -> None:
    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError(
            f"{what} must run before the app serves (it adds middleware, which Starlette "
            "refuses once the app has started); call it where the app is built, or use "
            "setup_resilience(app) there"
        )


def _add(app: Starlette, manager: ResilienceManager) -> None:
    kwargs = manager.create_rate_limit_middleware()
    if kwargs is not None:
        app.add_middleware(RateLimitMiddleware, **kwargs)
    app.state.resilience_manager = manager


async def initialize_resilience_for_app(
    app: Starlette,
    config: ResilienceConfig | None = None,
    environment: str = "production",
    *,
    clock: Any = None,
) -> ResilienceManager:
    """Creates the app's manager, adds its rate-limit middleware and initializes it; must be
    awaited before the app serves (else ``RuntimeError``, B19). Returns the manager, also at
    ``app.state.resilience_manager``."""
    _check_not_started(app, "initialize_resilience_for_app")
    manager = ResilienceManager(config, environment, clock=clock)
    _add(app, manager)
    await manager.initialize()
    return manager


def setup_resilience(
    app: Starlette,
    config: ResilienceConfig | None = None,
    environment: str = "production",
    *,
    clock: Any = None,
) -> ResilienceManager:
    """Sync: creates the app's manager and adds its middleware now; the app's lifespan runs
    ``initialize()`` before serving and ``shutdown()`` after (B19). Returns the manager."""
    _check_not_started(app, "setup_resilience")
    manager = ResilienceManager(config, environment, clock=clock)
    _add(app, manager)
    previous: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        await manager.initialize()
        try:
            async with previous(a) as state:
                yield state
        finally:
            await manager.shutdown()

    app.router.lifespan_context = lifespan
    return manager
