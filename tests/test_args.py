"""Bad arguments to the native constructors: each error names the parameter that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from seawall import RedisLimiter


@pytest.mark.parametrize("value", [0, -1])
def test_redis_limiter_max_local_keys_error_names_it(value: int) -> None:
    # No connection is made: the arguments are checked first.
    with pytest.raises(ValueError, match=r"^max_local_keys must be at least 1, got "):
        RedisLimiter("5/minute", store="redis://127.0.0.1:1/0", max_local_keys=value)


@pytest.mark.parametrize("value", [0, -3])
def test_redis_limiter_breaker_failures_error_names_it(value: int) -> None:
    with pytest.raises(ValueError, match=rf"^breaker_failures must be at least 1, got {value}$"):
        RedisLimiter("5/minute", store="redis://127.0.0.1:1/0", breaker_failures=value)


@pytest.mark.parametrize(
    ("param", "value", "least"),
    [
        ("connect_timeout", 0.0, "0.001"),
        ("command_timeout", float("nan"), "0.001"),
        ("breaker_recovery", -1.0, "0.001"),
        ("log_interval", -0.5, "0"),
    ],
)
def test_redis_limiter_seconds_errors_name_them(param: str, value: float, least: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^{param} must be a finite number of seconds, at least {least}, got "
    ):
        kwargs: dict[str, Any] = {param: value}
        RedisLimiter("5/minute", store="redis://127.0.0.1:1/0", **kwargs)
