"""Who is being limited, for the opt-in ``<mount>/top-keys`` endpoint of
:func:`seawall.prometheus.metrics_app` (``top_keys=True``) and ``python -m seawall top``.

:func:`report` reads ``top_limited_summary()`` of every live limiter of this process (memory,
Redis and host limiters, the middleware's): one native call each, at request time. It holds client
keys (IPs, users, hashed tokens), so it is never part of the Prometheus output, and an app that
serves it must put it behind authentication.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from seawall import _seawall
from seawall._metrics_model import unique_names
from seawall._metrics_registry import live

__all__ = ["PATH", "report", "with_top_keys"]

#: The path, under the metrics app's mount, that answers with :func:`report`.
PATH = "/top-keys"

_SOURCES = (_seawall.Limiter, _seawall.RedisLimiter, _seawall.HostLimiter, _seawall.HttpLimiter)


def _name(limiter: Any) -> str:
    if isinstance(limiter, _seawall.HttpLimiter):
        return "http"
    return "; ".join(str(limit) for limit in limiter.limits)


def _store(limiter: Any) -> str:
    url = getattr(limiter, "store", "memory://")
    scheme = url.partition("://")[0]
    return scheme if scheme in ("memory", "host") else "redis"


def report() -> dict[str, Any]:
    """``{"limiters": [...]}``: per live limiter counting refused keys (``top_keys`` above 0),
    its label (its limits, or ``http`` for the middleware's; ``#2``... on repeats), class, store
    and ``top_limited_summary()``: ``capacity``, ``total``, ``other`` and ``keys`` (``key``,
    ``count``, ``error``, most refused first)."""
    limiters = []
    objs = [o for o in live() if isinstance(o, _SOURCES)]
    for label, limiter in unique_names(objs, _name):
        summary = limiter.top_limited_summary()
        if summary["capacity"] == 0:
            continue
        kind = next(c.__name__ for c in _SOURCES if isinstance(limiter, c))
        limiters.append({"limiter": label, "kind": kind, "store": _store(limiter), **summary})
    return {"limiters": limiters}


def with_top_keys(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app``, also answering ``GET <mount>/top-keys`` with :func:`report` as JSON."""

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") != "http" or not path.rstrip("/").endswith(PATH):
            await app(scope, receive, send)
            return
        body = json.dumps(report(), separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return serve
