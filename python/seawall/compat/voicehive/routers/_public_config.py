"""``GET /resilience/config``'s body: the manager's config as JSON with its secrets redacted
(defect 17: the service returned ``redis_url`` with its password). Redacted: the Redis URL's
password, ``admin_token`` and every ``internal_service_tokens`` value."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from seawall.compat.voicehive.resilience_config import ResilienceConfig

__all__ = ["REDACTED", "public_config", "redact_url"]

REDACTED = "***"


def redact_url(url: str | None) -> str | None:
    """``url`` with its password (if any) replaced by ``***``."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:{REDACTED}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _plain(value: Any) -> Any:
    """JSON-ready: enums as values, dataclasses and mappings as dicts, exception classes and
    functions by name."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, type):
        return value.__qualname__
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if callable(value):
        return getattr(value, "__qualname__", type(value).__qualname__)
    return value


def public_config(config: ResilienceConfig) -> dict[str, Any]:
    out: dict[str, Any] = _plain(config)
    out["redis_url"] = redact_url(config.redis_url)
    out["admin_token"] = None if config.admin_token is None else REDACTED
    out["internal_service_tokens"] = dict.fromkeys(config.internal_service_tokens, REDACTED)
    return out
