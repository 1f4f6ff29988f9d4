"""The native adaptive limits against their plain Python models (tests/concurrency_model.py), on
the manual clock; and both algorithms converging on a dependency whose latency rises with load."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import AIMDLimit, ConcurrencyLimiter, GradientLimit, Permit
from seawall.testing import ManualClock
from tests.concurrency_model import AimdModel, GradientModel, LimiterModel

US = 1_000  # nanoseconds

aimd_settings = st.builds(
    dict,
    initial=st.integers(1, 40),
    min_limit=st.integers(1, 5),
    max_limit=st.integers(40, 80),
    backoff_ratio=st.sampled_from([0.5, 0.75, 0.9, 0.99]),
    increase_by=st.integers(1, 3),
    timeout_us=st.integers(1, 200_000),
).filter(lambda s: s["min_limit"] <= s["initial"])

gradient_settings = st.builds(
    dict,
    initial=st.integers(1, 40),
    min_limit=st.integers(1, 5),
    max_limit=st.integers(40, 80),
    smoothing=st.sampled_from([0.1, 0.2, 0.5, 1.0]),
    rtt_tolerance=st.sampled_from([1.0, 1.5, 2.0]),
    long_window=st.integers(1, 50),
    queue_size=st.integers(1, 6),
).filter(lambda s: s["min_limit"] <= s["initial"])

# An operation: take a permit (of a partition), return the i-th held one with an outcome (and an
# explicit RTT or the one the clock measures), or move the clock.
operation = st.one_of(
    st.tuples(st.just("acquire"), st.sampled_from([None, "critical", "batch"])),
    st.tuples(
        st.just("release"),
        st.integers(0, 60),
        st.sampled_from(["success", "success", "success", "dropped", "ignore"]),
        st.one_of(st.none(), st.integers(1, 300_000)),
    ),
    st.tuples(st.just("advance"), st.integers(0, 100_000)),
)


def run_against_model(
    limiter: ConcurrencyLimiter, model: LimiterModel, clock: ManualClock, ops: list[tuple]
) -> None:
    now = 0
    held: list[tuple[Permit, int]] = []
    for op in ops:
        if op[0] == "acquire":
            permit = limiter.try_acquire(op[1])
            expected = model.try_acquire(op[1], now)
            assert (permit is None) == (expected is None), op
            if permit is not None and expected is not None:
                held.append((permit, expected))
        elif op[0] == "release" and held:
            permit, model_id = held.pop(op[1] % len(held))
            rtt_us = op[3]
            rtt = None if rtt_us is None else rtt_us * US
            if op[2] == "success":
                permit.success(None if rtt_us is None else rtt_us / 1e6)
            elif op[2] == "dropped":
                permit.dropped()
                rtt = None
            else:
                permit.ignore()
            model.release(model_id, op[2], rtt, now)
        elif op[0] == "advance":
            clock.advance(op[1] / 1e6)
            now += op[1] * US
        assert limiter.limit == model.limit, op
        assert limiter.in_flight == len(model.held) <= max(model.limit, len(model.held))
    for permit, _ in held:
        permit.ignore()
    assert limiter.in_flight == 0


@settings(max_examples=150, deadline=None)
@given(aimd_settings, st.booleans(), st.lists(operation, max_size=120))
def test_aimd_matches_its_model(s: dict, partitioned: bool, ops: list[tuple]) -> None:
    clock = ManualClock()
    shares = {"critical": 0.6, "batch": 0.2} if partitioned else {}
    limit = AIMDLimit(
        s["initial"],
        min_limit=s["min_limit"],
        max_limit=s["max_limit"],
        backoff_ratio=s["backoff_ratio"],
        increase_by=s["increase_by"],
        timeout=s["timeout_us"] / 1e6,
    )
    limiter = ConcurrencyLimiter(limit, partitions=shares or None, clock=clock)
    model = AimdModel(
        estimate=float(s["initial"]),
        min_limit=s["min_limit"],
        max_limit=s["max_limit"],
        backoff_ratio=s["backoff_ratio"],
        increase_by=s["increase_by"],
        timeout=s["timeout_us"] * US,
    )
    if not partitioned:
        ops = [(op[0], None) if op[0] == "acquire" else op for op in ops]
    run_against_model(limiter, LimiterModel(model, shares), clock, ops)


@settings(max_examples=150, deadline=None)
@given(gradient_settings, st.booleans(), st.lists(operation, max_size=120))
def test_gradient_matches_its_model(s: dict, partitioned: bool, ops: list[tuple]) -> None:
    clock = ManualClock()
    shares = {"critical": 0.6, "batch": 0.2} if partitioned else {}
    limiter = ConcurrencyLimiter(GradientLimit(**s), partitions=shares or None, clock=clock)
    model = GradientModel(
        estimate=float(s["initial"]),
        min_limit=s["min_limit"],
        max_limit=s["max_limit"],
        smoothing=s["smoothing"],
        rtt_tolerance=s["rtt_tolerance"],
        long_window=s["long_window"],
        queue_size=s["queue_size"],
    )
    if not partitioned:
        ops = [(op[0], None) if op[0] == "acquire" else op for op in ops]
    run_against_model(limiter, LimiterModel(model, shares), clock, ops)


def simulate(
    limiter: ConcurrencyLimiter,
    clock: ManualClock,
    *,
    capacity: int,
    clients: int,
    calls: int,
    base: float = 0.010,
) -> list[int]:
    """``clients`` callers, each calling again as soon as its call ends (or 1 ms after being
    refused), against a dependency whose latency is ``base * max(1, running / capacity)``, on
    the manual clock: no sleeping. Returns the limit after each finished call."""
    now = 0.0
    events: list[tuple[float, int, int]] = []  # (time, client, kind: 0 try, 1 finish)
    permits: dict[int, Permit] = {}
    for c in range(clients):
        heapq.heappush(events, (0.0, c, 0))
    limits: list[int] = []
    while len(limits) < calls:
        at, client, kind = heapq.heappop(events)
        clock.advance(at - now)
        now = at
        if kind == 1:
            permits.pop(client).success()
            limits.append(limiter.limit)
            heapq.heappush(events, (now, client, 0))
            continue
        permit = limiter.try_acquire()
        if permit is None:
            heapq.heappush(events, (now + 0.001, client, 0))
            continue
        permits[client] = permit
        latency = base * max(1.0, len(permits) / capacity)
        heapq.heappush(events, (now + latency, client, 1))
    return limits


def test_gradient_converges_near_the_capacity_and_stays() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(GradientLimit(), clock=clock)
    limits = simulate(limiter, clock, capacity=10, clients=60, calls=30_000)
    settled = limits[3_000:]
    # rtt_tolerance 1.5 lets calls run up to 1.5 times slower than the baseline: about 15 in
    # flight; it holds there (no swings), and 45 long windows later it has not ratcheted up.
    assert min(settled) >= 13 and max(settled) <= 18
    assert 14 <= sum(limits[-3_000:]) / 3_000 <= 17
    assert limiter.stats()["long_rtt"] < 0.0105  # the baseline is still the unloaded latency


def test_aimd_converges_near_the_capacity() -> None:
    clock = ManualClock()
    # Calls slower than 1.3 times the unloaded latency count as lost.
    limiter = ConcurrencyLimiter(AIMDLimit(timeout=0.013), clock=clock)
    limits = simulate(limiter, clock, capacity=10, clients=60, calls=20_000)
    settled = limits[3_000:]
    # It backs off where calls pass the timeout (13 in flight) and climbs back by one per trip.
    assert min(settled) >= 10 and max(settled) <= 16
    assert 12 <= sum(settled) / len(settled) <= 15


def test_min_limit_holds_when_every_call_is_lost() -> None:
    clock = ManualClock()
    for limit in (AIMDLimit(8, min_limit=3), GradientLimit(8, min_limit=3)):
        limiter = ConcurrencyLimiter(limit, clock=clock)
        for _ in range(200):
            permit = limiter.try_acquire()
            assert permit is not None
            clock.advance(1.0)
            permit.dropped()
        assert limiter.limit == 3
