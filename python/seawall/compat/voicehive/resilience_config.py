"""Drop-in for the VoiceHive service's ``resilience_config`` module (seed 003, section 3.5).

The service's config and its three environments, with the profiles as one pure function,
:func:`apply_environment` (B8, B9): production scales rates by 0.8 and backpressure bounds by 0.7
(rounded down, never to 0, which meant "unlimited": defect 12), takes one failure off each
breaker's threshold (at least 1) and holds breakers open 30 s longer (at most 120 s, never
shorter); development scales rates by 1.5, adds two failures and shortens the open time by 20 s
(never below 10 s, never longer than it was: defect 16). A window of 0 (off) stays 0.

The default config's numbers beyond the seed's example table are seawall's choice for a voice
service; docs/drop-ins/voicehive.md lists them.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seawall.compat.voicehive import _profiles
from seawall.compat.voicehive._backpressure_config import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive._service_rules import service_rules
from seawall.compat.voicehive.circuit_breaker import CircuitBreakerConfig
from seawall.compat.voicehive.rate_limit_middleware import DEFAULT_EXCLUDED_PATHS
from seawall.compat.voicehive.rate_limiter import RateLimitConfig

__all__ = [
    "DEFAULT_CONFIG",
    "DEVELOPMENT_CONFIG",
    "PRODUCTION_CONFIG",
    "ResilienceConfig",
    "apply_environment",
    "create_default_resilience_config",
    "create_development_resilience_config",
    "create_production_resilience_config",
    "get_resilience_config",
]


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _list(environ: Mapping[str, str], name: str) -> list[str] | None:
    value = environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass
class ResilienceConfig:
    """Everything the resilience manager sets up. ``redis_url=None``: memory (B13).
    ``internal_service_tokens`` (service → secret) are what makes a caller internal (B5);
    ``internal_service_headers`` only name the service. ``admin_token`` guards the router's
    admin endpoints (B11). ``redis_max_connections`` is accepted and unused."""

    redis_url: str | None = "redis://localhost:6379"
    redis_max_connections: int = 20
    rate_limiting_enabled: bool = True
    rate_limiting_rules: list[dict[str, Any]] = field(default_factory=list)
    default_rate_limit_config: RateLimitConfig | None = None
    circuit_breakers_enabled: bool = True
    circuit_breaker_configs: dict[str, CircuitBreakerConfig] = field(default_factory=dict)
    backpressure_enabled: bool = True
    backpressure_configs: dict[str, BackpressureConfig] = field(default_factory=dict)
    internal_service_headers: list[str] = field(
        default_factory=lambda: ["X-Internal-Service", "X-Service-Token", "X-Kubernetes-Service"]
    )
    excluded_paths: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDED_PATHS))
    internal_service_tokens: dict[str, str] = field(default_factory=dict)
    admin_token: str | None = None
    trusted_proxies: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ResilienceConfig:
        """The dataclass defaults, overridden by the environment: ``REDIS_URL`` (empty or
        ``memory://``: memory), ``REDIS_MAX_CONNECTIONS``, ``RATE_LIMITING_ENABLED``,
        ``CIRCUIT_BREAKERS_ENABLED``, ``BACKPRESSURE_ENABLED`` (true/false),
        ``INTERNAL_SERVICE_TOKENS`` (``name=token,name=token``), ``RESILIENCE_ADMIN_TOKEN``,
        ``TRUSTED_PROXIES`` and ``RESILIENCE_EXCLUDED_PATHS`` (comma-separated). Rules,
        breakers and handlers are not read from the environment."""
        config = cls()
        url = environ.get("REDIS_URL")
        if url is not None:
            config.redis_url = None if url.strip() in ("", "memory://") else url.strip()
        size = environ.get("REDIS_MAX_CONNECTIONS")
        if size is not None:
            try:
                config.redis_max_connections = int(size)
            except ValueError:
                raise ValueError(f"REDIS_MAX_CONNECTIONS must be an int, got {size!r}") from None
        config.rate_limiting_enabled = _flag(environ, "RATE_LIMITING_ENABLED", True)
        config.circuit_breakers_enabled = _flag(environ, "CIRCUIT_BREAKERS_ENABLED", True)
        config.backpressure_enabled = _flag(environ, "BACKPRESSURE_ENABLED", True)
        for pair in _list(environ, "INTERNAL_SERVICE_TOKENS") or []:
            name, sep, token = pair.partition("=")
            if not sep or not name.strip() or not token.strip():
                raise ValueError(
                    "INTERNAL_SERVICE_TOKENS must be name=token pairs, comma-separated"
                )
            config.internal_service_tokens[name.strip()] = token.strip()
        admin = environ.get("RESILIENCE_ADMIN_TOKEN")
        config.admin_token = admin.strip() or None if admin is not None else None
        config.trusted_proxies = _list(environ, "TRUSTED_PROXIES") or []
        paths = _list(environ, "RESILIENCE_EXCLUDED_PATHS")
        if paths is not None:
            config.excluded_paths = paths
        return config


def _breakers() -> dict[str, CircuitBreakerConfig]:
    def make(name: str, ft: int, rt: float, st: int, timeout: float) -> CircuitBreakerConfig:
        return CircuitBreakerConfig(
            name=name,
            failure_threshold=ft,
            recovery_timeout=rt,
            success_threshold=st,
            timeout=timeout,
        )

    return {
        "tts_service": make("tts_service", 5, 30, 2, 10.0),
        "pms_connector": make("pms_connector", 5, 60, 3, 15.0),
        "livekit_service": make("livekit_service", 3, 30, 2, 10.0),
        "vault_service": make("vault_service", 3, 60, 2, 5.0),
        "external_api": make("external_api", 5, 60, 3, 30.0),
    }


def _handlers() -> dict[str, BackpressureConfig]:
    s = BackpressureStrategy
    return {
        "tts_synthesis": BackpressureConfig(500, 50, s.ADAPTIVE, 10.0, max_concurrency=20),
        "audio_streaming": BackpressureConfig(2000, 200, s.DROP_OLDEST, 5.0, max_concurrency=100),
        "pms_operations": BackpressureConfig(500, 50, s.BLOCK, 30.0, max_concurrency=10),
        "webhook_processing": BackpressureConfig(1000, 100, s.ADAPTIVE, 30.0, max_concurrency=20),
        "gdpr_operations": BackpressureConfig(100, 25, s.BLOCK, 60.0, max_concurrency=2),
    }


def create_default_resilience_config() -> ResilienceConfig:
    """The service's rules, breakers and backpressure handlers, unscaled."""
    return ResilienceConfig(
        rate_limiting_rules=service_rules(),
        default_rate_limit_config=RateLimitConfig(),
        circuit_breaker_configs=_breakers(),
        backpressure_configs=_handlers(),
    )


def apply_environment(config: ResilienceConfig, environment: str) -> ResilienceConfig:
    """A deep copy of ``config`` under ``environment``'s profile (B8, B9); an environment that
    is neither production nor development gives an unchanged copy. ``config`` is not changed."""
    profile = _profiles.profile_of(environment)
    out = copy.deepcopy(config)
    if profile == "default":
        return out
    default = out.default_rate_limit_config
    return dataclasses.replace(
        out,
        rate_limiting_rules=[_profiles.scale_rule(r, profile) for r in out.rate_limiting_rules],
        default_rate_limit_config=None
        if default is None
        else _profiles.scale_config(default, profile),
        circuit_breaker_configs=_profiles.scale_all(
            out.circuit_breaker_configs, _profiles.scale_breaker, profile
        ),
        backpressure_configs=_profiles.scale_all(
            out.backpressure_configs, _profiles.scale_backpressure, profile
        ),
    )


def create_production_resilience_config() -> ResilienceConfig:
    return apply_environment(create_default_resilience_config(), "production")


def create_development_resilience_config() -> ResilienceConfig:
    return apply_environment(create_default_resilience_config(), "development")


def get_resilience_config(environment: str = "production") -> ResilienceConfig:
    """A fresh config for ``environment`` (case-insensitive: ``production``/``prod``,
    ``development``/``dev``/``local``, else the default)."""
    return apply_environment(create_default_resilience_config(), environment)


PRODUCTION_CONFIG: ResilienceConfig = create_production_resilience_config()
DEVELOPMENT_CONFIG: ResilienceConfig = create_development_resilience_config()
DEFAULT_CONFIG: ResilienceConfig = create_default_resilience_config()
