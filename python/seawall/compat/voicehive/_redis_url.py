"""Where the service's ``redis_client`` points, as a store URL seawall can speak to (B13).

seawall talks to Redis natively, so a ``redis.asyncio.Redis`` object can only tell it where Redis
is: its connection pool's keyword arguments rebuild the URL (host, port, db, credentials, TLS, or
a Unix socket). ``None`` and ``"memory://"`` mean this process's memory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = ["store_url"]


def store_url(redis_client: Any, what: str = "redis_client") -> str | None:
    """``None`` for the memory store, else a ``redis://`` / ``rediss://`` / ``unix://`` URL."""
    if redis_client is None:
        return None
    if isinstance(redis_client, str):
        if redis_client == "memory://":
            return None
        if not redis_client:
            raise ValueError(f"{what} must not be an empty string")
        return redis_client
    pool = getattr(redis_client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        raise TypeError(
            f"{what} must be None, a Redis URL or a redis.asyncio.Redis, "
            f"got {type(redis_client).__name__}"
        )
    db = int(kwargs.get("db") or 0)
    auth = ""
    username, password = kwargs.get("username"), kwargs.get("password")
    if password is not None:
        auth = f"{quote(str(username or ''), safe='')}:{quote(str(password), safe='')}@"
    elif username:
        auth = f"{quote(str(username), safe='')}@"
    path = kwargs.get("path")
    if path:
        return f"unix://{auth}{path}?db={db}"
    cls = getattr(pool, "connection_class", None)
    scheme = "rediss" if cls is not None and "SSL" in cls.__name__ else "redis"
    host = kwargs.get("host") or "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = int(kwargs.get("port") or 6379)
    return f"{scheme}://{auth}{host}:{port}/{db}"
