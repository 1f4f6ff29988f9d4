"""``Limiter.hit_with``: a key in one limiter and one in another decided as one, all or nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import Limiter
from seawall.testing import ManualClock


def _hit_with(a: Limiter, key: str, b: Limiter, other_key: str, cost: int = 1) -> Any:
    # Not in the stubs yet: the .pyi is another branch's.
    return a.hit_with(key, b, other_key, cost)  # type: ignore[attr-defined]


def test_counted_by_both_or_by_neither() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    tool = Limiter("2/minute", algorithm="fixed_window", clock=clock)
    server = Limiter("3/minute", algorithm="fixed_window", clock=clock)
    assert _hit_with(tool, "alice", server, "*").allowed
    assert _hit_with(tool, "alice", server, "*").allowed
    refused = _hit_with(tool, "alice", server, "*")
    assert not refused.allowed
    assert refused.limit == 2, "alice's own limit refused"
    assert server.test("*").remaining == 1, "the server-wide limit did not count it"
    assert _hit_with(tool, "bob", server, "*").allowed
    refused = _hit_with(tool, "bob", server, "*")
    assert not refused.allowed
    assert refused.limit == 3, "the server-wide limit refused"
    assert tool.test("bob").remaining == 1, "bob's limit did not count it"
    clock.advance(60)
    assert _hit_with(tool, "bob", server, "*").allowed


def test_bad_arguments_name_the_parameter() -> None:
    a = Limiter("2/minute")
    with pytest.raises(TypeError, match=r"^other must be a Limiter, got str$"):
        _hit_with(a, "k", "nope", "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^other_key must be a str, got int$"):
        _hit_with(a, "k", a, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^other_key must differ from key"):
        _hit_with(a, "k", a, "k")
    with pytest.raises(ValueError, match=r"^cost must be at least 1, got 0$"):
        _hit_with(a, "k", Limiter("5/minute"), "k", 0)


@settings(max_examples=50, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=20),
    second=st.integers(min_value=1, max_value=20),
    calls=st.integers(min_value=0, max_value=50),
)
def test_admits_exactly_what_the_tighter_limit_allows(first: int, second: int, calls: int) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    a = Limiter(f"{first}/minute", algorithm="fixed_window", clock=clock)
    b = Limiter(f"{second}/minute", algorithm="fixed_window", clock=clock)
    admitted = sum(_hit_with(a, "k", b, "*").allowed for _ in range(calls))
    assert admitted == min(calls, first, second)
    assert a.test("k").remaining == first - admitted
    assert b.test("*").remaining == second - admitted


def test_threads_in_opposite_orders_neither_deadlock_nor_overcount() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    a = Limiter("1000/minute", algorithm="fixed_window", clock=clock)
    b = Limiter("300/minute", algorithm="fixed_window", clock=clock)
    admitted: list[int] = []

    def run(forward: bool) -> None:
        n = 0
        for _ in range(200):
            d = _hit_with(a, "k", b, "k") if forward else _hit_with(b, "k", a, "k")
            n += d.allowed
        admitted.append(n)

    threads = [threading.Thread(target=run, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 300
    assert a.test("k").remaining == 700
