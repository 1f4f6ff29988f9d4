"""The service's rate-limit rules (3.5), shared by ``create_rate_limit_rules()`` and the default
resilience config.

The example table's four rules exactly, plus the service's other endpoints; the seed gives no
numbers for those, so these are seawall's choice for a voice service (docs/drop-ins/voicehive.md):
strict for sign-up and GDPR requests, generous for calls and webhooks. Every path rule comes
before the client-type catch-alls; as in the service, the first match wins, so an anonymous
client on ``/api/...`` gets the API limit (defect 10, kept for fidelity).
"""

from __future__ import annotations

from typing import Any

__all__ = ["service_rules"]


def _rule(
    pattern: str, m: int, h: int, d: int, *, method: str | None = None, **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "requests_per_minute": m,
        "requests_per_hour": h,
        "requests_per_day": d,
    }
    config.update(extra.pop("config", {}))
    return {"path_pattern": pattern, "method": method, **extra, "config": config}


def service_rules() -> list[dict[str, Any]]:
    """A fresh list of fresh dicts (callers may change them)."""
    return [
        _rule(r"/auth/login", 5, 20, 100, method="POST"),
        _rule(r"/auth/register", 3, 10, 20, method="POST"),
        _rule(r"/api/.*", 100, 1000, 10000),
        _rule(r"/call/.*", 500, 5000, 50000, config={"burst_limit": 50}),
        _rule(r"/webhook/.*", 300, 10000, 100000),
        _rule(r"/gdpr/.*", 5, 20, 50),
        _rule(r".*", 20, 200, 1000, client_type="anonymous"),
        _rule(r".*", 200, 5000, 50000, client_type="authenticated"),
    ]
