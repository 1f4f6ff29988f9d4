"""seawall's Redis store vs the ``limits`` library's async Redis storage: decisions/s from 1 and
from 64 concurrent asyncio tasks, with the ``redis-benchmark`` EVALSHA ceiling of the same server.

One process, one run. The script starts its own redis-server (7.x from the Debian package: no
persistence, loopback, a free port; ``tests/redis_servers.py``), pinned with ``taskset`` to CPU 1
when it is usable, and pins itself (the client, with every thread it starts: seawall's tokio I/O
thread included) to CPU 0. Every client talks to that one server over TCP on 127.0.0.1.

Rows (every decision admitted: limits of 1e9 per hour, each task on its own key):

- seawall ``RedisLimiter("1000000000/hour").ahit(key)`` (GCRA, one Lua script, the server's TIME),
  from 1 task and from 64 tasks; and the sync ``hit(key)`` from one thread.
- limits ``FixedWindowRateLimiter`` and ``MovingWindowRateLimiter`` over
  ``limits.aio.storage.RedisStorage("async+redis://...")`` (its default client, coredis), and the
  fixed window over the redis-py implementation (``implementation="redispy"``), ``hit(item, key)``.
- redis-py's own asyncio client, ``INCR key``: the floor of one round trip from Python.
- ``redis-benchmark`` (pinned to CPU 0 too) running ``EVALSHA`` of ``return 1`` with
  ``-c 1 -P 1``, ``-c 50 -P 1`` and ``-c 50 -P 16``: the server's ceiling, no Python at all.

Each async row runs N decisions per task inside one ``asyncio.run`` (the default loop; with
``--loop uvloop``, uvloop's), N calibrated so that one repeat lasts about ``--target-ms``; rounds
are interleaved (round-robin over the rows, each round starting one row later) and each row
reports its best round. Timings are
never tests: this script always exits 0.

Run from the repository root::

    .venv/bin/python benches/compare_redis.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import redis.asyncio as aredis
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from timing import print_header, table

import seawall

LIMIT = "1000000000/hour"
CLIENT_CPU = 0
SERVER_CPU = 1
TRIVIAL = "return 1"

AsyncFn = Callable[[str], Awaitable[object]]


def redis_servers() -> ModuleType:
    """``tests/redis_servers.py``, shared with the test suite."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import redis_servers as module

    return module


def usable_cpus() -> set[int]:
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def pin_client() -> str:
    """Pin this process (before it starts any thread) to CPU 0, if the server can have CPU 1."""
    cpus = usable_cpus()
    if {CLIENT_CPU, SERVER_CPU} <= cpus and shutil.which("taskset"):
        os.sched_setaffinity(0, {CLIENT_CPU})
        return f"redis-server on CPU {SERVER_CPU} (taskset), client on CPU {CLIENT_CPU}"
    return "NOT pinned (no taskset, or CPUs 0 and 1 not both usable)"


def threads_on_cpu(cpu: int) -> bool:
    """Whether every thread of this process is allowed only ``cpu``."""
    try:
        for tid in os.listdir("/proc/self/task"):
            if os.sched_getaffinity(int(tid)) != {cpu}:
                return False
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Rows


@dataclass
class Row:
    label: str
    tasks: int  # concurrent asyncio tasks; 0: sync from one thread; -1: redis-benchmark
    run: Callable[[int], Awaitable[float]]  # n per task -> decisions/s
    n: int = 0
    best: float = 0.0
    rounds: list[float] = field(default_factory=list)


async def rate(fn: AsyncFn, tasks: int, n: int, keys: list[str]) -> float:
    """Decisions/s of ``tasks`` tasks, each awaiting ``fn(its key)`` ``n`` times."""

    async def one(key: str) -> None:
        f = fn
        for _ in range(n):
            await f(key)

    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(keys[i]) for i in range(tasks)))
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    return tasks * n / elapsed


def async_row(label: str, fn: AsyncFn, tasks: int, tag: str) -> Row:
    keys = [f"{tag}:{uuid.uuid4().hex[:8]}:{i}" for i in range(tasks)]

    async def run(n: int) -> float:
        return await rate(fn, tasks, n, keys)

    return Row(label, tasks, run)


def sync_row(label: str, fn: Callable[[str], object]) -> Row:
    async def run(n: int) -> float:
        f, key = fn, f"sync:{uuid.uuid4().hex[:8]}"
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                f(key)
            elapsed = time.perf_counter() - t0
        finally:
            gc.enable()
        return n / elapsed

    return Row(label, 0, run)


def benchmark_row(port: int, sha: str, clients: int, pipeline: int, pin: list[str]) -> Row:
    async def run(n: int) -> float:
        out = subprocess.run(
            [
                *pin,
                "redis-benchmark",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-c",
                str(clients),
                "-P",
                str(pipeline),
                "-n",
                str(n),
                "--csv",
                "EVALSHA",
                sha,
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        last = out.stdout.strip().splitlines()[-1]
        return float(last.split('","')[1])

    return Row(f"`redis-benchmark -c {clients} -P {pipeline}` EVALSHA `{TRIVIAL}`", -1, run)


async def calibrate(row: Row, target_s: float) -> None:
    """Warm the row up and choose n so that one repeat lasts about ``target_s``."""
    if row.tasks == -1:
        probe = 20_000
        rps = await row.run(probe)
        row.n = max(probe, int(rps * target_s))
        return
    tasks = max(row.tasks, 1)
    n = 50
    while True:
        rps = await row.run(n)
        elapsed = tasks * n / rps
        if elapsed > target_s / 4 or n >= 1_000_000:
            break
        n *= 4
    row.n = max(10, int(target_s * rps / tasks))


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("seawall", "limits", "coredis", "redis"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    out["redis-server"] = server.stdout.split(" ")[2].removeprefix("v=")
    return out


async def measure(port: int, sha: str, a: argparse.Namespace, pin: list[str]) -> list[Row]:
    url = f"redis://127.0.0.1:{port}/0"
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    sw = seawall.RedisLimiter(LIMIT, store=url, key_prefix=prefix)
    item = parse(LIMIT)
    coredis_storage = RedisStorage(f"async+redis://127.0.0.1:{port}/0")
    redispy_storage = RedisStorage(f"async+redis://127.0.0.1:{port}/0", implementation="redispy")
    fixed = FixedWindowRateLimiter(coredis_storage)
    moving = MovingWindowRateLimiter(coredis_storage)
    fixed_py = FixedWindowRateLimiter(redispy_storage)
    incr_client = aredis.Redis(host="127.0.0.1", port=port, max_connections=128)

    async def limits_fixed(key: str) -> bool:
        return await fixed.hit(item, key)

    async def limits_moving(key: str) -> bool:
        return await moving.hit(item, key)

    async def limits_fixed_py(key: str) -> bool:
        return await fixed_py.hit(item, key)

    rows: list[Row] = []
    for tasks in (1, 64):
        rows += [
            async_row("seawall `RedisLimiter.ahit`", sw.ahit, tasks, "sw"),
            async_row("limits `FixedWindowRateLimiter` (coredis)", limits_fixed, tasks, "lf"),
            async_row("limits `MovingWindowRateLimiter` (coredis)", limits_moving, tasks, "lm"),
            async_row("limits `FixedWindowRateLimiter` (redis-py)", limits_fixed_py, tasks, "lp"),
            async_row("redis-py asyncio `INCR` (floor)", incr_client.incr, tasks, "incr"),
        ]
    rows.append(sync_row("seawall `RedisLimiter.hit` (sync)", sw.hit))
    for clients, pipeline in ((1, 1), (50, 1), (50, 16)):
        rows.append(benchmark_row(port, sha, clients, pipeline, pin))

    for row in rows:
        await calibrate(row, a.target_ms / 1000)
    for r in range(a.rounds):
        for i in range(len(rows)):
            row = rows[(i + r) % len(rows)]
            x = await row.run(row.n)
            row.rounds.append(x)
            row.best = max(row.best, x)
    stats = sw.stats()
    if stats["errors"] or stats["fallbacks"]:
        print(f"- WARNING: seawall saw Redis errors during the run: {stats}")
    await incr_client.aclose()
    return rows


def report(rows: list[Row], pinned_ok: bool) -> None:
    def find(label: str, tasks: int) -> Row:
        return next(r for r in rows if r.label.startswith(label) and r.tasks == tasks)

    header = ["client", "1 task (dec/s)", "µs/decision", "64 tasks (dec/s)", "seawall ÷ this"]
    body: list[list[str]] = []
    labels = [r.label for r in rows if r.tasks == 1]
    for label in labels:
        one, many = find(label, 1), find(label, 64)
        sw1, sw64 = find("seawall `RedisLimiter.ahit`", 1), find("seawall `RedisLimiter.ahit`", 64)
        ratio = (
            "—"
            if label.startswith("seawall")
            else f"{sw1.best / one.best:.2f}x / {sw64.best / many.best:.2f}x"
        )
        body.append(
            [label, fmt_rate(one.best), f"{1e6 / one.best:.1f}", fmt_rate(many.best), ratio]
        )
    sync = next(r for r in rows if r.tasks == 0)
    body.append([sync.label, fmt_rate(sync.best), f"{1e6 / sync.best:.1f}", "—", "—"])
    for r in rows:
        if r.tasks == -1:
            body.append([r.label, "—", "—", "—", "—"])
            body[-1][1 if "-c 1 " in r.label else 3] = fmt_rate(r.best)
            if "-c 1 " in r.label:
                body[-1][2] = f"{1e6 / r.best:.1f}"
    print(table(header, body, right={1, 2, 3}))
    print()
    print(
        "- seawall ÷ this: seawall `ahit`'s decisions/s over the row's, from 1 task / from 64 "
        "tasks. redis-benchmark rows: the `-c 1` row sits in the 1-task column, the `-c 50` rows "
        "in the 64-task column (50 connections)."
    )
    sw1 = find("seawall `RedisLimiter.ahit`", 1)
    sw64 = find("seawall `RedisLimiter.ahit`", 64)
    lf1 = find("limits `FixedWindowRateLimiter` (coredis)", 1)
    lf64 = find("limits `FixedWindowRateLimiter` (coredis)", 64)
    bridge = 1e6 / sw1.best - 1e6 / sync.best
    print(
        f"- the asyncio bridge: `ahit` from one task costs {1e6 / sw1.best:.1f} µs a decision, "
        f"the sync `hit` {1e6 / sync.best:.1f} µs: {bridge:+.1f} µs for the await"
    )
    print(
        f"- bar (issue 6): 64 tasks ≥ 5x limits' async Redis storage: "
        f"{sw64.best / lf64.best:.2f}x {'met' if sw64.best >= 5 * lf64.best else 'NOT met'}; "
        f"1 task ≥ 2x: {sw1.best / lf1.best:.2f}x "
        f"{'met' if sw1.best >= 2 * lf1.best else 'NOT met'} (vs its default coredis client)"
    )
    spread = ", ".join(
        f"{'sync' if r.tasks == 0 else f'x{r.tasks}'} {min(r.rounds) / r.best:.0%}"
        for r in rows
        if r.label.startswith("seawall")
    )
    print(f"- seawall's worst round as a share of its best: {spread}")
    if not pinned_ok:
        print("- NOTE: not every client thread was pinned to CPU 0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter repeats")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--target-ms", type=float, default=None, help="one repeat, ms")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the event loop every async row runs on (uvloop: what uvicorn[standard] runs)",
    )
    a = parser.parse_args()
    a.rounds = max(1, min(a.rounds, 10))
    a.target_ms = a.target_ms if a.target_ms is not None else (150.0 if a.quick else 600.0)
    a.target_ms = max(20.0, min(a.target_ms, 10_000.0))

    started = time.perf_counter()
    rs = redis_servers()
    if rs.redis_server_binary() is None or shutil.which("redis-benchmark") is None:
        print("redis-server / redis-benchmark not installed (Debian: redis-server, redis-tools)")
        return 0
    print_header(
        "# seawall `RedisLimiter` vs `limits` async Redis storage: decisions/s", versions()
    )
    note = pin_client()
    pinned = note.startswith("redis-server")
    pin = ["taskset", "-c", str(CLIENT_CPU)] if pinned else []
    server = rs.RedisServer(cpu=SERVER_CPU if pinned else None)
    print(
        f"- server: redis-server on 127.0.0.1 (TCP), no persistence; {note}; {a.loop} "
        f"loop; limit `{LIMIT}` (every decision admitted), one key per task; n per task "
        f"calibrated to ~{a.target_ms:g} ms a repeat; {a.rounds} rounds interleaved, best round"
    )
    print(flush=True)
    try:
        server.start()
        sha = str(server.command("SCRIPT", "LOAD", TRIVIAL))
        if a.loop == "uvloop":
            import uvloop

            rows = uvloop.run(measure(server.port, sha, a, pin))
        else:
            rows = asyncio.run(measure(server.port, sha, a, pin))
        pinned_ok = not pinned or threads_on_cpu(CLIENT_CPU)
    finally:
        server.close()
    report(rows, pinned_ok)
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
