"""Seed 003's resilience_config (3.5): the service's rules, breakers and handlers; the profiles
as pure functions (B8, B9; defects 12 and 16), with properties; ``from_env``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall.compat.voicehive._backpressure_config import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive.circuit_breaker import CircuitBreakerConfig
from seawall.compat.voicehive.rate_limiter import RateLimitConfig, RateLimiter
from seawall.compat.voicehive.resilience_config import (
    DEFAULT_CONFIG,
    DEVELOPMENT_CONFIG,
    PRODUCTION_CONFIG,
    ResilienceConfig,
    apply_environment,
    create_default_resilience_config,
    create_development_resilience_config,
    create_production_resilience_config,
    get_resilience_config,
)

WINDOWS = ("requests_per_minute", "requests_per_hour", "requests_per_day")


def windows(rule: dict[str, Any]) -> tuple[int, ...]:
    return tuple(rule["config"][w] for w in WINDOWS)


def test_the_example_table_exactly_and_path_rules_before_catch_alls() -> None:
    rules = DEFAULT_CONFIG.rate_limiting_rules
    by = {(r["path_pattern"], r.get("client_type")): r for r in rules}
    assert (
        windows(by[("/auth/login", None)]) == (5, 20, 100)
        and by[("/auth/login", None)]["method"] == "POST"
    )
    assert windows(by[("/api/.*", None)]) == (100, 1000, 10000)
    assert windows(by[("/call/.*", None)]) == (500, 5000, 50000)
    assert windows(by[(".*", "anonymous")]) == (20, 200, 1000)
    kinds = [r.get("client_type") for r in rules]
    assert kinds[-2:] == ["anonymous", "authenticated"] and kinds[:-2] == [None] * (len(rules) - 2)
    assert not any(r["config"].get("bypass_internal") is False for r in rules)
    assert set(DEFAULT_CONFIG.circuit_breaker_configs) == {
        "tts_service",
        "pms_connector",
        "livekit_service",
        "vault_service",
        "external_api",
    }
    assert set(DEFAULT_CONFIG.backpressure_configs) == {
        "tts_synthesis",
        "audio_streaming",
        "pms_operations",
        "webhook_processing",
        "gdpr_operations",
    }
    limiter = RateLimiter()
    for rule in rules:
        limiter.add_rule(rule)  # every rule is one seawall can enforce


def test_profiles_on_the_default_config() -> None:
    prod, dev = PRODUCTION_CONFIG, DEVELOPMENT_CONFIG
    assert windows(prod.rate_limiting_rules[0]) == (4, 16, 80)
    assert windows(dev.rate_limiting_rules[0]) == (7, 30, 150)
    tts, prod_tts = (
        DEFAULT_CONFIG.circuit_breaker_configs["tts_service"],
        prod.circuit_breaker_configs["tts_service"],
    )
    assert (prod_tts.failure_threshold, prod_tts.recovery_timeout) == (
        tts.failure_threshold - 1,
        tts.recovery_timeout + 30,
    )
    dev_tts = dev.circuit_breaker_configs["tts_service"]
    assert (dev_tts.failure_threshold, dev_tts.recovery_timeout) == (tts.failure_threshold + 2, 10)
    audio = prod.backpressure_configs["audio_streaming"]
    assert (audio.max_queue_size, audio.max_memory_mb, audio.timeout_seconds) == (1400, 140, 15.0)
    assert dev.backpressure_configs == DEFAULT_CONFIG.backpressure_configs
    assert prod.default_rate_limit_config == RateLimitConfig(48, 800, 8000)
    assert (
        create_production_resilience_config() == prod
        and create_development_resilience_config() == dev
    )


def test_environment_names_and_fresh_copies() -> None:
    assert get_resilience_config("PROD") == PRODUCTION_CONFIG == get_resilience_config()
    assert get_resilience_config("Local") == DEVELOPMENT_CONFIG == get_resilience_config("dev")
    assert get_resilience_config("staging") == DEFAULT_CONFIG == create_default_resilience_config()
    a, b = get_resilience_config("production"), get_resilience_config("production")
    a.rate_limiting_rules[0]["config"]["requests_per_minute"] = 999
    a.circuit_breaker_configs["tts_service"].failure_threshold = 99
    assert b == PRODUCTION_CONFIG and a != b


def test_a_rule_dict_leaving_windows_out_uses_the_defaults() -> None:
    config = ResilienceConfig(
        rate_limiting_rules=[{"path_pattern": "/x", "config": {"requests_per_minute": 1}}]
    )
    scaled = apply_environment(config, "production").rate_limiting_rules[0]["config"]
    assert scaled == {"requests_per_minute": 1, "requests_per_hour": 800, "requests_per_day": 8000}
    assert config.rate_limiting_rules[0]["config"] == {"requests_per_minute": 1}  # pure


def test_small_values_never_become_unlimited_or_zero() -> None:
    config = ResilienceConfig(
        rate_limiting_rules=[{"path_pattern": "/x", "config": RateLimitConfig(1, 0, 1)}],
        circuit_breaker_configs={
            "b": CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5)
        },
        backpressure_configs={
            "h": BackpressureConfig(max_queue_size=1, max_memory_mb=1, timeout_seconds=55)
        },
    )
    prod = apply_environment(config, "production")
    rule = prod.rate_limiting_rules[0]["config"]
    assert (rule.requests_per_minute, rule.requests_per_hour, rule.requests_per_day) == (1, 0, 1)
    breaker = prod.circuit_breaker_configs["b"]
    assert (breaker.failure_threshold, breaker.recovery_timeout) == (1, 35)  # defect 16: not 3
    handler = prod.backpressure_configs["h"]
    assert (handler.max_queue_size, handler.max_memory_mb, handler.timeout_seconds) == (1, 1, 60.0)
    # Development never lengthens a short recovery timeout (defect 16).
    assert apply_environment(config, "dev").circuit_breaker_configs["b"].recovery_timeout == 5


counts = st.integers(0, 10**7)
thresholds = st.integers(1, 1000)
timeouts = st.floats(0.0, 10**5, allow_nan=False)


@st.composite
def configs(draw: st.DrawFn) -> ResilienceConfig:
    rules = [
        {
            "path_pattern": f"/p{i}",
            "config": RateLimitConfig(draw(counts), draw(counts), draw(counts)),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    breakers = {
        f"b{i}": CircuitBreakerConfig(
            failure_threshold=draw(thresholds), recovery_timeout=draw(timeouts)
        )
        for i in range(draw(st.integers(0, 3)))
    }
    handlers = {
        f"h{i}": BackpressureConfig(
            max_queue_size=draw(st.integers(1, 10**6)),
            max_memory_mb=draw(st.integers(1, 10**5)),
            strategy=draw(st.sampled_from(BackpressureStrategy)),
            timeout_seconds=draw(timeouts),
        )
        for i in range(draw(st.integers(0, 3)))
    }
    return ResilienceConfig(
        rate_limiting_rules=rules, circuit_breaker_configs=breakers, backpressure_configs=handlers
    )


@settings(max_examples=150, deadline=None)
@given(config=configs(), environment=st.sampled_from(["production", "development", "staging"]))
def test_profile_properties(config: ResilienceConfig, environment: str) -> None:
    before = copy.deepcopy(config)
    out = apply_environment(config, environment)
    assert config == before  # pure
    for old, new in zip(config.rate_limiting_rules, out.rate_limiting_rules, strict=True):
        for w in WINDOWS:
            x, y = getattr(old["config"], w), getattr(new["config"], w)
            assert (y == 0) == (x == 0)  # never a 0 that means unlimited; off stays off
            if environment == "production":
                assert 1 <= y <= x or x == 0
            if environment == "development":
                assert y >= x
    for name, b in out.circuit_breaker_configs.items():
        old_b = config.circuit_breaker_configs[name]
        assert b.failure_threshold >= 1
        if environment == "production":
            assert b.failure_threshold <= old_b.failure_threshold
            assert b.recovery_timeout >= old_b.recovery_timeout and b.recovery_timeout <= max(
                120, old_b.recovery_timeout
            )
        if environment == "development":
            assert b.recovery_timeout <= old_b.recovery_timeout
            assert b.recovery_timeout >= min(old_b.recovery_timeout, 10)
    for name, h in out.backpressure_configs.items():
        assert h.max_queue_size >= 1 and h.max_memory_mb >= 1
        assert h.max_queue_size <= config.backpressure_configs[name].max_queue_size
    # Idempotent where it should be: the default profile, and re-applying it.
    assert apply_environment(config, "staging") == config
    assert apply_environment(apply_environment(config, "staging"), "staging") == config


def test_from_env() -> None:
    env = {
        "REDIS_URL": "memory://",
        "RATE_LIMITING_ENABLED": "false",
        "INTERNAL_SERVICE_TOKENS": "tts=abc, pms=def",
        "RESILIENCE_ADMIN_TOKEN": "adm",
        "TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1",
    }
    c = ResilienceConfig.from_env(env)
    assert c.redis_url is None and c.rate_limiting_enabled is False and c.backpressure_enabled
    assert c.internal_service_tokens == {"tts": "abc", "pms": "def"} and c.admin_token == "adm"
    assert c.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert ResilienceConfig.from_env({}).redis_url == "redis://localhost:6379"
    with pytest.raises(ValueError, match="RATE_LIMITING_ENABLED"):
        ResilienceConfig.from_env({"RATE_LIMITING_ENABLED": "maybe"})
    with pytest.raises(ValueError, match="INTERNAL_SERVICE_TOKENS"):
        ResilienceConfig.from_env({"INTERNAL_SERVICE_TOKENS": "tts"})
