"""seawall's algorithms vs each other and vs ``limits``; seed 004's sliding log vs seawall's.

Prints markdown tables (pasteable into the README):

a. the cost of one decision for every ``seawall.Limiter`` algorithm, through ``allow(key)`` and
   ``hit(key)``, on a hot key and over 10,000 keys round-robin, with one limit and with three
   tiers, next to ``limits``' in-memory strategies for the same limits;
b. seed 004's ``RateLimiterService.check_and_record`` (a Python list of timestamps per client,
   rebuilt on every call: ``benches/seed004.py``) vs seawall's drop-in
   ``seawall.compat.fastmcp_example.RateLimiterService``, with 1,000 / 10,000 / 100,000 entries
   in the client's window.

Part a admits every call (``1000000000/second``, tiers ``.../minute`` and ``.../day`` at the same
count): the cost of a decision, not of a denial. The sliding window log keeps one entry per
admitted request in the window by design, so its state grows with the call rate; what it holds
after the rows is reported.

Timing: ``time.perf_counter_ns`` around N iterations of a plain ``for`` loop, best of 5 repeats,
cyclic GC disabled while timing. N is calibrated per row (doubling from 1) so that a repeat takes
about ``--target-ms``. Timings are never tests: this script always exits 0.

Run from the repository root::

    .venv/bin/python benches/compare_algorithms.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import limits
import seed004
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from timing import (
    SyncTimer,
    best_of,
    noop1,
    ns,
    plan_units,
    print_header,
    stop_timer,
    t_call1,
    t_call2,
    t_empty,
    t_keys1,
    t_keys2,
    table,
)

import seawall
from seawall.compat import fastmcp_example

ALGORITHMS = seawall.ALGORITHMS
BIG = 1_000_000_000
SINGLE = f"{BIG}/second"
TIERED = f"{BIG}/second; {BIG}/minute; {BIG}/day"
CONFIGS = (("1 limit", SINGLE), ("3 tiers", TIERED))
HOT_KEY = "client-0"
N_KEYS = 10_000
# seawall algorithm -> the limits strategy with the same semantics.
LIMITS_MATCH: dict[str, type[RateLimiter]] = {
    "fixed_window": FixedWindowRateLimiter,
    "sliding_window_log": MovingWindowRateLimiter,
    "sliding_window_counter": SlidingWindowCounterRateLimiter,
}

# Part b
LOG_SIZES = (1_000, 10_000, 100_000)
LOG_WINDOW = 3600  # seconds: nothing expires during the run
CLIENT = "mcp_session_bench"
MAX_SHORT_REPEATS = 200
NEED_SPEEDUP = 1000.0


@dataclass(frozen=True)
class Settings:
    target_ns: int
    repeats: int


@dataclass(frozen=True)
class Measured:
    ns: float  # best ns per call
    calls: int  # calls per timed repeat
    repeats: int


# --------------------------------------------------------------------------------------------
# Measurement core


def _nothing() -> None:
    pass


def measure(
    timer: SyncTimer,
    s: Settings,
    *,
    unit_size: int = 1,
    prepare: Callable[[], None] = _nothing,
    cap: int | None = None,
) -> Measured:
    """``timer(n)`` runs ``n`` units of ``unit_size`` calls and returns the elapsed ns.

    ``prepare`` runs (untimed) before every call of ``timer``, calibration included. ``cap``
    bounds the units per repeat; when it binds, the repeats are shorter and more numerous (up to
    ``MAX_SHORT_REPEATS``) so that about one target's worth of calls is still timed in all.
    """
    most = cap if cap is not None else 1 << 40
    n = 1
    while True:  # doubling calibration, which also warms up (and creates the keys)
        prepare()
        elapsed = timer(n)
        if elapsed >= s.target_ns // 20 or n >= most:
            break
        n = min(n * 2, most)
    planned = plan_units(elapsed, n, s.target_ns)
    per = min(planned, most)
    repeats = s.repeats
    if per < planned:
        repeats = min(MAX_SHORT_REPEATS, max(s.repeats, math.ceil(planned / per)))
    best = best_of(timer, per, repeats, prepare)
    return Measured(best / (per * unit_size), per * unit_size, repeats)


# Loop bodies. Each binds what it calls to locals before starting the clock.


CheckAndRecord = Callable[..., tuple[bool, dict[str, Any]]]


def t_check_and_record(fn: CheckAndRecord, client: str, limit: int, window: int) -> SyncTimer:
    def timer(n: int) -> int:
        f, c, lim, w = fn, client, limit, window
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(c, limit=lim, window=w)
        return time.perf_counter_ns() - t0

    return timer


def rss_bytes() -> int:
    """Current resident set size (Linux), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Broken(Exception):
    """A benchmark precondition does not hold (a call was denied that must be admitted, ...)."""


# --------------------------------------------------------------------------------------------
# Part a: seawall's algorithms


@dataclass(frozen=True)
class AlgRow:
    algorithm: str
    config: str
    hot_allow: Measured
    hot_hit: Measured
    keys_allow: Measured
    keys_hit: Measured
    hot_entries: int  # requests counted in the key's window after the hot rows
    hot_rss: int  # RSS growth over the hot rows, limiter alive
    keys_entries: int
    keys_rss: int


def _held(limiter: seawall.Limiter, keys: list[str]) -> int:
    """Requests counted in the window (the most loaded tier) summed over ``keys``."""
    total = 0
    for k in keys:
        d = limiter.test(k)
        total += d.limit - d.remaining
    return total


def _check_limiter(name: str, limiter: seawall.Limiter, nkeys: int) -> None:
    st = limiter.stats()
    if st["limited"] or st["evicted"] or len(limiter) != nkeys:
        raise Broken(f"{name}: stats {st}, {len(limiter)} keys held of {nkeys}")
    if not limiter.allow(HOT_KEY):
        raise Broken(f"{name}: a call was denied; every call must be admitted")


def run_algorithm(algorithm: str, config: str, spec: str, keys: list[str], s: Settings) -> AlgRow:
    name = f"seawall {algorithm} ({config})"

    before = rss_bytes()
    limiter = seawall.Limiter(spec, algorithm=algorithm)
    first = limiter.hit(HOT_KEY)
    if not first.allowed or first.limit != BIG:
        raise Broken(f"{name}: first call {first!r} not admitted under limit {BIG}")
    hot_allow = measure(t_call1(limiter.allow, HOT_KEY), s)
    hot_hit = measure(t_call1(limiter.hit, HOT_KEY), s)
    _check_limiter(name, limiter, 1)
    hot_entries = _held(limiter, [HOT_KEY])
    hot_rss = rss_bytes() - before
    del limiter
    gc.collect()

    before = rss_bytes()
    limiter = seawall.Limiter(spec, algorithm=algorithm, max_keys=max(1_000_000, len(keys)))
    keys_allow = measure(t_keys1(limiter.allow, keys), s, unit_size=len(keys))
    keys_hit = measure(t_keys1(limiter.hit, keys), s, unit_size=len(keys))
    _check_limiter(name, limiter, len(keys))
    keys_entries = _held(limiter, keys)
    keys_rss = rss_bytes() - before
    del limiter
    gc.collect()

    return AlgRow(
        algorithm,
        config,
        hot_allow,
        hot_hit,
        keys_allow,
        keys_hit,
        hot_entries,
        hot_rss,
        keys_entries,
        keys_rss,
    )


# --------------------------------------------------------------------------------------------
# Part a: limits


@dataclass(frozen=True)
class LimitsRow:
    strategy: type[RateLimiter]
    config: str
    hot: Measured | None  # None: skipped (see the note printed with the table)
    keys: Measured


def _limits_timer(
    limiter: RateLimiter, items: list[limits.RateLimitItem], keys: list[str] | None
) -> SyncTimer:
    if len(items) == 1:
        if keys is None:
            return t_call2(limiter.hit, items[0], HOT_KEY)
        return t_keys2(limiter.hit, items[0], keys)
    h = limiter.hit
    i1, i2, i3 = items

    def hit3(key: str) -> bool:
        # Each tier in turn, as flask-limiter / slowapi do; not atomic (a denial by a later tier
        # leaves the earlier tiers counted), which never happens here: every call is admitted.
        return h(i1, key) and h(i2, key) and h(i3, key)

    return t_call1(hit3, HOT_KEY) if keys is None else t_keys1(hit3, keys)


def measure_limits(
    cls: type[RateLimiter], spec: str, keys: list[str] | None, s: Settings
) -> Measured:
    storage = MemoryStorage()
    limiter = cls(storage)
    items = [limits.parse(part) for part in spec.split(";")]
    try:
        unit = 1 if keys is None else len(keys)
        m = measure(_limits_timer(limiter, items, keys), s, unit_size=unit)
        if not all(limiter.hit(item, HOT_KEY) for item in items):
            raise Broken(f"limits {cls.__name__}: a call was denied; every call must be admitted")
    finally:
        stop_timer(storage)
    del limiter, storage
    gc.collect()
    return m


def run_limits(keys: list[str], s: Settings) -> list[LimitsRow]:
    rows: list[LimitsRow] = []
    for config, spec in CONFIGS:
        for cls in LIMITS_MATCH.values():
            # The moving window inserts each hit at the front of a Python list holding every
            # hit of the window: with a day-long tier on one hot key that list never shrinks
            # during the run, so each row would be slower than the one before (quadratic).
            skip_hot = cls is MovingWindowRateLimiter and spec == TIERED
            hot = None if skip_hot else measure_limits(cls, spec, None, s)
            rows.append(LimitsRow(cls, config, hot, measure_limits(cls, spec, keys, s)))
    return rows


# --------------------------------------------------------------------------------------------
# Part b: seed 004's sliding log vs seawall's


SEED_LOGGER = seed004.logger.name
SEAWALL_LOGGER = fastmcp_example.logger.name


def configure_logging(emit_warnings: bool) -> None:
    """Both services log a WARNING per denied call. With Python's default configuration those
    would reach stderr through ``logging.lastResort``; here they go to a ``NullHandler``, either
    dropped by the logger's level (``emit_warnings`` false: a cached level check per call) or
    created as ``LogRecord`` s and handled by the no-op handler. DEBUG / INFO are dropped either
    way."""
    for name in (SEED_LOGGER, SEAWALL_LOGGER):
        lg = logging.getLogger(name)
        lg.handlers = [logging.NullHandler()]
        lg.propagate = False
        lg.setLevel(logging.WARNING if emit_warnings else logging.ERROR)


def fill_seed(svc: seed004.RateLimiterService, n: int) -> Callable[[], None]:
    """Puts ``n`` timestamps of the last 0.1 s in the client's list directly (filling it through
    ``check_and_record`` would take O(n^2))."""

    def prepare() -> None:
        base = time.time() - 1.0
        svc._request_log[CLIENT] = [base + i * 1e-6 for i in range(n)]

    return prepare


def fill_seawall(svc: fastmcp_example.RateLimiterService, n: int) -> Callable[[], None]:
    """Forgets the client and admits ``n`` requests for it through ``check_and_record``."""

    def prepare() -> None:
        svc.reset(CLIENT)
        record = svc.check_and_record
        admitted = 0
        for _ in range(n):
            admitted += record(CLIENT, limit=n, window=LOG_WINDOW)[0]
        if admitted != n:
            raise Broken(f"seawall prefill: {admitted} of {n} admitted")

    return prepare


def seawall_held(svc: fastmcp_example.RateLimiterService) -> int:
    """Requests in the client's window (records one more if there is room below 2**62)."""
    big = 1 << 62
    allowed, info = svc.check_and_record(CLIENT, limit=big, window=LOG_WINDOW)
    return big - int(info["remaining"]) - (1 if allowed else 0)


@dataclass(frozen=True)
class LogRow:
    entries: int
    variant: str
    seed: Measured
    sw: Measured
    seed_after: int  # entries in the window after the last repeat
    sw_after: int


def log_denied(n: int, emit: bool, s: Settings) -> LogRow:
    configure_logging(emit)
    variant = "denied, WARNING " + ("emitted (NullHandler)" if emit else "dropped by level")

    seed = seed004.RateLimiterService()
    fill_seed(seed, n)()
    allowed, info = seed.check_and_record(CLIENT, limit=n, window=LOG_WINDOW)
    if allowed or info["remaining"] != 0:
        raise Broken(f"seed-style at {n}: expected a denial, got {allowed}, {info}")
    m_seed = measure(t_check_and_record(seed.check_and_record, CLIENT, n, LOG_WINDOW), s)
    seed_after = len(seed._request_log[CLIENT])

    sw = fastmcp_example.RateLimiterService()
    fill_seawall(sw, n)()
    allowed, info = sw.check_and_record(CLIENT, limit=n, window=LOG_WINDOW)
    if allowed or info["remaining"] != 0:
        raise Broken(f"seawall at {n}: expected a denial, got {allowed}, {info}")
    m_sw = measure(t_check_and_record(sw.check_and_record, CLIENT, n, LOG_WINDOW), s)
    # Exactly n held: one more fits under n + 1, a second does not.
    first = sw.check_and_record(CLIENT, limit=n + 1, window=LOG_WINDOW)[0]
    second = sw.check_and_record(CLIENT, limit=n + 1, window=LOG_WINDOW)[0]
    if not first or second:
        raise Broken(f"seawall at {n}: log does not hold exactly {n} ({first}, {second})")
    if seed_after != n:
        raise Broken(f"seed-style at {n}: log holds {seed_after}")
    return LogRow(n, variant, m_seed, m_sw, seed_after, n)


def log_admitted(n: int, s: Settings) -> LogRow:
    configure_logging(False)
    cap = max(1, n // 10)
    limit = 1 << 62
    variant = f"admitted, log grows {n:,} -> <= {n + cap:,}, refilled per repeat"

    seed = seed004.RateLimiterService()
    timer = t_check_and_record(seed.check_and_record, CLIENT, limit, LOG_WINDOW)
    m_seed = measure(timer, s, prepare=fill_seed(seed, n), cap=cap)
    seed_after = len(seed._request_log[CLIENT])

    sw = fastmcp_example.RateLimiterService()
    timer = t_check_and_record(sw.check_and_record, CLIENT, limit, LOG_WINDOW)
    m_sw = measure(timer, s, prepare=fill_seawall(sw, n), cap=cap)
    sw_after = seawall_held(sw)
    for who, after in (("seed-style", seed_after), ("seawall", sw_after)):
        if not n < after <= n + cap:
            raise Broken(f"{who} admitted at {n}: log holds {after}, expected ({n}, {n + cap}]")
    return LogRow(n, variant, m_seed, m_sw, seed_after, sw_after)


def run_logs(s: Settings) -> list[LogRow]:
    rows: list[LogRow] = []
    try:
        for n in LOG_SIZES:
            rows.append(log_denied(n, False, s))
            rows.append(log_denied(n, True, s))
            rows.append(log_admitted(n, s))
            gc.collect()
    finally:
        configure_logging(False)
    return rows


# --------------------------------------------------------------------------------------------
# Output


def times(x: float) -> str:
    """A ratio: 2 decimals near 1, whole numbers when large."""
    if x >= 100:
        return f"{x:,.0f}x"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def mb(x: int) -> str:
    return f"{x / 1e6:,.1f} MB"


def algorithms_table(rows: list[AlgRow]) -> str:
    gcra = next(r for r in rows if r.algorithm == "gcra")
    header = [
        "algorithm",
        "hot `allow`",
        "/ gcra",
        "hot `hit`",
        "/ gcra",
        f"{N_KEYS:,} keys `allow`",
        "/ gcra",
        f"{N_KEYS:,} keys `hit`",
        "/ gcra",
    ]
    out: list[list[str]] = []
    for r in rows:
        cells = [f"`{r.algorithm}`"]
        for mine, ref in (
            (r.hot_allow, gcra.hot_allow),
            (r.hot_hit, gcra.hot_hit),
            (r.keys_allow, gcra.keys_allow),
            (r.keys_hit, gcra.keys_hit),
        ):
            cells += [ns(mine.ns), times(mine.ns / ref.ns)]
        out.append(cells)
    return table(header, out, set(range(1, 9)))


def limits_table(lim: list[LimitsRow], alg: list[AlgRow]) -> str:
    by = {(r.algorithm, r.config): r for r in alg}
    match = {cls: a for a, cls in LIMITS_MATCH.items()}
    header = [
        "limits strategy + `MemoryStorage`",
        "limits",
        "seawall match",
        "hot: limits ns",
        "seawall `allow` speedup",
        "seawall `hit` speedup",
        f"{N_KEYS:,} keys: limits ns",
        "seawall `allow` speedup",
        "seawall `hit` speedup",
    ]
    out: list[list[str]] = []
    for r in lim:
        sw = by[(match[r.strategy], r.config)]
        if r.hot is None:
            hot = ["skipped (see note)", "", ""]
        else:
            h = r.hot.ns
            hot = [ns(h), times(h / sw.hot_allow.ns), times(h / sw.hot_hit.ns)]
        k = r.keys.ns
        keys = [ns(k), times(k / sw.keys_allow.ns), times(k / sw.keys_hit.ns)]
        out.append([f"`{r.strategy.__name__}`", r.config, f"`{sw.algorithm}`", *hot, *keys])
    return table(header, out, {3, 4, 5, 6, 7, 8})


def state_table(rows: list[AlgRow]) -> str:
    header = [
        "algorithm",
        "limits",
        "hot key: requests in window",
        "hot key: RSS growth",
        f"{N_KEYS:,} keys: requests in windows",
        f"{N_KEYS:,} keys: RSS growth",
    ]
    out: list[list[str]] = []
    for r in rows:
        if r.algorithm == "sliding_window_log":
            he, ke = f"{r.hot_entries:,}", f"{r.keys_entries:,}"
        else:
            he = ke = "(not a log)"
        out.append([f"`{r.algorithm}`", r.config, he, mb(r.hot_rss), ke, mb(r.keys_rss)])
    return table(header, out, {2, 3, 4, 5})


def logs_table(rows: list[LogRow]) -> str:
    header = [
        "entries in window",
        "variant",
        "seed-style ns/call",
        "seawall ns/call",
        "seawall speedup",
        "calls/repeat x repeats (seed-style; seawall)",
        "entries after (seed-style; seawall)",
    ]
    out = [
        [
            f"{r.entries:,}",
            r.variant,
            ns(r.seed.ns),
            ns(r.sw.ns),
            times(r.seed.ns / r.sw.ns),
            f"{r.seed.calls:,} x {r.seed.repeats}; {r.sw.calls:,} x {r.sw.repeats}",
            f"{r.seed_after:,}; {r.sw_after:,}",
        ]
        for r in rows
    ]
    return table(header, out, {0, 2, 3, 4, 6})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (~20 ms repeats, 3 of)")
    parser.add_argument("--target-ms", type=float, default=None, help="time per repeat")
    args = parser.parse_args()
    target_ms = args.target_ms if args.target_ms is not None else (20.0 if args.quick else 200.0)
    s = Settings(target_ns=int(target_ms * 1e6), repeats=3 if args.quick else 5)
    configure_logging(False)

    started = time.perf_counter()
    print_header(
        "# seawall's algorithms vs limits; seed 004's sliding log vs seawall's",
        {"seawall": seawall.__version__, "limits": limits.__version__},
    )
    print(
        f"- method: perf_counter_ns around a plain `for` loop, best of {s.repeats} repeats of "
        f"~{target_ms:g} ms (calls per repeat calibrated per row), GC off while timing"
    )
    print(
        f"- part a: every call admitted: `{SINGLE}`, or the 3 tiers `{TIERED}`, "
        "for seawall and limits alike; admissions checked after each row"
    )
    print(flush=True)

    keys = [f"client-{i}" for i in range(N_KEYS)]
    floor = [
        ("empty `for` loop (per iteration)", measure(t_empty(), s)),
        ("no-op Python call `f(key)`, hot", measure(t_call1(noop1, HOT_KEY), s)),
        (
            f"no-op Python call `f(key)` over {N_KEYS:,} keys",
            measure(t_keys1(noop1, keys), s, unit_size=N_KEYS),
        ),
    ]
    print("## Floor")
    print()
    print(table(["floor", "ns/call"], [[label, ns(m.ns)] for label, m in floor], {1}))
    print(flush=True)

    alg_rows: list[AlgRow] = []
    for config, spec in CONFIGS:
        rows = [run_algorithm(a, config, spec, keys, s) for a in ALGORITHMS]
        alg_rows += rows
        print(f"## a. seawall `Limiter`, {config} (`{spec}`): ns/decision, and / gcra's")
        print()
        print(algorithms_table(rows))
        print()
        print(
            f"Hot: one key, always the same. {N_KEYS:,} keys: round-robin, every key created "
            "before timing. `allow` returns a bool, `hit` a `Decision`."
        )
        print(flush=True)

    lim_rows = run_limits(keys, s)
    print("## a. limits' in-memory strategies vs the matching seawall algorithm")
    print()
    print(limits_table(lim_rows, alg_rows))
    print()
    print(
        "limits: `strategy.hit(item, key)` (returns a bool, like seawall's `allow`); for 3 tiers "
        "a Python function hitting each tier in turn (`hit(i1, k) and hit(i2, k) and hit(i3, "
        "k)`), as flask-limiter and slowapi do, which adds one Python call (~the floor above). "
        "Skipped: the moving window with a day-long tier on one hot key; it inserts every hit at "
        "the front of a Python list holding the whole window, so with nothing expiring each call "
        "is slower than the last (O(hits so far)) and no number would be stable. limits' "
        "`MemoryStorage` expires events from a background thread (~every 10 ms while hits "
        "arrive); it shares the GIL and its cost is included. Its moving window's cost grows with "
        "the hit rate (one list entry per hit in the window)."
    )
    print(flush=True)

    print("## a. State held after the rows (seawall)")
    print()
    print(state_table(alg_rows))
    print()
    print(
        "The sliding window log is exact because it keeps one entry (16 bytes) per admitted "
        "request in the window (requests at the same nanosecond share one): at these limits, "
        "that is every call of the last second, and for 3 tiers every call of the run (the "
        "day tier). The other algorithms hold a few words per key. RSS growth is measured from "
        "before the limiter was built to after its rows, with the limiter alive; it is "
        "approximate (allocator reuse and page granularity)."
    )
    print(flush=True)

    log_rows = run_logs(s)
    print("## b. Seed 004's sliding log vs seawall's, one client, `check_and_record`")
    print()
    print(logs_table(log_rows))
    print()
    print(
        f"`check_and_record(client, limit=L, window={LOG_WINDOW})` on one client whose window "
        "holds N entries (nothing expires during the run). Denied: `L = N`, so every call is "
        "denied and the log stays at exactly N (checked after the rows); the seed-style still "
        "rebuilds the whole list on each call. Admitted: `L = 2**62`; each call appends, so the "
        "log is refilled before every repeat and a repeat makes at most N/10 calls (more, shorter "
        "repeats when that binds: best of them). Seed-style (benches/seed004.py) is filled by "
        "assigning the list (through `check_and_record` it would take O(N^2)); seawall "
        "(`seawall.compat.fastmcp_example.RateLimiterService`) through N admitted calls. The "
        "seed-style logs a WARNING per denial (and a DEBUG per admission, dropped by level in "
        "every row); seawall logs a denial at DEBUG. 'emitted' rows send the WARNING to a "
        "`NullHandler`; a real handler (file, console) costs more."
    )
    print()
    print("## b. Checks (informational; timings are never tests)")
    print()
    for r in log_rows:
        if r.entries != LOG_SIZES[-1]:
            continue
        speedup = r.seed.ns / r.sw.ns
        verdict = "PASS" if speedup >= NEED_SPEEDUP else "FAIL"
        print(
            f"check: {r.entries:,} entries, {r.variant}: seawall >= {NEED_SPEEDUP:g}x faster "
            f"than seed-style: {speedup:,.0f}x {verdict}"
        )
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
