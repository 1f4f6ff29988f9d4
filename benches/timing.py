"""The shared measurement harness for the comparison benchmarks.

Used by the ``benches/compare_*.py`` scripts (each imports it as
``timing``: a script's own directory is on ``sys.path``). It holds what the two measure and print
the same way: the timer closures, the repeat planning and best-of-N loop, ``limits``' storage
shutdown, the environment header and the markdown table formatting. How each script calibrates
``n`` and what it reports per row stay in the script.

A timer is a closure ``timer(n) -> elapsed ns`` around a plain ``for`` loop. Each loop body is
written out for its call shape (``f(k)``, ``f(a, k)``, ...) and binds what it calls to locals
before starting the clock, so the timed loop pays for nothing but the call under test (no
``*args`` unpacking, no attribute or global lookups).
"""

from __future__ import annotations

import gc
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limits.storage import MemoryStorage

SyncTimer = Callable[[int], int]

# --------------------------------------------------------------------------------------------
# Measurement core


def plan_units(elapsed_ns: int, units: int, target_ns: int) -> int:
    """How many units make a repeat of about ``target_ns``, given ``units`` took ``elapsed_ns``."""
    per_unit = max(elapsed_ns / units, 1.0)
    return max(1, round(target_ns / per_unit))


def best_of(
    timer: SyncTimer, n: int, repeats: int, prepare: Callable[[], None] | None = None
) -> int:
    """The lowest ``timer(n)`` of ``repeats`` runs, cyclic GC collected before and disabled during
    each. ``prepare``, if given, runs (untimed) before each."""
    best = sys.maxsize
    for _ in range(repeats):
        if prepare is not None:
            prepare()
        gc.collect()
        gc.disable()
        try:
            best = min(best, timer(n))
        finally:
            gc.enable()
    return best


AsyncTimer = Callable[[int], Coroutine[Any, Any, int]]


async def abest_of(
    timer: AsyncTimer, n: int, repeats: int, prepare: Callable[[], None] | None = None
) -> int:
    """:func:`best_of` for a timer that must be awaited (inside one running event loop)."""
    best = sys.maxsize
    for _ in range(repeats):
        if prepare is not None:
            prepare()
        gc.collect()
        gc.disable()
        try:
            best = min(best, await timer(n))
        finally:
            gc.enable()
    return best


# Loop bodies. Each binds what it calls to locals before starting the clock.


def t_empty() -> SyncTimer:
    def timer(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            pass
        return time.perf_counter_ns() - t0

    return timer


def t_call0(fn: Callable[[], object]) -> SyncTimer:
    def timer(n: int) -> int:
        f = fn
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f()
        return time.perf_counter_ns() - t0

    return timer


def t_call1(fn: Callable[[str], object], key: str) -> SyncTimer:
    def timer(n: int) -> int:
        f, k = fn, key
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(k)
        return time.perf_counter_ns() - t0

    return timer


def t_call2(fn: Callable[[Any, str], object], first: Any, key: str) -> SyncTimer:
    def timer(n: int) -> int:
        f, a, k = fn, first, key
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(a, k)
        return time.perf_counter_ns() - t0

    return timer


def t_keys1(fn: Callable[[str], object], keys: list[str]) -> SyncTimer:
    def timer(rounds: int) -> int:
        f, ks = fn, keys
        t0 = time.perf_counter_ns()
        for _ in range(rounds):
            for k in ks:
                f(k)
        return time.perf_counter_ns() - t0

    return timer


def t_keys2(fn: Callable[[Any, str], object], first: Any, keys: list[str]) -> SyncTimer:
    def timer(rounds: int) -> int:
        f, a, ks = fn, first, keys
        t0 = time.perf_counter_ns()
        for _ in range(rounds):
            for k in ks:
                f(a, k)
        return time.perf_counter_ns() - t0

    return timer


def noop1(key: str) -> None:
    """The floor's no-op ``f(key)``."""


def stop_timer(storage: MemoryStorage) -> None:
    """Let the storage's expiry thread finish so it does not run during the next row."""
    storage.timer.cancel()
    storage.timer.join()


# --------------------------------------------------------------------------------------------
# Output


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_header(title: str, versions: Mapping[str, str]) -> None:
    """Print the markdown title, then the command, machine, Python and package versions."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(title)
    print()
    print(f"- command: `{shlex.join([sys.executable, *sys.argv])}`")
    print(f"- machine: {platform.platform()}, {cpu_model()}")
    cpus = f"{os.cpu_count()} CPUs" + (f" ({affinity} usable)" if affinity is not None else "")
    impl = platform.python_implementation()
    print(f"- python: {impl} {platform.python_version()}, {cpus}")
    print("- " + ", ".join(f"{name} {version}" for name, version in versions.items()))


def table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A markdown table, columns padded to their widest cell; ``right`` columns right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (w - 1) + (":" if i in right else "-") for i, w in enumerate(widths)]
    return "\n".join([fmt(header), "| " + " | ".join(sep) + " |", *[fmt(r) for r in rows]])


def ns(x: float) -> str:
    """Nanoseconds: one decimal below 100, whole numbers with separators above."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"
