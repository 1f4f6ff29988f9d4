"""Admission + release: seawall.Backpressure vs a bare asyncio.Semaphore, a seed-style handler and
aiolimiter.

Prints markdown tables (pasteable into docs/backpressure.md) of what it costs to take a slot and
give it back, with nothing else running (every admission succeeds at once):

* ``asyncio.Semaphore``: ``async with sem: pass`` — the floor: a bare cap, no queue bound, no
  strategy, no counts.
* ``seawall slot``: ``async with bp.slot(): pass`` (``Backpressure(max_concurrency=10)``).
* ``aiolimiter``: ``async with AsyncLimiter(...)`` with a rate it never reaches (a leaky bucket,
  a rate limiter rather than a concurrency cap; the closest async admission library).
* the same with a no-op coroutine run inside: ``async with sem: await noop()``,
  ``await bp.run(noop)``, and the seed-style handler's ``await (await h.submit_task(id, noop))``.

The seed-style handler is seed 003's ``BackpressureHandler`` as SEEDS-002-003.md (2.8, B14)
describes it: ``submit_task`` takes an ``asyncio.Lock``, checks the queue and the memory, puts an
entry in an ``asyncio.Queue``, creates a task per item and keeps it in a dict by id; the task
runs the function and records its processing time and counts. Minus the defects that would make
it incomparable: its tasks wait on an ``asyncio.Semaphore`` (the seed started every task at once,
so it bounded nothing) and consume their queue entry; memory is the summed ``len()`` of the
arguments, not the process RSS through psutil.

A second table runs 100 tasks through a limit of 10, each taking a slot 200 times around an
``await asyncio.sleep(0)``, so most admissions wait: the contended path.

Timing: ``time.perf_counter_ns`` around N iterations inside one ``asyncio.run`` per row, best of
5 repeats, cyclic GC disabled while timing. Timings are never tests: this script always exits 0.

Run from the repository root (a release build: ``maturin develop --release --extras dev,bench``)::

    .venv/bin/python benches/compare_backpressure.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from timing import abest_of, ns, plan_units, print_header, table

import seawall

AsyncTimer = Callable[[int], Coroutine[Any, Any, int]]
LIMIT = 10


async def noop() -> None:
    pass


class SeedStyleHandler:
    """Seed 003's BackpressureHandler, the seed's way (see the module docstring)."""

    def __init__(
        self, max_concurrency: int = LIMIT, max_queue_size: int = 1000, max_memory_mb: int = 100
    ) -> None:
        self.max_memory = max_memory_mb * 1024 * 1024
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue(maxsize=max_queue_size)
        self.lock = asyncio.Lock()
        self.active_tasks: dict[str, asyncio.Task[Any]] = {}
        self.memory = 0
        self.processing_times: deque[float] = deque(maxlen=100)
        self.stats = {"total_processed": 0, "total_dropped": 0, "total_blocked": 0}

    async def submit_task(
        self, task_id: str, coro: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any] | None:
        async with self.lock:
            size = sum(len(a) for a in args if isinstance(a, bytes | str))
            if self.queue.full() or self.memory + size > self.max_memory:
                self.stats["total_dropped"] += 1
                return None
            self.memory += size
            await self.queue.put((task_id, time.time()))
            task = asyncio.create_task(self._execute(task_id, size, coro, *args, **kwargs))
            self.active_tasks[task_id] = task
            return task

    async def _execute(
        self, task_id: str, size: int, coro: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> Any:
        async with self.semaphore:
            self.queue.get_nowait()
            start = time.time()
            try:
                return await coro(*args, **kw)
            finally:
                self.processing_times.append(time.time() - start)
                self.stats["total_processed"] += 1
                self.memory -= size
                self.active_tasks.pop(task_id, None)


# --------------------------------------------------------------------------------------------
# Timers: one admission + release per iteration.


def t_sem() -> AsyncTimer:
    async def timer(n: int) -> int:
        sem = asyncio.Semaphore(LIMIT)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            async with sem:
                pass
        return time.perf_counter_ns() - t0

    return timer


def t_sem_run() -> AsyncTimer:
    async def timer(n: int) -> int:
        sem, f = asyncio.Semaphore(LIMIT), noop
        t0 = time.perf_counter_ns()
        for _ in range(n):
            async with sem:
                await f()
        return time.perf_counter_ns() - t0

    return timer


def t_slot() -> AsyncTimer:
    async def timer(n: int) -> int:
        slot = seawall.Backpressure(max_concurrency=LIMIT).slot
        t0 = time.perf_counter_ns()
        for _ in range(n):
            async with slot():
                pass
        return time.perf_counter_ns() - t0

    return timer


def t_run() -> AsyncTimer:
    async def timer(n: int) -> int:
        run, f = seawall.Backpressure(max_concurrency=LIMIT).run, noop
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await run(f)
        return time.perf_counter_ns() - t0

    return timer


def t_seed() -> AsyncTimer:
    async def timer(n: int) -> int:
        h, f, ids = SeedStyleHandler(), noop, itertools.count()
        submit = h.submit_task
        t0 = time.perf_counter_ns()
        for _ in range(n):
            task = await submit(f"t{next(ids)}", f)
            assert task is not None
            await task
        return time.perf_counter_ns() - t0

    return timer


def t_aiolimiter() -> AsyncTimer | None:
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:
        return None

    async def timer(n: int) -> int:
        limiter = AsyncLimiter(1e12, 1)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            async with limiter:
                pass
        return time.perf_counter_ns() - t0

    return timer


# Contended: WORKERS tasks share a limit of LIMIT; each iteration is one admission + release.
WORKERS = 100


def contended(enter: Callable[[], Any]) -> AsyncTimer:
    async def timer(n: int) -> int:
        per = max(1, n // WORKERS)
        make = enter()
        sleep = asyncio.sleep

        async def worker() -> None:
            for _ in range(per):
                async with make():
                    await sleep(0)

        t0 = time.perf_counter_ns()
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        return (time.perf_counter_ns() - t0) * n // (per * WORKERS)

    return timer


def c_sem() -> Callable[[], Any]:
    sem = asyncio.Semaphore(LIMIT)
    return lambda: sem


def c_slot() -> Callable[[], Any]:
    return seawall.Backpressure(max_concurrency=LIMIT, max_queue=WORKERS).slot


def c_seed_timer() -> AsyncTimer:
    async def timer(n: int) -> int:
        h, ids = SeedStyleHandler(max_queue_size=10 * WORKERS), itertools.count()
        per = max(1, n // WORKERS)

        async def worker() -> None:
            for _ in range(per):
                task = await h.submit_task(f"t{next(ids)}", asyncio.sleep, 0)
                assert task is not None
                await task

        t0 = time.perf_counter_ns()
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        return (time.perf_counter_ns() - t0) * n // (per * WORKERS)

    return timer


# --------------------------------------------------------------------------------------------


async def measure(timer: AsyncTimer, target_ns: int, repeats: int) -> float:
    n0 = 2_000
    await timer(n0)  # warm-up
    n = plan_units(await timer(n0), n0, target_ns)
    return await abest_of(timer, n, repeats) / n


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short repeats, for a smoke run")
    args = parser.parse_args()
    target_ns = 20_000_000 if args.quick else 200_000_000
    repeats = 3 if args.quick else 5

    print_header(
        "## Backpressure: admission + release",
        {"seawall": version("seawall"), "aiolimiter": version("aiolimiter")},
    )
    print()

    async def run_all() -> dict[str, float]:
        rows: dict[str, AsyncTimer | None] = {
            "asyncio.Semaphore: async with": t_sem(),
            "seawall: async with bp.slot()": t_slot(),
            "aiolimiter: async with": t_aiolimiter(),
            "asyncio.Semaphore: async with + await noop()": t_sem_run(),
            "seawall: await bp.run(noop)": t_run(),
            "seed-style handler: submit_task(noop) + await": t_seed(),
            "contended: asyncio.Semaphore": contended(c_sem),
            "contended: seawall bp.slot()": contended(c_slot),
            "contended: seed-style handler": c_seed_timer(),
        }
        return {
            name: await measure(t, target_ns, repeats) for name, t in rows.items() if t is not None
        }

    r = asyncio.run(run_all())
    uncontended = [k for k in r if not k.startswith("contended")]
    floor = r["asyncio.Semaphore: async with"]
    print(
        table(
            ["one admission + release, uncontended", "ns", "x Semaphore"],
            [[k, ns(r[k]), f"{r[k] / floor:.2f}"] for k in uncontended],
            {1, 2},
        )
    )
    print()
    c_floor = r["contended: asyncio.Semaphore"]
    print(
        table(
            [f"{WORKERS} tasks, limit {LIMIT}, per admission", "ns", "x Semaphore"],
            [
                [k.removeprefix("contended: "), ns(r[k]), f"{r[k] / c_floor:.2f}"]
                for k in r
                if k.startswith("contended")
            ],
            {1, 2},
        )
    )
    print()
    slot_ratio = r["seawall: async with bp.slot()"] / floor
    seed_ratio = (
        r["seed-style handler: submit_task(noop) + await"] / r["seawall: await bp.run(noop)"]
    )
    contended_seed = r["contended: seed-style handler"] / r["contended: seawall bp.slot()"]
    print(f"- bp.slot() / bare Semaphore: {slot_ratio:.2f}x (bar: <= 2x)")
    print(f"- seed-style handler / bp.run(noop): {seed_ratio:.2f}x (bar: >= 5x)")
    print(f"- contended, seed-style handler / bp.slot(): {contended_seed:.2f}x")


if __name__ == "__main__":
    main()
