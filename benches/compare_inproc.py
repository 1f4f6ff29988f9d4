"""seawall vs a seed-000-style pure-Python limiter vs ``limits``, side by side in one process.

Prints markdown tables (pasteable into the README) of the cost of one rate-limit decision, the
speedups of seawall's paths, three acceptance checks, and the memory held per tracked key.

Every limiter is configured so that every call is admitted (seawall and seed-style: capacity
1e9 tokens refilled at 1e9/s; ``limits``: ``1000000000/second``): this measures the cost of a
decision, not of a denial.

Timing: ``time.perf_counter_ns`` around N iterations of a plain ``for`` loop (``for ...: await
x.consume()`` for the async paths, all inside one ``asyncio.run`` per row), best of 5 repeats,
cyclic GC disabled while timing (``timeit``'s convention; it favours the Python implementations).
N is calibrated per row so a repeat takes about ``--target-ms``. Timings are never tests: this
script always exits 0.

``--metrics``: only seawall's rows, each timed without and with a ``SeawallCollector`` scraped
every second by a background thread (``benches/metrics_overhead.py``), and the ratio (issue 17's
bar: within 5%).

Run from the repository root::

    .venv/bin/python benches/compare_inproc.py [--quick] [--metrics]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import limits
import seed000
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from metrics_overhead import BAR, Paired, describe, metrics_table, paired
from timing import (
    AsyncTimer,
    SyncTimer,
    abest_of,
    best_of,
    noop1,
    ns,
    plan_units,
    print_header,
    stop_timer,
    t_call0,
    t_call1,
    t_call2,
    t_empty,
    t_keys1,
    t_keys2,
    table,
)

import seawall

HOT_KEY = "client-0"
N_KEYS = 100_000
BIG_CAPACITY = 1_000_000_000
BIG_RATE = 1e9
LIMITS_ITEM = "1000000000/second"
# For memory only: a window that cannot expire while the keys are being inserted.
LIMITS_MEMORY_ITEM = "1000000000/day"


@dataclass(frozen=True)
class Settings:
    target_ns: int
    repeats: int
    memory_keys_seawall: int
    memory_keys_python: int


@dataclass(frozen=True)
class Measured:
    ns: float  # best ns per decision
    decisions: int  # decisions per timed repeat


# --------------------------------------------------------------------------------------------
# Measurement core


def measure_sync(timer: SyncTimer, unit_size: int, s: Settings) -> Measured:
    """``timer(n)`` runs ``n`` units of ``unit_size`` decisions and returns the elapsed ns."""
    n0 = 1 if unit_size > 1 else 2_000
    timer(n0)  # warm-up; for the keyed rows a full pass, so every key exists before timing
    n = plan_units(timer(n0), n0, s.target_ns)
    best = best_of(timer, n, s.repeats)
    return Measured(best / (n * unit_size), n * unit_size)


async def _measure_async(timer: AsyncTimer, unit_size: int, s: Settings) -> Measured:
    n0 = 1 if unit_size > 1 else 2_000
    await timer(n0)
    n = plan_units(await timer(n0), n0, s.target_ns)
    best = await abest_of(timer, n, s.repeats)
    return Measured(best / (n * unit_size), n * unit_size)


def measure_async(timer: AsyncTimer, unit_size: int, s: Settings) -> Measured:
    return asyncio.run(_measure_async(timer, unit_size, s))


# Loop bodies. Each binds what it calls to locals before starting the clock.


def t_await0(fn: Callable[[], Coroutine[Any, Any, object]]) -> AsyncTimer:
    async def timer(n: int) -> int:
        f = fn
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await f()
        return time.perf_counter_ns() - t0

    return timer


def t_await1(fn: Callable[[str], Coroutine[Any, Any, object]], key: str) -> AsyncTimer:
    async def timer(n: int) -> int:
        f, k = fn, key
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await f(k)
        return time.perf_counter_ns() - t0

    return timer


def t_await_keys(fn: Callable[[str], Coroutine[Any, Any, object]], keys: list[str]) -> AsyncTimer:
    async def timer(rounds: int) -> int:
        f, ks = fn, keys
        t0 = time.perf_counter_ns()
        for _ in range(rounds):
            for k in ks:
                await f(k)
        return time.perf_counter_ns() - t0

    return timer


def noop() -> None:
    pass


async def anoop() -> None:
    pass


# --------------------------------------------------------------------------------------------
# Subjects


def sw_config() -> seawall.TokenBucketConfig:
    return seawall.TokenBucketConfig(BIG_CAPACITY, BIG_RATE, BIG_CAPACITY)


def seed_config() -> seed000.TokenBucketConfig:
    return seed000.TokenBucketConfig(BIG_CAPACITY, BIG_RATE, BIG_CAPACITY)


class Denied(Exception):
    pass


def check_admitted(name: str, rejected: int) -> None:
    if rejected:
        raise Denied(f"{name}: {rejected} calls were denied; the benchmark must admit all")


def measure_limits(cls: type[RateLimiter], keys: list[str] | None, s: Settings) -> Measured:
    storage = MemoryStorage()
    limiter = cls(storage)
    item = limits.parse(LIMITS_ITEM)
    try:
        if keys is None:
            m = measure_sync(t_call2(limiter.hit, item, HOT_KEY), 1, s)
        else:
            m = measure_sync(t_keys2(limiter.hit, item, keys), len(keys), s)
        check_admitted(cls.__name__, 0 if limiter.hit(item, HOT_KEY) else 1)
    finally:
        stop_timer(storage)
    return m


# --------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    m: Measured
    seed_ref: str | None = None  # key of the seed-style row this seawall row compares to


def run_floor(s: Settings, keys: list[str]) -> list[Row]:
    rows = [
        Row("empty", "empty `for` loop (per iteration)", measure_sync(t_empty(), 1, s)),
        Row("noop0", "no-op Python call `f()`", measure_sync(t_call0(noop), 1, s)),
        Row("noop1", "no-op Python call `f(key)`", measure_sync(t_call1(noop1, HOT_KEY), 1, s)),
        Row("anoop", "`await` a no-op coroutine", measure_async(t_await0(anoop), 1, s)),
        Row(
            "noopk",
            f"no-op `f(key)` over {len(keys):,} keys",
            measure_sync(t_keys1(noop1, keys), len(keys), s),
        ),
    ]
    return rows


def run_hot(s: Settings) -> list[Row]:
    rows: list[Row] = []

    bucket = seawall.TokenBucket(sw_config(), HOT_KEY)
    m = measure_sync(t_call0(bucket.try_consume), 1, s)
    rows.append(Row("sw_tb_sync", "seawall `TokenBucket.try_consume()`", m, "seed_tb"))
    m = measure_async(t_await0(bucket.consume), 1, s)
    rows.append(Row("sw_tb_await", "seawall `await TokenBucket.consume()`", m, "seed_tb"))
    check_admitted("seawall TokenBucket", bucket.get_stats()["rejected_requests"])

    limiter = seawall.ClientRateLimiter(sw_config())
    m = measure_sync(t_call1(limiter.try_consume, HOT_KEY), 1, s)
    rows.append(Row("sw_cl_sync", "seawall `ClientRateLimiter.try_consume(key)`", m, "seed_cl"))
    m = measure_async(t_await1(limiter.consume, HOT_KEY), 1, s)
    rows.append(Row("sw_cl_await", "seawall `await ClientRateLimiter.consume(key)`", m, "seed_cl"))
    check_admitted("seawall ClientRateLimiter", limiter.get_all_stats_sync()["total_rejected"])

    seed_bucket = seed000.TokenBucket(seed_config(), HOT_KEY)
    m = measure_async(t_await0(seed_bucket.consume), 1, s)
    rows.append(Row("seed_tb", "seed-style `await TokenBucket.consume()`", m))
    check_admitted("seed-style TokenBucket", seed_bucket.get_stats()["rejected_requests"])

    seed_limiter = seed000.ClientRateLimiter(seed_config())
    m = measure_async(t_await1(seed_limiter.consume, HOT_KEY), 1, s)
    rows.append(Row("seed_cl", "seed-style `await ClientRateLimiter.consume(key)`", m))
    stats = asyncio.run(seed_limiter.get_all_stats())
    check_admitted("seed-style ClientRateLimiter", stats["total_rejected"])

    m = measure_limits(FixedWindowRateLimiter, None, s)
    rows.append(Row("lim_fixed", "limits `FixedWindowRateLimiter.hit(item, key)`", m))
    m = measure_limits(MovingWindowRateLimiter, None, s)
    rows.append(Row("lim_moving", "limits `MovingWindowRateLimiter.hit(item, key)`", m))
    return rows


def run_keys(s: Settings, keys: list[str]) -> list[Row]:
    rows: list[Row] = []
    nk = len(keys)

    limiter = seawall.ClientRateLimiter(sw_config(), max_clients=max(1_000_000, nk))
    m = measure_sync(t_keys1(limiter.try_consume, keys), nk, s)
    rows.append(Row("sw_cl_sync", "seawall `ClientRateLimiter.try_consume(key)`", m, "seed_cl"))
    m = measure_async(t_await_keys(limiter.consume, keys), nk, s)
    rows.append(Row("sw_cl_await", "seawall `await ClientRateLimiter.consume(key)`", m, "seed_cl"))
    stats = limiter.get_all_stats_sync()
    check_admitted("seawall ClientRateLimiter (keys)", stats["total_rejected"])
    if len(limiter) != nk or stats.get("evicted_clients", 0):
        raise Denied(f"seawall limiter holds {len(limiter)} of {nk} keys")
    del limiter, stats

    seed_limiter = seed000.ClientRateLimiter(seed_config())
    m = measure_async(t_await_keys(seed_limiter.consume, keys), nk, s)
    rows.append(Row("seed_cl", "seed-style `await ClientRateLimiter.consume(key)`", m))
    seed_stats = asyncio.run(seed_limiter.get_all_stats())
    check_admitted("seed-style ClientRateLimiter (keys)", seed_stats["total_rejected"])
    del seed_limiter, seed_stats

    m = measure_limits(FixedWindowRateLimiter, keys, s)
    rows.append(Row("lim_fixed", "limits `FixedWindowRateLimiter.hit(item, key)`", m))
    m = measure_limits(MovingWindowRateLimiter, keys, s)
    rows.append(Row("lim_moving", "limits `MovingWindowRateLimiter.hit(item, key)`", m))
    gc.collect()
    return rows


# --------------------------------------------------------------------------------------------
# Metrics mode


def run_metrics(rounds: int, run_ms: float, keys: list[str]) -> list[tuple[str, Paired]]:
    """seawall's hot rows (and the keyed sync row), without and with a scraped collector."""
    target_ns = int(run_ms * 1e6)

    def sync(timer: SyncTimer, unit_size: int) -> Callable[[], float]:
        n0 = 1 if unit_size > 1 else 2_000
        timer(n0)
        n = plan_units(timer(n0), n0, target_ns)
        return lambda: timer(n) / (n * unit_size)

    def in_loop(timer: AsyncTimer) -> Callable[[], float]:
        asyncio.run(timer(2_000))
        n = plan_units(asyncio.run(timer(2_000)), 2_000, target_ns)
        return lambda: asyncio.run(timer(n)) / n

    bucket = seawall.TokenBucket(sw_config(), HOT_KEY)
    client = seawall.ClientRateLimiter(sw_config(), max_clients=max(1_000_000, len(keys)))
    limiter = seawall.Limiter(LIMITS_ITEM)
    subjects = [
        ("seawall `TokenBucket.try_consume()`", sync(t_call0(bucket.try_consume), 1)),
        ("seawall `await TokenBucket.consume()`", in_loop(t_await0(bucket.consume))),
        (
            "seawall `ClientRateLimiter.try_consume(key)`",
            sync(t_call1(client.try_consume, HOT_KEY), 1),
        ),
        (
            "seawall `await ClientRateLimiter.consume(key)`",
            in_loop(t_await1(client.consume, HOT_KEY)),
        ),
        ("seawall `Limiter.hit(key)`", sync(t_call1(limiter.hit, HOT_KEY), 1)),
        (
            f"seawall `ClientRateLimiter.try_consume(key)`, {len(keys):,} keys",
            sync(t_keys1(client.try_consume, keys), len(keys)),
        ),
    ]
    rows = [(label, paired(measure, rounds)) for label, measure in subjects]
    check_admitted("seawall TokenBucket", bucket.get_stats()["rejected_requests"])
    check_admitted("seawall ClientRateLimiter", client.get_all_stats_sync()["total_rejected"])
    check_admitted("seawall Limiter", limiter.stats()["limited"])
    return rows


def main_metrics(rounds: int, run_ms: float) -> int:
    print_header(
        "# seawall's in-process rows without and with metrics (issue 17's bar)",
        {"seawall": seawall.__version__},
    )
    print(describe(rounds, run_ms))
    print(flush=True)
    keys = [f"client-{i}" for i in range(N_KEYS)]
    rows = run_metrics(rounds, run_ms, keys)
    print(metrics_table(rows, "ns/decision"))
    worst = max(p.ratio() for _, p in rows)
    print()
    verdict = "PASS" if worst <= BAR else "FAIL"
    print(f"check: the worst row with metrics is {worst:.3f}x without (need <= {BAR}) {verdict}")
    return 0


# --------------------------------------------------------------------------------------------
# Memory


def rss_bytes() -> tuple[int, str]:
    """Current resident set size (Linux ``/proc/self/statm``), else peak RSS from ``resource``."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE"), "RSS"
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024
        return peak * scale, "peak RSS"


@dataclass(frozen=True)
class MemRow:
    label: str
    keys: int
    bytes_per_key: float
    method: str


def memory_seawall(n: int) -> list[MemRow]:
    keys = [f"client-{i}" for i in range(n)]  # built before, excluded: the caller owns them
    limiter = seawall.ClientRateLimiter(sw_config(), max_clients=n)
    gc.collect()
    before, kind = rss_bytes()
    consume = limiter.try_consume
    for k in keys:
        consume(k)
    after, _ = rss_bytes()
    held = len(limiter)
    if held != n:
        raise Denied(f"seawall limiter holds {held} of {n} keys")
    label = "seawall `ClientRateLimiter`"
    return [
        MemRow(label, n, limiter.memory_bytes() / held, "`memory_bytes() / len` (exact heap)"),
        MemRow(label, n, (after - before) / held, f"process {kind} delta / len"),
    ]


def _traced(fill: Callable[[], None], settle: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fill()
        settle()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def memory_seed(n: int) -> MemRow:
    keys = [f"client-{i}" for i in range(n)]
    limiter = seed000.ClientRateLimiter(seed_config())
    loop = asyncio.new_event_loop()

    async def fill_async() -> None:
        consume = limiter.consume
        for k in keys:
            await consume(k)

    def fill() -> None:
        loop.run_until_complete(fill_async())

    try:
        delta = _traced(fill, lambda: None)
    finally:
        loop.close()
    return MemRow("seed-style `ClientRateLimiter`", len(limiter), delta / n, "tracemalloc delta")


def memory_limits(cls: type[RateLimiter], n: int) -> MemRow:
    keys = [f"client-{i}" for i in range(n)]
    storage = MemoryStorage()
    limiter = cls(storage)
    item = limits.parse(LIMITS_MEMORY_ITEM)

    def fill() -> None:
        hit = limiter.hit
        for k in keys:
            hit(item, k)

    try:
        delta = _traced(fill, lambda: stop_timer(storage))
    finally:
        stop_timer(storage)
    label = f"limits `{cls.__name__}` + `MemoryStorage`"
    return MemRow(label, n, delta / n, "tracemalloc delta")


def run_memory(s: Settings) -> list[MemRow]:
    rows = memory_seawall(s.memory_keys_seawall)
    if s.memory_keys_seawall != s.memory_keys_python:
        rows.append(memory_seawall(s.memory_keys_python)[0])
    rows.append(memory_seed(s.memory_keys_python))
    rows.append(memory_limits(FixedWindowRateLimiter, s.memory_keys_python))
    rows.append(memory_limits(MovingWindowRateLimiter, s.memory_keys_python))
    gc.collect()
    return rows


# --------------------------------------------------------------------------------------------
# Output


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x"


def timing_table(rows: list[Row]) -> str:
    by = {r.key: r for r in rows}
    limits_rows = [r for r in rows if r.key.startswith("lim_")]
    fastest = min(limits_rows, key=lambda r: r.m.ns)
    fastest_name = fastest.label.split("`")[1].split(".")[0]
    header = [
        "benchmark",
        "ns/decision",
        "decisions/repeat",
        "seawall speedup vs seed-style",
        f"seawall speedup vs limits fastest ({fastest_name})",
    ]
    out: list[list[str]] = []
    for r in rows:
        vs_seed = vs_lim = ""
        if r.seed_ref is not None:
            ref = by[r.seed_ref]
            vs_seed = f"{ratio(ref.m.ns, r.m.ns)} (vs {ref.label.split('`')[1]})"
            vs_lim = ratio(fastest.m.ns, r.m.ns)
        out.append([r.label, ns(r.m.ns), f"{r.m.decisions:,}", vs_seed, vs_lim])
    return table(header, out, {1, 2})


def floor_table(rows: list[Row]) -> str:
    return table(
        ["floor", "ns/iteration", "iterations/repeat"],
        [[r.label, ns(r.m.ns), f"{r.m.decisions:,}"] for r in rows],
        {1, 2},
    )


def memory_table(rows: list[MemRow]) -> str:
    return table(
        ["implementation", "keys", "bytes/key", "measured by"],
        [[r.label, f"{r.keys:,}", f"{r.bytes_per_key:,.0f}", r.method] for r in rows],
        {1, 2},
    )


def check_line(num: int, what: str, speedup: float, need: float) -> str:
    verdict = "PASS" if speedup >= need else "FAIL"
    return f"check {num}: {what}: {speedup:.1f}x (need >= {need:g}x) {verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run; memory at 100k keys")
    parser.add_argument("--target-ms", type=float, default=None, help="time per repeat")
    parser.add_argument(
        "--metrics", action="store_true", help="only seawall's rows, without and with metrics"
    )
    parser.add_argument("--metrics-rounds", type=int, default=None, help="rounds (default 4)")
    parser.add_argument("--metrics-ms", type=float, default=None, help="ms per metrics run")
    args = parser.parse_args()
    if args.metrics:
        rounds = args.metrics_rounds or (2 if args.quick else 4)
        run_ms = args.metrics_ms or (1500.0 if args.quick else 3000.0)
        return main_metrics(max(1, min(rounds, 20)), max(100.0, min(run_ms, 60_000.0)))
    target_ms = args.target_ms if args.target_ms is not None else (20.0 if args.quick else 250.0)
    s = Settings(
        target_ns=int(target_ms * 1e6),
        repeats=3 if args.quick else 5,
        memory_keys_seawall=N_KEYS if args.quick else 1_000_000,
        memory_keys_python=N_KEYS,
    )

    started = time.perf_counter()
    print_header(
        "# seawall vs seed-000-style vs limits: in-process cost of one decision",
        {"seawall": seawall.__version__, "limits": limits.__version__},
    )
    print(
        f"- method: perf_counter_ns around a plain `for` loop, best of {s.repeats} repeats of "
        f"~{target_ms:g} ms, GC off while timing; async rows loop `await x.consume()` "
        "inside one asyncio.run"
    )
    print(
        "- every call is admitted (seawall / seed-style: capacity 1e9, refill 1e9/s; limits: "
        f"`{LIMITS_ITEM}`): the cost of a decision, not of a denial"
    )
    print(
        "- seed-style = benches/seed000.py: seed 000's TokenBucket / ClientRateLimiter as written, "
        "including its per-call logger.debug f-strings (logging at Python's default level)"
    )
    print(flush=True)

    # Memory first, in a fresh process, so freed memory from the timing runs cannot be reused
    # by the inserts and hide part of the RSS growth.
    mem_rows = run_memory(s)

    keys = [f"client-{i}" for i in range(N_KEYS)]
    floor_rows = run_floor(s, keys)
    print("## Floor")
    print()
    print(floor_table(floor_rows))
    print(flush=True)

    hot = run_hot(s)
    print("## Hot key (one bucket / one client id, always the same)")
    print()
    print(timing_table(hot))
    print(flush=True)

    many = run_keys(s, keys)
    print(f"## {N_KEYS:,} keys round-robin (all keys warmed before timing)")
    print()
    print(timing_table(many))
    print()
    print(
        "limits' MemoryStorage expires keys and events from a background thread (every ~10 ms "
        "while hits arrive, scanning every key); it shares the GIL and its cost is included. "
        "Its moving window keeps one entry per admitted hit in the last second, so its cost "
        "grows with the hit rate."
    )
    print(flush=True)

    print("## Memory per tracked key")
    print()
    print(memory_table(mem_rows))
    print()
    print(
        f"Python implementations are measured at {s.memory_keys_python:,} keys with tracemalloc "
        "(1,000,000 through them under tracemalloc is too slow). Key strings are built "
        "beforehand and not counted (the caller owns them; seawall stores its own copy, which "
        "is counted, while seed-style only references the caller's). limits' own composite "
        f"keys are counted; its memory runs use `{LIMITS_MEMORY_ITEM}` so nothing expires "
        "mid-measurement. seawall's memory runs use `max_clients == keys`: the store is exactly "
        "full, the case its layout is sized for."
    )
    print()

    h = {r.key: r.m.ns for r in hot}
    k = {r.key: r.m.ns for r in many}
    lim_hot = min(h["lim_fixed"], h["lim_moving"])
    print("## Acceptance checks (informational; timings are never tests)")
    print()
    print(
        check_line(
            1,
            "hot key, seawall sync `ClientRateLimiter.try_consume(key)` vs limits fastest "
            f"`hit(item, key)` (keyed like limits; keyless `TokenBucket.try_consume()`: "
            f"{lim_hot / h['sw_tb_sync']:.1f}x)",
            lim_hot / h["sw_cl_sync"],
            25,
        )
    )
    print(
        check_line(
            2,
            "hot key, seawall `await TokenBucket.consume()` vs seed-style",
            h["seed_tb"] / h["sw_tb_await"],
            8,
        )
    )
    print(
        check_line(
            3,
            f"{N_KEYS:,} keys, seawall `await ClientRateLimiter.consume(key)` vs seed-style",
            k["seed_cl"] / k["sw_cl_await"],
            12,
        )
    )
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
