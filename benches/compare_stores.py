"""seawall's memory, host and Redis stores vs pyrate-limiter's SQLite bucket: one decision.

What it measures, in one run (tables with ratios; every number from this run):

1. One decision in one process, nanoseconds, for each subject: the sync ``hit(key)`` and the
   awaited ``ahit(key)``, on one hot key and cycling over ``--keys`` (100,000) distinct keys.
   Subjects, each limiting at ``1000000000/second`` (every decision admitted):

   - seawall memory store: ``seawall.Limiter(limit, max_keys=M)``;
   - seawall host store: ``seawall.Limiter(limit, store="host://NAME", max_keys=M)``, a
     shared-memory segment named per run and removed (``seawall.host.remove``) before and after;
   - seawall on Redis: ``seawall.Limiter(limit, store="redis://127.0.0.1:PORT/0")`` against a
     redis-server this script starts on a free loopback port (``tests/redis_servers.py``; no
     persistence) and stops;
   - pyrate-limiter: ``SQLiteBucket.init_from_file(..., use_file_lock=True)`` (its documented
     set-up for several processes: SQLite in WAL mode plus a ``filelock.FileLock`` beside the
     database file) under ``pyrate_limiter.Limiter``, ``try_acquire(key, 1, False)`` and
     ``await try_acquire_async(key, 1, False)``; ``Rate(10**6, 1 ms)``: the same rate over its
     shortest window, pyrate's fastest configuration (its log keeps a row per admitted decision
     and counts the window's rows at every decision; see ``pyrate_rate``).

   M is twice the key count. The memory and host stores are filled with every key before timing,
   and the report says how many each holds then (the host store keeps a key in one of the 16
   slots after its home slot and, when those are taken, replaces one that is back to fresh,
   which loses nothing, so a few keys may be replaced below capacity) and the host segment's
   size. Redis is not filled: seawall's script gives each key an expiry at the moment its state
   is back to fresh (here about a millisecond), so no key stays present there. Nor is pyrate:
   its ``SQLiteBucket`` counts every row of its table whatever the name (one limit shared by
   all names), so distinct names add no state; its rows measure the same work with distinct
   names. The keyed rows continue through the key list from repeat to repeat.

2. Processes on ONE key (``multiprocessing``, spawn): ``--procs`` (4) processes each build
   their own limiter on the same store (segment name, Redis URL and prefix, SQLite file) and
   warm up. Each round has two phases, each started on a barrier and lasting ``--duration``:
   one process calls the sync ``hit`` alone (the others wait at the next barrier), then all of
   them do; so the 1-process and 4-process figures are taken side by side in time, and a busy
   machine slows both alike. Aggregate decisions/s = the phase's decisions ÷ its longest
   process's elapsed time; best of ``--rounds``. Then the exactness check: a fresh key limited
   to ``1000/day`` (pyrate: ``Rate(1000, one day)``), every process makes ``--attempts``
   attempts at once, admitted counted. The memory store keeps one budget per process (it admits
   procs x 1000: shown, not a fault); host, Redis and pyrate share one budget and must admit
   exactly 1000.

3. Ratios, against the bars of issue 14: host ≤ 2x memory's time (hot key, one process, sync);
   Redis ≥ 50x host's time; pyrate's SQLite bucket ≥ 20x host's time; host's aggregate with 4
   processes higher than with 1; host, Redis and pyrate exact.

pyrate-limiter note: its ``Limiter`` takes a non-blocking lock with ``lock.acquire(False)``
(``threading.Lock``'s signature), but ``FileLock.acquire``'s first parameter is ``timeout``:
current filelock raises ``TypeError`` on the bool, older ones read it as 0 s, a refusal whenever
another process holds the lock. So the bucket's ``FileLock`` is wrapped (``WaitingFileLock``) to
wait for the lock (at most 30 s) and then decide without waiting for the rate, which is what
``hit`` does on every seawall store. Every decision still runs pyrate's code, its SQL and its file
lock.

Timing: ``time.perf_counter_ns`` around a plain ``for`` loop of N decisions (the async rows
inside one event loop), N calibrated so a repeat takes about ``--target-ms``, repeats interleaved
across rows (round-robin), each row's best of ``--repeats``, cyclic GC collected before and
disabled during every timed loop (also in the worker processes). Only 127.0.0.1. Every loop and
wait is bounded. Timings are never tests: this script always exits 0.

Run from the repository root (``--quick``: shorter repeats, fewer rounds and attempts)::

    .venv/bin/python benches/compare_stores.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import multiprocessing
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from timing import AsyncTimer, SyncTimer, ns, plan_units, print_header, t_call1, table

import seawall

HOT_KEY = "hot"
FAST_LIMIT = 1_000_000_000  # per second: every decision admitted
EXACT_LIMIT = 1_000  # per day: the exactness check (a day: no refill during the check)
PERIODS = {1: "second", 86_400: "day"}
STORES = ("memory", "host", "redis", "pyrate")
LABELS = {
    "memory": "seawall memory store",
    "host": "seawall host store (`host://`)",
    "redis": "seawall on Redis (`redis://`, loopback)",
    "pyrate": "pyrate-limiter `SQLiteBucket` + file lock",
}
LOCK_WAIT_S = 30.0  # the longest a pyrate decision waits for the file lock
MAX_N = 20_000_000  # the most decisions in one timed loop
CHUNK = 64  # decisions between two clock reads in the worker processes
BARRIER_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 180.0


# --------------------------------------------------------------------------------------------
# Subjects


@dataclass(frozen=True)
class Spec:
    """What one process needs to build its limiter (picklable: sent to the workers)."""

    store: str  # one of STORES
    limit: int
    per_s: int  # a key of PERIODS
    max_keys: int
    where: str = ""  # host: segment name; redis: URL; pyrate: SQLite path
    prefix: str = ""  # redis: key prefix

    @property
    def limits(self) -> str:
        return f"{self.limit}/{PERIODS[self.per_s]}"


@dataclass
class Subject:
    hit: Callable[[str], object]
    ahit: Callable[[str], Awaitable[object]]
    close: Callable[[], None]
    stats: Callable[[], dict[str, Any]]  # seawall's stats(); {} for pyrate


class WaitingFileLock:
    """pyrate-limiter's lock protocol (``acquire(blocking, timeout)``, ``release()``, a context
    manager) over the ``filelock.FileLock`` that ``SQLiteBucket.init_from_file`` made: it waits
    for the file lock, at most ``LOCK_WAIT_S`` (see the module docstring)."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.lock.acquire(timeout=LOCK_WAIT_S)
        return True

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> WaitingFileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def pyrate_rate(spec: Spec, rate: Callable[[int, int], Any]) -> Any:
    """pyrate's ``Rate(limit, interval_ms)`` for ``spec``. A per-second limit becomes the same
    rate over 1 ms (``10**9/second`` -> ``Rate(10**6, 1)``): pyrate's log keeps a row per
    admitted decision and counts the window's rows on every decision, so the shortest window is
    its fastest configuration (over 1 s the log grows to every decision of the last second and a
    decision slows down as it does)."""
    if spec.per_s == 1 and spec.limit % 1000 == 0:
        return rate(spec.limit // 1000, 1)
    return rate(spec.limit, spec.per_s * 1000)


def build_pyrate(spec: Spec) -> Subject:
    from pyrate_limiter import Limiter as PyrateLimiter
    from pyrate_limiter import Rate, SQLiteBucket

    bucket = SQLiteBucket.init_from_file(
        [pyrate_rate(spec, Rate)],
        table="seawall_bench",
        db_path=spec.where,
        create_new_table=True,
        use_file_lock=True,
    )
    bucket.lock = WaitingFileLock(bucket.lock)  # type: ignore[assignment]  # before Limiter()
    limiter = PyrateLimiter(bucket)
    try_acquire, try_acquire_async = limiter.try_acquire, limiter.try_acquire_async

    def hit(key: str) -> object:
        return try_acquire(key, 1, False)

    async def ahit(key: str) -> object:
        return await try_acquire_async(key, 1, False)

    return Subject(hit, ahit, limiter.close, dict)


def build(spec: Spec) -> Subject:
    if spec.store == "pyrate":
        return build_pyrate(spec)
    lim: Any
    if spec.store == "memory":
        lim = seawall.Limiter(spec.limits, max_keys=spec.max_keys)
    elif spec.store == "host":
        lim = seawall.Limiter(spec.limits, store=f"host://{spec.where}", max_keys=spec.max_keys)
    else:
        lim = seawall.Limiter(spec.limits, store=spec.where, key_prefix=spec.prefix)

    close = getattr(lim, "close", None)
    return Subject(lim.hit, lim.ahit, close if callable(close) else (lambda: None), lim.stats)


def remove_host(name: str) -> None:
    """Remove the host store's segment ``name`` if this build has host stores and it exists."""
    try:
        import seawall.host as host

        host.remove(name)
    except Exception:  # absent module or segment: nothing to remove
        pass


class Resources:
    """Fresh store locations per job (segment names, Redis prefixes, SQLite files), and their
    removal at the end."""

    def __init__(self, redis_url: str | None, sqlite_dir: Path) -> None:
        self.redis_url = redis_url
        self.sqlite_dir = sqlite_dir
        self.hosts: list[str] = []
        self.count = 0

    def spec(self, store: str, limit: int, per_s: int, max_keys: int) -> Spec:
        self.count += 1
        tag = f"{os.getpid()}-{self.count}-{uuid.uuid4().hex[:6]}"
        if store == "host":
            name = f"swbench-{tag}"
            remove_host(name)
            self.hosts.append(name)
            return Spec(store, limit, per_s, max_keys, where=name)
        if store == "redis":
            assert self.redis_url is not None
            return Spec(store, limit, per_s, max_keys, self.redis_url, f"swbench-{tag}:")
        if store == "pyrate":
            path = str(self.sqlite_dir / f"pyrate-{tag}.sqlite")
            return Spec(store, limit, per_s, max_keys, where=path)
        return Spec(store, limit, per_s, max_keys)

    def done(self, spec: Spec) -> None:
        """Free what ``spec`` used, once no process uses it any more."""
        if spec.store == "host":
            remove_host(spec.where)
        elif spec.store == "pyrate":
            for suffix in ("", ".lock", "-wal", "-shm"):
                Path(spec.where + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        for name in self.hosts:
            remove_host(name)
        shutil.rmtree(self.sqlite_dir, ignore_errors=True)


def host_unavailable() -> str | None:
    """Why ``store="host://..."`` does not work in this build, or ``None`` if it does."""
    name = f"swbench-probe-{os.getpid()}"
    remove_host(name)
    try:
        lim = seawall.Limiter("10/second", store=f"host://{name}", max_keys=1024)
        lim.hit(HOT_KEY)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        remove_host(name)
    return None


def pyrate_unavailable() -> str | None:
    try:
        import filelock  # noqa: F401
        import pyrate_limiter  # noqa: F401
    except ImportError as e:
        return f"not installed ({e}); `pip install -e .[bench]`"
    return None


def redis_servers() -> ModuleType:
    """``tests/redis_servers.py``, shared with the test suite."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import redis_servers as module

    return module


# --------------------------------------------------------------------------------------------
# One process: timed loops


def t_await1(fn: Callable[[str], Awaitable[object]], key: str) -> AsyncTimer:
    async def timer(n: int) -> int:
        f, k = fn, key
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await f(k)
        return time.perf_counter_ns() - t0

    return timer


def t_cycle(fn: Callable[[str], object], keys: list[str]) -> SyncTimer:
    """``n`` decisions on the next ``n`` keys; the next call goes on where this one stopped."""
    it = itertools.cycle(keys)

    def timer(n: int) -> int:
        f, ks = fn, itertools.islice(it, n)
        t0 = time.perf_counter_ns()
        for k in ks:
            f(k)
        return time.perf_counter_ns() - t0

    return timer


def t_await_cycle(fn: Callable[[str], Awaitable[object]], keys: list[str]) -> AsyncTimer:
    it = itertools.cycle(keys)

    async def timer(n: int) -> int:
        f, ks = fn, itertools.islice(it, n)
        t0 = time.perf_counter_ns()
        for k in ks:
            await f(k)
        return time.perf_counter_ns() - t0

    return timer


@dataclass
class Row:
    store: str
    column: str  # "hot sync" | "hot async" | "keys sync" | "keys async"
    sync: SyncTimer | None
    aio: AsyncTimer | None
    n: int = 0
    best: float = float("inf")  # ns per decision


def run_once(row: Row, n: int, loop: asyncio.AbstractEventLoop) -> int:
    gc.collect()
    gc.disable()
    try:
        if row.sync is not None:
            return row.sync(n)
        assert row.aio is not None
        coro: Coroutine[Any, Any, int] = row.aio(n)
        return loop.run_until_complete(coro)
    finally:
        gc.enable()


def calibrate(row: Row, target_ns: int, loop: asyncio.AbstractEventLoop) -> None:
    """Warm the row up and choose n so that a repeat lasts about ``target_ns``."""
    n = 16
    elapsed = run_once(row, n, loop)  # warm-up
    for _ in range(20):
        elapsed = run_once(row, n, loop)
        if elapsed >= target_ns // 8 or n >= MAX_N:
            break
        n *= 4
    row.n = min(MAX_N, plan_units(elapsed, n, target_ns))


def fill(subject: Subject, keys: list[str]) -> None:
    hit = subject.hit
    for k in keys:
        hit(k)


def measure_one_process(
    a: argparse.Namespace, res: Resources, available: dict[str, str | None], notes: list[str]
) -> dict[tuple[str, str], float]:
    keys = [f"client-{i}" for i in range(a.keys)]
    max_keys = 2 * a.keys
    subjects: dict[str, Subject] = {}
    rows: list[Row] = []
    loop = asyncio.new_event_loop()
    try:
        for store in STORES:
            if available[store] is not None:
                continue
            s = build(res.spec(store, FAST_LIMIT, 1, max_keys))
            subjects[store] = s
            if store in ("memory", "host"):
                fill(s, keys)
                st = s.stats()
                note = (
                    f"{LABELS[store]}: {st.get('keys', 0):,} of {a.keys:,} keys held after the fill"
                )
                if store == "host":
                    note += (
                        f"; segment of {st.get('capacity', 0):,} slots, "
                        f"{st.get('bytes', 0) / 2**20:.1f} MiB"
                    )
                notes.append(note)
            rows += [
                Row(store, "hot sync", t_call1(s.hit, HOT_KEY), None),
                Row(store, "hot async", None, t_await1(s.ahit, HOT_KEY)),
                Row(store, "keys sync", t_cycle(s.hit, keys), None),
                Row(store, "keys async", None, t_await_cycle(s.ahit, keys)),
            ]
        target_ns = int(a.target_ms * 1e6)
        for row in rows:
            calibrate(row, target_ns, loop)
        for r in range(a.repeats):
            for i in range(len(rows)):
                row = rows[(i + r) % len(rows)]
                row.best = min(row.best, run_once(row, row.n, loop) / row.n)
        # Every decision must have been admitted (the limits admit 1e9 a second): seawall's
        # stats count refusals (and Redis errors); for pyrate, one more decision must pass.
        for store, s in subjects.items():
            st = s.stats()
            bad = {k: st[k] for k in ("limited", "errors", "fallbacks") if st.get(k)}
            if bad or not bool(s.hit(HOT_KEY)):
                notes.append(f"WARNING: {LABELS[store]} refused or failed decisions: {bad}")
    finally:
        for s in subjects.values():
            s.close()
        loop.close()
    return {(r.store, r.column): r.best for r in rows}


# --------------------------------------------------------------------------------------------
# Several processes on one key


@dataclass(frozen=True)
class Job:
    kind: str  # "rate": decisions/s for duration_s; "exact": attempts, admitted counted
    key: str
    rounds: int
    duration_s: float
    attempts: int
    # Per round, one phase per entry: how many of the processes run in it (the first ones; the
    # others wait at the next barrier). (1, 4): one alone, then all four, round after round.
    phases: tuple[int, ...]


@dataclass(frozen=True)
class Result:
    index: int
    round: int
    active: int  # processes running in this phase
    decisions: int
    elapsed_s: float
    admitted: int
    error: str = ""
    trouble: int = 0  # seawall's refusals, Redis errors and fallbacks so far (rate jobs)


def worker(spec: Spec, job: Job, barrier: Any, results: Any, index: int) -> None:
    """One process: build the limiter, then per round wait on the barrier and run the job."""
    try:
        subject = build(spec)
    except BaseException as e:
        results.put(Result(index, -1, 0, 0, 0.0, 0, f"{type(e).__name__}: {e}"))
        barrier.abort()
        return
    try:
        hit, key = subject.hit, job.key
        if job.kind == "rate":
            for _ in range(CHUNK):
                hit(key)  # warm-up: connections, first touch of the key
        for r, active in itertools.product(range(job.rounds), job.phases):
            gc.collect()
            barrier.wait(BARRIER_TIMEOUT_S)
            if index >= active:
                continue
            gc.disable()
            try:
                if job.kind == "rate":
                    n = 0
                    t0 = time.perf_counter()
                    stop = t0 + job.duration_s
                    now = t0
                    while now < stop and n < MAX_N:
                        for _ in range(CHUNK):
                            hit(key)
                        n += CHUNK
                        now = time.perf_counter()
                    st = subject.stats()
                    bad = sum(int(st.get(k, 0)) for k in ("limited", "errors", "fallbacks"))
                    results.put(Result(index, r, active, n, now - t0, n, trouble=bad))
                else:
                    admitted = 0
                    t0 = time.perf_counter()
                    for _ in range(job.attempts):
                        if hit(key):
                            admitted += 1
                    elapsed = time.perf_counter() - t0
                    results.put(Result(index, r, active, job.attempts, elapsed, admitted))
            finally:
                gc.enable()
    except BaseException as e:
        results.put(Result(index, -1, 0, 0, 0.0, 0, f"{type(e).__name__}: {e}"))
        barrier.abort()
    finally:
        subject.close()


def run_processes(spec: Spec, job: Job, procs: int) -> list[Result] | str:
    """Run ``job`` in ``procs`` fresh processes; their results, or what went wrong."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [
        ctx.Process(target=worker, args=(spec, job, barrier, results, i), daemon=True)
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    out: list[Result] = []
    error = ""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        while len(out) < job.rounds * sum(job.phases):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = f"timed out after {JOB_TIMEOUT_S:.0f} s"
                break
            try:
                item: Result = results.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not any(p.is_alive() for p in ps):
                    error = "the worker processes exited without their results"
                    break
                continue
            if item.error:
                error = item.error
                break
            out.append(item)
    finally:
        if error:
            barrier.abort()
        for p in ps:
            p.join(timeout=10)
        for p in ps:
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        results.close()
    return error or out


@dataclass
class MultiRow:
    store: str
    rate: dict[int, float | str] = field(default_factory=dict)  # procs -> best decisions/s
    admitted: int | str = "—"


def measure_processes(
    a: argparse.Namespace, res: Resources, available: dict[str, str | None], notes: list[str]
) -> list[MultiRow]:
    out: list[MultiRow] = []
    max_keys = 2 * a.keys
    for store in STORES:
        row = MultiRow(store)
        out.append(row)
        if available[store] is not None:
            continue
        # One pool of processes; each round runs one of them alone, then all of them, so the two
        # figures are taken side by side in time (a busy machine slows both alike).
        phases = (1, a.procs)
        job = Job("rate", HOT_KEY, a.rounds, a.duration, 0, phases)
        spec = res.spec(store, FAST_LIMIT, 1, max_keys)
        got = run_processes(spec, job, a.procs)
        res.done(spec)
        if isinstance(got, str):
            row.rate = {p: f"failed: {got}" for p in phases}
        else:
            if any(x.trouble for x in got):
                notes.append(
                    f"WARNING: {LABELS[store]}: {max(x.trouble for x in got)} refused or failed "
                    "decisions in a process"
                )
            for p in phases:
                best = 0.0
                for r in range(a.rounds):
                    this = [x for x in got if x.round == r and x.active == p]
                    total = sum(x.decisions for x in this)
                    best = max(best, total / max(x.elapsed_s for x in this))
                row.rate[p] = best
        job = Job("exact", f"exact-{uuid.uuid4().hex[:8]}", 1, 0.0, a.attempts, (a.procs,))
        spec = res.spec(store, EXACT_LIMIT, 86_400, max_keys)
        got = run_processes(spec, job, a.procs)
        res.done(spec)
        row.admitted = f"failed: {got}" if isinstance(got, str) else sum(x.admitted for x in got)
    return out


# --------------------------------------------------------------------------------------------
# Report


def versions(redis_bin: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("seawall", "pyrate-limiter", "filelock"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["SQLite"] = sqlite3.sqlite_version
    if redis_bin is not None:
        server = subprocess.run([redis_bin, "--version"], capture_output=True, text=True)
        out["redis-server"] = server.stdout.split(" ")[2].removeprefix("v=")
    else:
        out["redis-server"] = "not installed"
    return out


def fs_type(path: Path) -> str:
    """The file system type that holds ``path`` (``/proc/mounts``' longest matching mount)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mount = parts[1]
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except (OSError, IndexError):
        pass
    return kind


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fmt_ns(x: float | None) -> str:
    return "n/a" if x is None or x == float("inf") else ns(x)


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def report(
    a: argparse.Namespace,
    one: dict[tuple[str, str], float],
    notes: list[str],
    multi: list[MultiRow],
    mnotes: list[str],
    available: dict[str, str | None],
) -> None:
    columns = ["hot sync", "hot async", "keys sync", "keys async"]
    kk = f"{a.keys // 1000}k" if a.keys >= 1000 else str(a.keys)
    header = [
        "store",
        "hot key `hit`",
        "hot key `await ahit`",
        f"{kk} keys `hit`",
        f"{kk} keys `await ahit`",
    ]
    body = []
    for store in STORES:
        if available[store] is not None:
            body.append([LABELS[store], *(["not available"] * 4)])
        else:
            body.append([LABELS[store], *(fmt_ns(one.get((store, c))) for c in columns)])
    print(f"## One decision, one process (ns per decision, best of {a.repeats})")
    print()
    print(table(header, body, right={1, 2, 3, 4}))
    print()
    for store in STORES:
        if available[store] is not None:
            print(f"- {LABELS[store]}: not available in this build/environment: {available[store]}")
    for note in notes:
        print(f"- {note}")
    print()

    def ratio(slow: str, fast: str, column: str) -> float | None:
        s, f = one.get((slow, column)), one.get((fast, column))
        if s is None or f is None or f == float("inf") or s == float("inf"):
            return None
        return s / f

    print("## Ratios of time per decision (one process)")
    print()
    bars: list[tuple[str, str, str, str, Callable[[float], bool] | None]] = [
        ("host ÷ memory", "host", "memory", "≤ 2x", lambda x: x <= 2.0),
        ("Redis ÷ host", "redis", "host", "≥ 50x", lambda x: x >= 50.0),
        ("pyrate SQLite ÷ host", "pyrate", "host", "≥ 20x", lambda x: x >= 20.0),
        ("Redis ÷ memory", "redis", "memory", "", None),
        ("pyrate SQLite ÷ memory", "pyrate", "memory", "", None),
    ]
    rbody = []
    verdicts: list[str] = []
    for label, slow, fast, bar, ok in bars:
        cells = [fmt_ratio(ratio(slow, fast, c)) for c in columns]
        verdict = ""
        hot = ratio(slow, fast, "hot sync")
        if ok is not None:
            verdict = "n/a" if hot is None else ("met" if ok(hot) else "NOT met")
            verdicts.append(f"{label} {bar} (hot key, sync): {fmt_ratio(hot)}, {verdict}")
        rbody.append([label, *cells, f"{bar} {verdict}".strip()])
    print(table(["ratio", *header[1:], "bar (hot key, sync)"], rbody, right={1, 2, 3, 4}))
    print()

    print(
        f"## Processes on ONE key: aggregate decisions/s (sync `hit`, {a.duration:g} s phases, "
        f"best of {a.rounds} rounds) and exactness ({EXACT_LIMIT}/day, {a.procs} x "
        f"{a.attempts:,} attempts)"
    )
    print()
    p = a.procs
    mheader = [
        "store",
        "1 process",
        f"{p} processes",
        f"{p} ÷ 1",
        f"admitted of {p * a.attempts:,}",
        "expected",
    ]
    mbody = []
    for m in multi:
        if available[m.store] is not None:
            mbody.append([LABELS[m.store], *(["not available"] * 5)])
            continue
        r1, rp = m.rate.get(1), m.rate.get(p)
        cells = [f"{x:,.0f}" if isinstance(x, float) else str(x) for x in (r1, rp)]
        scale = f"{rp / r1:.2f}x" if isinstance(r1, float) and isinstance(rp, float) else "n/a"
        expected = p * EXACT_LIMIT if m.store == "memory" else EXACT_LIMIT
        admitted = f"{m.admitted:,}" if isinstance(m.admitted, int) else m.admitted
        note = " (one budget per process)" if m.store == "memory" else ""
        mbody.append([LABELS[m.store], *cells, scale, admitted, f"{expected:,}{note}"])
    print(table(mheader, mbody, right={1, 2, 3, 4}))
    print()
    cpus = usable_cpus()
    print(
        f"- {a.procs} processes on {cpus} usable CPUs: an aggregate can grow at most "
        f"{min(cpus, a.procs)}x over one process (Redis rows: redis-server shares the CPUs too). "
        f"The memory store shares nothing between its processes: its {a.procs} ÷ 1 is the most "
        "this machine's free CPUs allowed in this run (other load on the machine lowers it)"
    )
    for note in mnotes:
        print(f"- {note}")
    print()

    print("## Bars (issue 14)")
    print()
    for v in verdicts:
        print(f"- {v}")
    host = next(m for m in multi if m.store == "host")
    r1, rp = host.rate.get(1), host.rate.get(p)
    mem = next(m for m in multi if m.store == "memory")
    m1, mp = mem.rate.get(1), mem.rate.get(p)
    control = ""
    if isinstance(m1, float) and isinstance(mp, float):
        control = f" (control, the memory store, nothing shared: {mp / m1:.2f}x)"
    if isinstance(r1, float) and isinstance(rp, float):
        verdict = f"{rp / r1:.2f}x, " + ("met" if rp > r1 else "NOT met") + control
        print(
            f"- host, {p} processes vs 1 on one key: {rp:,.0f} vs {r1:,.0f} decisions/s, {verdict}"
        )
    else:
        print(f"- host, {p} processes vs 1 on one key: n/a")
    for m in multi:
        if m.store == "memory":
            continue
        if isinstance(m.admitted, int):
            verdict = "exact" if m.admitted == EXACT_LIMIT else "NOT exact"
            print(
                f"- {LABELS[m.store]}: admitted {m.admitted:,} of limit {EXACT_LIMIT:,}, {verdict}"
            )
        else:
            print(f"- {LABELS[m.store]}: exactness n/a ({m.admitted})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter repeats, fewer rounds")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per row (5; quick 3)")
    parser.add_argument("--target-ms", type=float, default=None, help="one repeat (300; quick 100)")
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys (100,000)")
    parser.add_argument("--procs", type=int, default=4, help="processes on one key (4)")
    parser.add_argument("--duration", type=float, default=None, help="s a phase (0.5; quick 0.2)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (5; quick 3)")
    parser.add_argument(
        "--attempts",
        type=int,
        default=None,
        help="exactness attempts per process (5000; quick 2500)",
    )
    parser.add_argument(
        "--stores",
        default=",".join(STORES),
        help=f"which subjects, comma-separated (default: all of {','.join(STORES)})",
    )
    parser.add_argument(
        "--sqlite-dir", type=Path, default=None, help="where pyrate's SQLite file goes (temp dir)"
    )
    a = parser.parse_args()
    q = a.quick
    a.repeats = max(1, min(a.repeats or (3 if q else 5), 20))
    a.target_ms = max(10.0, min(a.target_ms or (100.0 if q else 300.0), 5_000.0))
    a.keys = max(1, min(a.keys, 5_000_000))
    a.procs = max(2, min(a.procs, 64))
    a.duration = max(0.05, min(a.duration or (0.2 if q else 0.5), 30.0))
    a.rounds = max(1, min(a.rounds or (3 if q else 5), 20))
    a.attempts = max(EXACT_LIMIT, min(a.attempts or (2_500 if q else 5_000), 1_000_000))

    started = time.perf_counter()
    rs = redis_servers()
    redis_bin = rs.redis_server_binary()
    print_header(
        "# seawall's memory, host and Redis stores vs pyrate-limiter's SQLite bucket",
        versions(redis_bin),
    )
    sqlite_dir = Path(tempfile.mkdtemp(prefix="seawall-stores-", dir=a.sqlite_dir))
    print(
        f"- limits: `{FAST_LIMIT}/second` for timing (every decision admitted), "
        f"`{EXACT_LIMIT}/day` for exactness; GCRA on seawall's stores, pyrate's sliding log "
        "(`Rate(10**6, 1 ms)`, `Rate(1000, 1 day)`); "
        f"max_keys {2 * a.keys:,}; pyrate's SQLite file in {sqlite_dir.parent} "
        f"({fs_type(sqlite_dir)}); redis-server on 127.0.0.1 (TCP), no persistence, not pinned"
    )
    print(
        f"- one process: ~{a.target_ms:g} ms a repeat, {a.repeats} repeats interleaved, best; "
        f"processes: spawn, {a.rounds} rounds of 1 then {a.procs} processes, {a.duration:g} s "
        "phases started on a barrier, best round"
    )
    print(flush=True)

    available: dict[str, str | None] = {
        "memory": None,
        "host": host_unavailable(),
        "redis": None if redis_bin is not None else "redis-server is not installed",
        "pyrate": pyrate_unavailable(),
    }
    chosen = {x.strip() for x in a.stores.split(",")}
    for store in STORES:
        if store not in chosen:
            available[store] = "left out (--stores)"
    server = None
    redis_url = None
    if available["redis"] is None:
        try:
            server = rs.RedisServer().start()
            redis_url = f"redis://127.0.0.1:{server.port}/0"
        except Exception as e:
            available["redis"] = f"redis-server did not start: {e}"
    res = Resources(redis_url, sqlite_dir)
    notes: list[str] = []
    mnotes: list[str] = []
    try:
        one = measure_one_process(a, res, available, notes)
        multi = measure_processes(a, res, available, mnotes)
    finally:
        res.close()
        if server is not None:
            server.close()
    report(a, one, notes, multi, mnotes, available)
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a timing script never fails a build: say what broke, exit 0
        traceback.print_exc()
    sys.exit(0)
