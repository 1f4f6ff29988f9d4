"""Every public constructor and method of the limiter core, swept with bad arguments (issue 11 #26).

Whatever the value (None, a wrong type, an int beyond 64 bits, a negative, NaN or infinity, a str
with a lone surrogate), a call either succeeds (the value was valid there) or raises ``ValueError``
or ``TypeError`` whose message itself (not only a traceback note) names the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import ClientRateLimiter, Limit, Limiter, TokenBucket, TokenBucketConfig
from seawall._seawall import SlidingLogService
from seawall.testing import ManualClock, use_clock

CONFIG = TokenBucketConfig(10, 1.0, 10)

# (description, parameter, call taking the value): every public entry point of the core.
Call = Callable[[Any], object]
TARGETS: list[tuple[str, str, Call]] = [
    ("TokenBucketConfig", "capacity", lambda v: TokenBucketConfig(v, 1.0, 1)),
    ("TokenBucketConfig", "refill_rate", lambda v: TokenBucketConfig(10, v, 1)),
    ("TokenBucketConfig", "initial_tokens", lambda v: TokenBucketConfig(10, 1.0, v)),
    ("TokenBucket", "config", lambda v: TokenBucket(v)),
    ("TokenBucket", "client_id", lambda v: TokenBucket(CONFIG, v)),
    ("TokenBucket", "clock", lambda v: TokenBucket(CONFIG, clock=v).try_consume()),
    ("TokenBucket.try_consume", "tokens", lambda v: TokenBucket(CONFIG).try_consume(v)),
    ("TokenBucket.config", "config", lambda v: setattr(TokenBucket(CONFIG), "config", v)),
    ("ClientRateLimiter", "default_config", lambda v: ClientRateLimiter(v)),
    ("ClientRateLimiter", "cleanup_interval", lambda v: ClientRateLimiter(CONFIG, v)),
    ("ClientRateLimiter", "max_clients", lambda v: ClientRateLimiter(CONFIG, max_clients=v)),
    ("ClientRateLimiter", "clock", lambda v: ClientRateLimiter(CONFIG, clock=v).try_consume("a")),
    (
        "ClientRateLimiter.try_consume",
        "client_id",
        lambda v: ClientRateLimiter(CONFIG).try_consume(v),
    ),
    (
        "ClientRateLimiter.try_consume",
        "tokens",
        lambda v: ClientRateLimiter(CONFIG).try_consume("a", v),
    ),
    (
        "ClientRateLimiter.check_limit_sync",
        "client_id",
        lambda v: ClientRateLimiter(CONFIG).check_limit_sync(v),
    ),
    (
        "ClientRateLimiter.check_limit_sync",
        "tokens",
        lambda v: ClientRateLimiter(CONFIG).check_limit_sync("a", v),
    ),
    ("ClientRateLimiter.peek_sync", "client_id", lambda v: ClientRateLimiter(CONFIG).peek_sync(v)),
    (
        "ClientRateLimiter.set_client_config_sync",
        "client_id",
        lambda v: ClientRateLimiter(CONFIG).set_client_config_sync(v, CONFIG),
    ),
    (
        "ClientRateLimiter.set_client_config_sync",
        "config",
        lambda v: ClientRateLimiter(CONFIG).set_client_config_sync("a", v),
    ),
    (
        "ClientRateLimiter.get_client_stats_sync",
        "client_id",
        lambda v: ClientRateLimiter(CONFIG).get_client_stats_sync(v),
    ),
    (
        "ClientRateLimiter.reset_client_sync",
        "client_id",
        lambda v: ClientRateLimiter(CONFIG).reset_client_sync(v),
    ),
    ("Limit", "limit", lambda v: Limit(v)),
    ("Limit", "algorithm", lambda v: Limit("1/second", v)),
    ("Limit", "burst", lambda v: Limit("1/second", "gcra", v)),
    ("Limiter", "limits", lambda v: Limiter(v)),
    ("Limiter", "algorithm", lambda v: Limiter("1/second", algorithm=v)),
    ("Limiter", "max_keys", lambda v: Limiter("1/second", max_keys=v)),
    ("Limiter", "clock", lambda v: Limiter("1/second", clock=v).hit("k")),
    ("Limiter.hit", "key", lambda v: Limiter("5/second").hit(v)),
    ("Limiter.hit", "cost", lambda v: Limiter("5/second").hit("k", v)),
    ("Limiter.allow", "key", lambda v: Limiter("5/second").allow(v)),
    ("Limiter.allow", "cost", lambda v: Limiter("5/second").allow("k", v)),
    ("Limiter.test", "key", lambda v: Limiter("5/second").test(v)),
    ("Limiter.test", "cost", lambda v: Limiter("5/second").test("k", v)),
    ("Limiter.reset", "key", lambda v: Limiter("5/second").reset(v)),
    ("Limiter.key_stats", "key", lambda v: Limiter("5/second").key_stats(v)),
    ("Limiter.set_override", "key", lambda v: Limiter("5/second").set_override(v, "1/second")),
    ("Limiter.set_override", "limits", lambda v: Limiter("5/second").set_override("k", v)),
    (
        "Limiter.set_override",
        "algorithm",
        lambda v: Limiter("5/second").set_override("k", "1/second", algorithm=v),
    ),
    ("Limiter.clear_override", "key", lambda v: Limiter("5/second").clear_override(v)),
    ("SlidingLogService", "max_keys", lambda v: SlidingLogService(max_keys=v)),
    (
        "SlidingLogService",
        "clock",
        lambda v: SlidingLogService(clock=v).check_and_record("a", 1, 1.0),
    ),
    (
        "SlidingLogService.check_and_record",
        "client_id",
        lambda v: SlidingLogService().check_and_record(v, 1, 1.0),
    ),
    (
        "SlidingLogService.check_and_record",
        "limit",
        lambda v: SlidingLogService().check_and_record("a", v, 1.0),
    ),
    (
        "SlidingLogService.check_and_record",
        "window",
        lambda v: SlidingLogService().check_and_record("a", 1, v),
    ),
    ("SlidingLogService.reset", "client_id", lambda v: SlidingLogService().reset(v)),
    ("ManualClock", "start", lambda v: ManualClock(start=v)),
    ("ManualClock.advance", "seconds", lambda v: ManualClock().advance(v)),
    ("ManualClock.set", "seconds", lambda v: ManualClock().set(v)),
    ("use_clock", "clock", lambda v: use_clock(v).__enter__()),  # never a ManualClock here
]

# Parameters where None means "the default".
OPTIONAL = {
    "clock",
    "cleanup_interval",
    "burst",
    "start",
    "client_id@TokenBucket",
    "algorithm@Limiter.set_override",
}


def check(name: str, param: str, call: Call, value: Any) -> bool:
    """Calls; a failure must be a ValueError or TypeError naming `param`. Returns whether it
    raised."""
    try:
        call(value)
    except (ValueError, TypeError) as e:
        # A bad limit string is quoted as "limit '...'", whichever argument held it.
        names = (param, "limit") if param == "limits" else (param,)
        assert any(n in str(e) for n in names), (
            f"{name}({param}={value!r}): {type(e).__name__}: {e}"
        )
        return True
    except BaseException as e:
        pytest.fail(f"{name}({param}={value!r}) raised {type(e).__name__}: {e}")
    return False


def optional(name: str, param: str) -> bool:
    return param in OPTIONAL or f"{param}@{name}" in OPTIONAL


# Values that are bad for every parameter they are given to (None only where it is no default).
ALWAYS_BAD: list[Any] = [
    "\ud800",
    "10/sec\udfffond",
    2**64,
    2**100,
    -(2**100),
    math.nan,
    math.inf,
    -math.inf,
    [object()],
    b"bytes",
]


@pytest.mark.parametrize(
    ("name", "param", "call"), TARGETS, ids=[f"{n}-{p}" for n, p, _ in TARGETS]
)
@pytest.mark.parametrize("value", [None, *ALWAYS_BAD], ids=repr)
def test_bad_values_are_refused_naming_the_parameter(
    name: str, param: str, call: Call, value: Any
) -> None:
    raised = check(name, param, call, value)
    if value is None and optional(name, param):
        return
    if param in {"limits", "limit"} and isinstance(value, list):
        # A list of limits is a valid shape; its item is what is refused.
        assert raised
        return
    assert raised, f"{name}({param}={value!r}) was accepted"


# Arbitrary values: anything a caller might pass.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, categories=["Cs", "L", "N", "P"]), max_size=12),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.just(timedelta(seconds=-1)),
    st.just(object()),
)


@settings(max_examples=1500, deadline=None)
@given(target=st.sampled_from(TARGETS), value=anything)
def test_any_value_is_accepted_or_refused_naming_the_parameter(
    target: tuple[str, str, Call], value: Any
) -> None:
    name, param, call = target
    check(name, param, call, value)
