"""One caller against Redis: seawall's ``RedisLimiter.ahit`` from one asyncio task next to the
floor, ``redis-benchmark -c 1 -P 1`` running ``EVALSHA`` of ``return 1`` (issue 18, gap 5).

One process, one run: a real redis-server on a free 127.0.0.1 port (``tests/redis_servers.py``),
pinned to CPU 1 when it is usable, this process (and every thread it starts) to CPU 0. Rows, each
one caller awaiting (or blocking on) one reply at a time:

- ``redis-benchmark -c 1 -P 1 -n N EVALSHA <sha of "return 1"> 0``: the floor, no Python.
- a bare ``asyncio.Protocol`` writing the same ``EVALSHA`` and awaiting a future set in
  ``data_received``: the least an asyncio round trip costs from Python.
- redis-py's asyncio client, ``evalsha`` of the same script: a Python client for reference.
- seawall ``RedisLimiter("1000000000/hour").ahit(key)`` (GCRA, its Lua script, the server's
  TIME) from one task, and the sync ``hit(key)``.

Rounds are interleaved (each round starts one row later); each row reports its median round in
µs per call. The bar: ``ahit`` ≤ 1.5x the ``redis-benchmark`` floor. Timings are never tests:
this script always exits 0. Run from the repository root::

    .venv/bin/python benches/redis_one_task.py [--rounds 5] [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aredis

import seawall

LIMIT = "1000000000/hour"
TRIVIAL = "return 1"
CLIENT_CPU, SERVER_CPU = 0, 1


def pin() -> list[str]:
    """Pins this process to CPU 0 when the server can have CPU 1; the prefix for subprocesses."""
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
    if {CLIENT_CPU, SERVER_CPU} <= cpus and shutil.which("taskset"):
        os.sched_setaffinity(0, {CLIENT_CPU})
        return ["taskset", "-c", str(CLIENT_CPU)]
    return []


class Raw(asyncio.Protocol):
    """The least an asyncio client does: write a command, await a future set on its reply."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # "return 1" answers ":1\r\n", one read each.
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def timed_async(call: Callable[[], Awaitable[object]], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            await call()
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        gc.enable()


def timed_sync(call: Callable[[], object], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        gc.enable()


def benchmark(port: int, sha: str, n: int, prefix: list[str]) -> float:
    argv = [*prefix, "redis-benchmark", "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-c", "1", "-P", "1", "-n", str(n), "--csv", "EVALSHA", sha, "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return 1e6 / float(out.stdout.strip().splitlines()[-1].split('","')[1])


async def measure(port: int, sha: str, a: argparse.Namespace, prefix: list[str]) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    sw = seawall.RedisLimiter(LIMIT, store=url, key_prefix=f"one-{uuid.uuid4().hex[:6]}:")
    key = "k"
    client = aredis.Redis(host="127.0.0.1", port=port)
    loop = asyncio.get_running_loop()
    _, raw = await loop.create_connection(Raw, "127.0.0.1", port)
    packet = f"*3\r\n$7\r\nEVALSHA\r\n$40\r\n{sha}\r\n$1\r\n0\r\n".encode()

    async def raw_call() -> bytes:
        fut = loop.create_future()
        raw.waiter = fut
        assert raw.transport is not None
        raw.transport.write(packet)
        return await fut

    async def ahit() -> object:
        return await sw.ahit(key)

    async def evalsha() -> object:
        return await client.evalsha(sha, 0)

    def hit() -> object:
        return sw.hit(key)

    rows: dict[str, Callable[[int], Awaitable[float]]] = {}

    async def bench_row(n: int) -> float:
        return benchmark(port, sha, n, prefix)

    async def sync_row(n: int) -> float:
        return timed_sync(hit, n)

    def async_row(call: Callable[[], Awaitable[object]]) -> Callable[[int], Awaitable[float]]:
        async def run(n: int) -> float:
            return await timed_async(call, n)

        return run

    rows["`redis-benchmark -c 1 -P 1` EVALSHA `return 1` (floor)"] = bench_row
    rows["bare asyncio.Protocol EVALSHA `return 1`, 1 task"] = async_row(raw_call)
    rows["redis-py asyncio `evalsha` `return 1`, 1 task"] = async_row(evalsha)
    rows["seawall `RedisLimiter.ahit`, 1 task"] = async_row(ahit)
    rows["seawall `RedisLimiter.hit` (sync)"] = sync_row
    for run in rows.values():  # warm up: connections made, scripts loaded
        await run(max(200, a.n // 20))
    results: dict[str, list[float]] = {label: [] for label in rows}
    labels = list(rows)
    for r in range(a.rounds):
        for i in range(len(labels)):
            label = labels[(i + r) % len(labels)]
            results[label].append(await rows[label](a.n))
    stats = sw.stats()
    if stats["errors"] or stats["fallbacks"]:
        print(f"- WARNING: seawall saw Redis errors: {stats}")
    await client.aclose()
    assert raw.transport is not None
    raw.transport.close()

    floor = statistics.median(results[labels[0]])
    print("| caller | µs/call (median) | best | ÷ floor |")
    print("|---|--:|--:|--:|")
    for label, xs in results.items():
        med = statistics.median(xs)
        print(f"| {label} | {med:.1f} | {min(xs):.1f} | {med / floor:.2f}x |")
    ahit_med = statistics.median(results[labels[3]])
    verdict = "met" if ahit_med <= 1.5 * floor else "NOT met"
    print(f"\n- bar: one-task `ahit` ≤ 1.5x the floor: {ahit_med / floor:.2f}x {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000, help="calls per row per round")
    a = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import redis_servers

    if redis_servers.redis_server_binary() is None or shutil.which("redis-benchmark") is None:
        print("redis-server / redis-benchmark not installed (Debian: redis-server, redis-tools)")
        return 0
    prefix = pin()
    server = redis_servers.RedisServer(cpu=SERVER_CPU if prefix else None)
    print(f"- {a.rounds} rounds of {a.n} calls, interleaved; pinned: {bool(prefix)}\n")
    try:
        server.start()
        sha = str(server.command("SCRIPT", "LOAD", TRIVIAL))
        asyncio.run(measure(server.port, sha, a, prefix))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
