"""Bad input is a clear ValueError or TypeError that names the parameter; never a crash."""

from __future__ import annotations

import math
from typing import Any

import pytest

from seawall import ClientRateLimiter, Limit, Limiter, TokenBucket, TokenBucketConfig
from seawall.testing import ManualClock, use_clock


@pytest.mark.parametrize("capacity", [0, -1, 10**13])
def test_capacity_out_of_range(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucketConfig(capacity, 1.0, 0)


@pytest.mark.parametrize("rate", [-1.0, math.nan, math.inf, -math.inf, 1e-12, 1e10])
def test_refill_rate_out_of_range(rate: float) -> None:
    with pytest.raises(ValueError, match="refill_rate"):
        TokenBucketConfig(10, rate, 0)


def test_negative_initial_tokens() -> None:
    with pytest.raises(ValueError, match="initial_tokens"):
        TokenBucketConfig(10, 1.0, -1)


@pytest.mark.parametrize(
    ("args", "param"),
    [(("10", 1.0, 0), "capacity"), ((10, "fast", 0), "refill_rate"), ((10, 1.0, 2.5), "initial")],
)
def test_config_wrong_types(args: tuple[Any, ...], param: str) -> None:
    with pytest.raises(TypeError, match=param):
        TokenBucketConfig(*args)


@pytest.mark.parametrize("tokens", [0, -3, 11, 2**40, 2**64, 2**70, -(2**70)])
def test_tokens_out_of_range(tokens: int) -> None:
    bucket = TokenBucket(TokenBucketConfig(10, 1.0, 10))
    limiter = ClientRateLimiter(TokenBucketConfig(10, 1.0, 10))
    with pytest.raises(ValueError, match="tokens"):
        bucket.try_consume(tokens)
    with pytest.raises(ValueError, match="tokens"):
        limiter.try_consume("a", tokens)
    with pytest.raises(ValueError, match="tokens"):
        limiter.check_limit_sync("a", tokens)
    assert bucket.get_stats()["total_requests"] == 0
    assert len(limiter) == 0


def test_tokens_checked_against_the_clients_own_capacity() -> None:
    limiter = ClientRateLimiter(TokenBucketConfig(10, 1.0, 10))
    limiter.set_client_config_sync("big", TokenBucketConfig(100, 1.0, 100))
    assert limiter.try_consume("big", 50)
    with pytest.raises(ValueError, match=r"capacity \(10\)"):
        limiter.try_consume("small", 50)


@pytest.mark.parametrize("client_id", [None, 42, b"bytes", ["list"]])
def test_client_id_must_be_a_str(client_id: Any) -> None:
    limiter = ClientRateLimiter(TokenBucketConfig(10, 1.0, 10))
    for call in (
        limiter.try_consume,
        limiter.check_limit_sync,
        limiter.peek_sync,
        limiter.get_client_stats_sync,
        limiter.reset_client_sync,
    ):
        with pytest.raises(TypeError, match="client_id"):
            call(client_id)
    if client_id is not None:  # None means the default, "unknown"
        with pytest.raises(TypeError, match="client_id"):
            TokenBucket(TokenBucketConfig(10, 1.0, 10), client_id)


def test_wrong_config_objects() -> None:
    with pytest.raises(TypeError, match="config"):
        TokenBucket({"capacity": 10})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="default_config"):
        ClientRateLimiter(None)  # type: ignore[arg-type]
    limiter = ClientRateLimiter(TokenBucketConfig(10, 1.0, 10))
    with pytest.raises(TypeError, match="config"):
        limiter.set_client_config_sync("a", 10)  # type: ignore[arg-type]


def test_limiter_options() -> None:
    config = TokenBucketConfig(10, 1.0, 10)
    with pytest.raises(ValueError, match="max_clients"):
        ClientRateLimiter(config, max_clients=0)
    with pytest.raises(TypeError, match="cleanup_interval"):
        ClientRateLimiter(config, 3600)  # type: ignore[arg-type]
    from datetime import timedelta

    with pytest.raises(ValueError, match="cleanup_interval"):
        ClientRateLimiter(config, timedelta(0))


def test_clocks() -> None:
    with pytest.raises(ValueError, match="seconds"):
        ManualClock().advance(-1)
    with pytest.raises(ValueError, match="seconds"):
        ManualClock().advance(math.nan)
    with pytest.raises(ValueError, match="start"):
        ManualClock(start=-5)
    with pytest.raises(TypeError, match="clock"):
        TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=42)
    with pytest.raises(TypeError, match="clock"), use_clock("not a clock"):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError, match="clock reading"):
        TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=lambda: -1.0)
    readings = iter([10.0, math.inf])
    broken = TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=lambda: next(readings))
    with pytest.raises(ValueError, match="clock reading"):
        broken.try_consume()


@pytest.mark.parametrize("cost", [0, -1, 11, 2**63, 2**70, -(2**70)])
def test_limiter_cost_out_of_range_names_the_parameter(cost: int) -> None:
    """Even ints beyond 64 bits are a ValueError naming ``cost`` (not a bare OverflowError), and
    a refused call leaves no state behind."""
    limiter = Limiter("10/second")
    for call in (limiter.hit, limiter.allow, limiter.test):
        with pytest.raises(ValueError, match=r"^cost "):
            call("k", cost)
    assert len(limiter) == 0


@pytest.mark.parametrize("value", [2**64, 2**100, -(2**100)])
def test_ints_beyond_64_bits_name_the_parameter(value: int) -> None:
    """Issue 11 #26: these were a bare OverflowError (only `cost` was fixed before)."""
    cases: list[tuple[str, Any]] = [
        ("capacity", lambda: TokenBucketConfig(value, 1.0, 1)),
        ("initial_tokens", lambda: TokenBucketConfig(10, 1.0, value)),
        ("burst", lambda: Limit("1/second", "gcra", value)),
        ("max_keys", lambda: Limiter("1/second", max_keys=value)),
        ("max_clients", lambda: ClientRateLimiter(TokenBucketConfig(1, 1.0, 1), max_clients=value)),
    ]
    for param, call in cases:
        with pytest.raises(ValueError, match=rf"^{param} must be an int from"):
            call()


def test_algorithm_none_names_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"^algorithm must be a str, got NoneType"):
        Limiter("1/second", algorithm=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^algorithm must be a str"):
        Limit("1/second", None)  # type: ignore[arg-type]


def test_a_bucket_too_large_quotes_the_limit_or_names_burst() -> None:
    with pytest.raises(ValueError, match=r"^limit '2000000000000/day' makes a bucket"):
        Limiter("2000000000000/day")
    with pytest.raises(ValueError, match=r"^burst must be between 1 and 1000000000000"):
        Limit("1/second", burst=2 * 10**12)
    # A window algorithm takes it.
    assert Limiter("2000000000000/day", algorithm="fixed_window").allow("k")


def test_a_lone_surrogate_is_a_value_error_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^limits must be text"):
        Limiter("10/sec\udc80ond")
    with pytest.raises(ValueError, match=r"^limit must be text"):
        Limit("\ud800/second")
    limiter = Limiter("10/second")
    with pytest.raises(ValueError, match=r"^key must be text"):
        limiter.hit("\ud800")
    clients = ClientRateLimiter(TokenBucketConfig(1, 1.0, 1))
    with pytest.raises(ValueError, match=r"^client_id must be text"):
        clients.try_consume("a\udfffb")
    assert len(limiter) == 0 and len(clients) == 0
