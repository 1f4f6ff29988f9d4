"""Drop-in for the VoiceHive service's resilience router (seed 003, 3.7; B11, B12, B17).

``app.include_router(router)`` (prefix ``/resilience``), or :func:`create_resilience_router` for
another prefix, another admin check, or admin-only reads. The manager is the app's
(``app.state.resilience_manager``), else the last one created; until it is initialized every
endpoint answers 503. Admin endpoints need ``Authorization: Bearer <ResilienceConfig.admin_token>``
(:func:`require_admin_role`, replaceable with ``app.dependency_overrides``). Fixed against the
service (defect 17): 404s stay 404s, ``/config`` redacts its secrets, the admin check ships.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from seawall.compat.voicehive import resilience_manager as _managers
from seawall.compat.voicehive.resilience_manager import ResilienceManager
from seawall.compat.voicehive.routers._models import (
    BackpressureStatsResponse,
    CircuitBreakerStatsResponse,
    RateLimitStatsResponse,
    ResilienceHealthResponse,
    ResilienceMetricsResponse,
)
from seawall.compat.voicehive.routers._public_config import public_config

__all__ = [
    "create_resilience_router",
    "get_resilience_manager_dependency",
    "require_admin_role",
    "router",
]


def _manager_of(request: Request) -> ResilienceManager | None:
    found = getattr(request.app.state, "resilience_manager", None)
    return found if isinstance(found, ResilienceManager) else _managers._last


def get_resilience_manager_dependency(request: Request) -> ResilienceManager:
    """The app's manager (``app.state.resilience_manager``), else the last one created; 503
    until it is initialized."""
    manager = _manager_of(request)
    if manager is None or not manager.initialized:
        raise HTTPException(status_code=503, detail="Resilience manager not initialized")
    return manager


async def require_admin_role(request: Request) -> dict[str, Any]:
    """B11: ``Authorization: Bearer <ResilienceConfig.admin_token>``, compared in constant time.
    No token configured: 403 for everyone (fail closed); missing credentials: 401 with
    ``WWW-Authenticate: Bearer``; a wrong token: 403."""
    manager = _manager_of(request)
    expected = None if manager is None else manager.config.admin_token
    if not expected:
        raise HTTPException(status_code=403, detail="Admin access is not configured")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(
            status_code=401,
            detail="Admin credentials required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="Admin role required")
    return {"role": "admin"}


def _breaker_body(name: str, stats: Any) -> dict[str, Any]:
    return {"name": name, **stats.model_dump(mode="json")}


def _handler_body(name: str, stats: Any) -> dict[str, Any]:
    return {"name": name, **stats.model_dump()}


def create_resilience_router(
    *,
    prefix: str = "/resilience",
    require_admin: Callable[..., Any] | None = None,
    require_admin_for_reads: bool = False,
) -> APIRouter:
    """The router: reads open (health, metrics, breakers, handlers) unless
    ``require_admin_for_reads``; admin: every POST, client stats and ``/config``.
    ``require_admin``: a FastAPI dependency replacing :func:`require_admin_role`."""
    admin = [Depends(require_admin or require_admin_role)]
    reads = admin if require_admin_for_reads else []
    r = APIRouter(prefix=prefix, tags=["resilience"])
    Manager = Depends(get_resilience_manager_dependency)

    @r.get("/health", response_model=ResilienceHealthResponse, dependencies=reads)
    async def health(manager: ResilienceManager = Manager) -> dict[str, Any]:
        return {"status": "healthy", **await manager.get_health_status()}

    @r.get("/metrics", response_model=ResilienceMetricsResponse, dependencies=reads)
    async def metrics(manager: ResilienceManager = Manager) -> dict[str, Any]:
        return await manager.get_metrics()

    def breakers(manager: ResilienceManager) -> Any:
        if manager.circuit_breaker_manager is None:
            raise HTTPException(status_code=404, detail="Circuit breakers are disabled")
        return manager.circuit_breaker_manager

    def breaker(manager: ResilienceManager, name: str) -> Any:
        found = breakers(manager).breakers.get(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"Circuit breaker {name!r} not found")
        return found

    @r.get(
        "/circuit-breakers",
        response_model=list[CircuitBreakerStatsResponse],
        dependencies=reads,
    )
    async def list_breakers(manager: ResilienceManager = Manager) -> list[dict[str, Any]]:
        stats = await breakers(manager).get_all_stats()
        return [_breaker_body(name, s) for name, s in stats.items()]

    @r.get(
        "/circuit-breakers/{name}",
        response_model=CircuitBreakerStatsResponse,
        dependencies=reads,
    )
    async def get_breaker(name: str, manager: ResilienceManager = Manager) -> dict[str, Any]:
        return _breaker_body(name, await breaker(manager, name).get_stats())

    @r.post("/circuit-breakers/reset-all", dependencies=admin)
    async def reset_breakers(manager: ResilienceManager = Manager) -> dict[str, Any]:
        names = list(breakers(manager).breakers)
        await manager.reset_all_circuit_breakers()
        return {"message": "All circuit breakers reset", "reset": names}

    @r.post("/circuit-breakers/{name}/reset", dependencies=admin)
    async def reset_breaker(name: str, manager: ResilienceManager = Manager) -> dict[str, Any]:
        await breaker(manager, name).reset()
        return {"message": f"Circuit breaker {name!r} reset", "name": name}

    def handlers(manager: ResilienceManager) -> Any:
        if manager.backpressure_manager is None:
            raise HTTPException(status_code=404, detail="Backpressure is disabled")
        return manager.backpressure_manager

    @r.get("/backpressure", response_model=list[BackpressureStatsResponse], dependencies=reads)
    async def list_handlers(manager: ResilienceManager = Manager) -> list[dict[str, Any]]:
        stats = await handlers(manager).get_all_stats()
        return [_handler_body(name, s) for name, s in stats.items()]

    @r.get("/backpressure/{name}", response_model=BackpressureStatsResponse, dependencies=reads)
    async def get_handler(name: str, manager: ResilienceManager = Manager) -> dict[str, Any]:
        found = handlers(manager).get_handler(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"Backpressure handler {name!r} not found")
        return _handler_body(name, await found.get_stats())

    def limiter(manager: ResilienceManager) -> Any:
        if manager.rate_limiter is None:
            raise HTTPException(status_code=404, detail="Rate limiting is disabled")
        return manager.rate_limiter

    @r.get("/rate-limits/{client_id}", response_model=RateLimitStatsResponse, dependencies=admin)
    async def client_stats(client_id: str, manager: ResilienceManager = Manager) -> dict[str, Any]:
        return {"client_id": client_id, "stats": await limiter(manager).get_client_stats(client_id)}

    @r.post("/rate-limits/{client_id}/reset", dependencies=admin)
    async def reset_client(
        client_id: str, path: str | None = None, manager: ResilienceManager = Manager
    ) -> dict[str, Any]:
        done = await limiter(manager).reset_client_limits(client_id, path)
        return {
            "message": f"Rate limits reset for {client_id!r}",
            "client_id": client_id,
            "path": path,
            "reset": done,
        }

    @r.get("/config", dependencies=admin)
    async def config(manager: ResilienceManager = Manager) -> dict[str, Any]:
        return {"environment": manager.environment, "config": public_config(manager.config)}

    return r


router = create_resilience_router()
