"""Bytes per key held by seawall's in-memory limiters, as the README reports them.

``python benches/memory_per_key.py [--keys N]`` (default 1,000,000). For each configuration it
creates N keys (short ids, 7 characters, inline in the record; and 24-character ids, which need a
heap copy), then prints two figures per key: ``memory_bytes()`` (the library's exact count of the
heap it asked for: records, index, boxed states, log entries, overrides; no allocator overhead) and
the growth of the process's resident set (what the allocator really took). Memory, not time: it
is safe to run on a busy machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from collections.abc import Callable

from seawall import ClientRateLimiter, Limiter, TokenBucketConfig


def rss_bytes() -> int:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


Make = Callable[[int], tuple[Callable[[str], object], Callable[[], int]]]


def limiter(limits: str, algorithm: str = "gcra") -> Make:
    def make(n: int) -> tuple[Callable[[str], object], Callable[[], int]]:
        lim = Limiter(limits, algorithm=algorithm, max_keys=n)
        return (lambda k: lim.hit(k, 1)), lim.memory_bytes

    return make


def clients(n: int) -> tuple[Callable[[str], object], Callable[[], int]]:
    lim = ClientRateLimiter(TokenBucketConfig(10, 1.0, 10), max_clients=n)
    return (lambda k: lim.try_consume(k)), lim.memory_bytes


CONFIGS: list[tuple[str, Make]] = [
    ("ClientRateLimiter", clients),
    ('Limiter("10/second")', limiter("10/second")),
    ('Limiter("10/second; 1000/day")', limiter("10/second; 1000/day")),
    ('Limiter("10/second; 100/minute; 1000/day")', limiter("10/second; 100/minute; 1000/day")),
    ('Limiter("10/second", fixed_window)', limiter("10/second", "fixed_window")),
    (
        'Limiter("10/second", sliding_window_counter)',
        limiter("10/second", "sliding_window_counter"),
    ),
    ('Limiter("10/second", sliding_window_log), 1 hit', limiter("10/second", "sliding_window_log")),
]


def measure(make: Make, n: int, key_len: int) -> tuple[float, float]:
    keys = [f"k{i:0{key_len - 1}d}" for i in range(n)]
    gc.collect()
    before_rss = rss_bytes()
    hit, memory_bytes = make(n)
    base = memory_bytes()
    for k in keys:
        hit(k)
    return (memory_bytes() - base) / n, (rss_bytes() - before_rss) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--one", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.keys
    if args.one:
        # One measurement in a fresh process, so that memory freed by another is not reused.
        index, key_len = args.one
        heap, rss = measure(CONFIGS[index][1], n, key_len)
        print(f"{heap:.0f} {rss:.0f}")
        return
    print(f"{n:,} keys; bytes per key: memory_bytes() / RSS growth")
    print(f"{'configuration':<52} {'7-char ids':>14} {'24-char ids':>14}")
    for index, (name, _) in enumerate(CONFIGS):
        cells = []
        for key_len in (7, 24):
            out = subprocess.run(
                [sys.executable, __file__, "--keys", str(n), "--one", str(index), str(key_len)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            cells.append(f"{out[0]:>6} / {out[1]:>5}")
        print(f"{name:<52} {cells[0]} {cells[1]}")


if __name__ == "__main__":
    main()
