"""The added cost of a circuit breaker: seawall vs pybreaker, circuitbreaker, aiobreaker, purgatory.

Prints markdown tables (pasteable into the README) of the cost of calling a no-op function
through each breaker's decorator, sync (``def f(): pass``) and async (``async def f(): pass``,
awaited), next to the unguarded call; the cost each breaker adds; how many times seawall's that
is; and two checks from issue 5's bar. Libraries that are not installed are left out.

Every breaker stays closed (every call succeeds): this measures the cost of guarding a call, not
of rejecting one. seawall is built with its defaults (consecutive failures only, no rate window,
no slow-call timing, no timeout, no listener). pybreaker guards ``async def`` only through
Tornado; its decorator on an ``async def`` returns the coroutine without awaiting it (and counts
that as a success), so its async row is the cost of that wrapper plus the await, not of a guard.

Timing: ``time.perf_counter_ns`` around N iterations of a plain ``for`` loop (``for ...: await
f()`` for the async rows, all inside one ``asyncio.run`` per row), best of 5 repeats, cyclic GC
disabled while timing. N is calibrated per row so that a repeat takes about ``--target-ms``.
Timings are never tests: this script always exits 0.

Run from the repository root::

    .venv/bin/python benches/compare_breakers.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from timing import (
    AsyncTimer,
    abest_of,
    best_of,
    ns,
    plan_units,
    print_header,
    t_call0,
    table,
)

import seawall

AsyncFn = Callable[[], Coroutine[Any, Any, object]]
OTHERS = ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory")


@dataclass(frozen=True)
class Settings:
    target_ns: int
    repeats: int


# --------------------------------------------------------------------------------------------
# Measurement core


def t_await0(fn: AsyncFn) -> AsyncTimer:
    async def timer(n: int) -> int:
        f = fn
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await f()
        return time.perf_counter_ns() - t0

    return timer


def measure_sync(fn: Callable[[], object], s: Settings) -> float:
    timer = t_call0(fn)
    n0 = 2_000
    timer(n0)  # warm-up
    n = plan_units(timer(n0), n0, s.target_ns)
    return best_of(timer, n, s.repeats) / n


async def _measure_async(fn: AsyncFn, s: Settings) -> float:
    timer = t_await0(fn)
    n0 = 2_000
    await timer(n0)
    n = plan_units(await timer(n0), n0, s.target_ns)
    return await abest_of(timer, n, s.repeats) / n


def measure_async(fn: AsyncFn, s: Settings) -> float:
    return asyncio.run(_measure_async(fn, s))


def noop() -> None:
    pass


async def anoop() -> None:
    pass


# --------------------------------------------------------------------------------------------
# Subjects: each returns (sync guarded no-op, async guarded no-op, a check that all succeeded)


@dataclass(frozen=True)
class Subject:
    name: str
    version: str
    sync: Callable[[], object] | None
    sync_label: str
    async_: AsyncFn | None
    async_label: str
    note: str = ""


class NotAllAdmitted(Exception):
    pass


def seawall_subject() -> tuple[Subject, Callable[[], None]]:
    sync_breaker = seawall.CircuitBreaker("bench-sync", replace=True)
    async_breaker = seawall.CircuitBreaker("bench-async", replace=True)

    def verify() -> None:
        for b in (sync_breaker, async_breaker):
            stats = b.stats()
            if stats["state"] != "closed" or stats["failures"] or stats["rejections"]:
                raise NotAllAdmitted(f"seawall {b.name}: {stats}")

    subject = Subject(
        "seawall",
        seawall.__version__,
        sync_breaker(noop),
        "`@breaker` def",
        async_breaker(anoop),
        "`@breaker` async def",
    )
    return subject, verify


def other_subject(name: str) -> Subject | None:
    try:
        module: Any = importlib.import_module(name)
    except ImportError:
        return None
    version = importlib.metadata.version(name)
    if name == "pybreaker":
        cb = module.CircuitBreaker(fail_max=5, reset_timeout=30)
        return Subject(
            name,
            version,
            cb(noop),
            "`@breaker` def",
            cb(anoop),
            "`@breaker` async def",
            "async: returns the coroutine unawaited (not guarded)",
        )
    if name == "circuitbreaker":
        return Subject(
            name,
            version,
            module.CircuitBreaker(name="bench-sync")(noop),
            "`@circuit` def",
            module.CircuitBreaker(name="bench-async")(anoop),
            "`@circuit` async def",
        )
    if name == "aiobreaker":
        return Subject(
            name,
            version,
            module.CircuitBreaker(fail_max=5)(noop),
            "`@breaker` def",
            module.CircuitBreaker(fail_max=5)(anoop),
            "`@breaker` async def",
        )
    if name == "purgatory":
        sync_factory = module.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
        async_factory = module.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
        return Subject(
            name,
            version,
            sync_factory("bench-sync")(noop),
            '`@factory("name")` def',
            async_factory("bench-async")(anoop),
            '`@factory("name")` async def',
        )
    raise AssertionError(name)


# --------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True)
class Row:
    label: str
    ns: float
    added: float | None  # ns over the unguarded call; None for the unguarded row
    note: str = ""


def rows_table(rows: list[Row], seawall_added: float) -> str:
    out: list[list[str]] = []
    for r in rows:
        if r.added is None:
            out.append([r.label, ns(r.ns), "", "", r.note])
            continue
        times = "1.0x" if r.label.startswith("seawall") else f"{r.added / seawall_added:.1f}x"
        out.append([r.label, ns(r.ns), ns(r.added), times, r.note])
    return table(
        ["call", "ns/call", "added ns", "added vs seawall's", "note"],
        out,
        {1, 2, 3},
    )


def check_line(num: int, what: str, value: str, ok: bool) -> str:
    return f"check {num}: {what}: {value} {'PASS' if ok else 'FAIL'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short repeats")
    parser.add_argument("--target-ms", type=float, default=None, help="time per repeat")
    args = parser.parse_args()
    target_ms = args.target_ms if args.target_ms is not None else (20.0 if args.quick else 200.0)
    s = Settings(target_ns=int(target_ms * 1e6), repeats=5)

    started = time.perf_counter()
    sw, verify_seawall = seawall_subject()
    others = [o for o in (other_subject(name) for name in OTHERS) if o is not None]
    missing = [name for name in OTHERS if name not in {o.name for o in others}]
    subjects = [sw, *others]

    print_header(
        "# Circuit breakers: the added cost of guarding a no-op call",
        {subject.name: subject.version for subject in subjects},
    )
    print(
        f"- method: perf_counter_ns around a plain `for` loop, best of {s.repeats} repeats of "
        f"~{target_ms:g} ms, GC off while timing; async rows loop `await f()` inside one "
        "asyncio.run"
    )
    print("- every breaker stays closed; seawall with its defaults (no rate window, no timeout)")
    if missing:
        print(f"- not installed, left out: {', '.join(missing)}")
    print(flush=True)

    base_sync = measure_sync(noop, s)
    base_async = measure_async(anoop, s)

    sync_rows = [Row("unguarded `f()`", base_sync, None)]
    async_rows = [Row("unguarded `await f()`", base_async, None)]
    for subject in subjects:
        if subject.sync is not None:
            t = measure_sync(subject.sync, s)
            label = f"{subject.name} {subject.sync_label}"
            sync_rows.append(Row(label, t, t - base_sync))
        if subject.async_ is not None:
            t = measure_async(subject.async_, s)
            label = f"{subject.name} {subject.async_label}"
            async_rows.append(Row(label, t, t - base_async, subject.note))
    verify_seawall()

    sw_sync = sync_rows[1].added
    sw_async = async_rows[1].added
    assert sw_sync is not None and sw_async is not None

    print("## Sync: `f()` through the decorator")
    print()
    print(rows_table(sync_rows, sw_sync))
    print()
    print("## Async: `await f()` through the decorator")
    print()
    print(rows_table(async_rows, sw_async))
    print()

    print("## Checks (informational; timings are never tests)")
    print()
    print(
        check_line(
            1,
            "seawall adds <= 1 µs to a no-op async call",
            f"{sw_async:,.0f} ns",
            sw_async <= 1000,
        )
    )
    pyb = {r.label.split()[0]: r for r in async_rows[1:]}.get("pybreaker")
    pyb_sync = {r.label.split()[0]: r for r in sync_rows[1:]}.get("pybreaker")
    if pyb is not None and pyb_sync is not None and pyb.added and pyb_sync.added:
        print(
            check_line(
                2,
                "seawall's added cost < 1/5 of pybreaker's (async; pybreaker's wrapper)",
                f"{sw_async / pyb.added:.2f} of it ({pyb.added / sw_async:.1f}x less)",
                sw_async * 5 < pyb.added,
            )
        )
        print(
            check_line(
                3,
                "seawall's added cost < 1/5 of pybreaker's (sync)",
                f"{sw_sync / pyb_sync.added:.2f} of it ({pyb_sync.added / sw_sync:.1f}x less)",
                sw_sync * 5 < pyb_sync.added,
            )
        )
    else:
        print("check 2: seawall's added cost < 1/5 of pybreaker's: SKIPPED (pybreaker missing)")
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
