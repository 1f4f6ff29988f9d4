"""seawall's rules engine on Redis vs the same rules done the seed's way on the ``limits``
library's async Redis storage: decisions/s from 1 and from 64 concurrent asyncio tasks.

A service that shares seed 002's rules across workers and hosts, without seawall, would select
the rule in Python and count it with a Redis limiter; ``limits`` (with its async Redis storage)
is the library it would pick. One process, one run, one redis-server this script starts
(``tests/redis_servers.py``; no persistence, loopback, a free port), pinned to CPU 1 while the
client is pinned to CPU 0 when both are usable (as ``benches/compare_redis.py`` does).

Ten rules, as in ``benches/compare_rules.py``: nine with endpoint filters that the request does
not match and one per-user default rule of 1e9 per hour (every decision admitted), each task on
its own identifier. Rows:

- seawall ``await engine.adecide(identifier, endpoint=..., default="api")`` (selection and
  decision in one native call, one script call on Redis), and ``await engine.acheck("api", id)``
  (a named rule);
- the seed's way: the same selection in Python (the first matching rule by priority, else the
  default; ``fnmatch`` for the endpoint globs), the key ``"{rule}:{scope}:{identifier}"``, then
  ``await FixedWindowRateLimiter(RedisStorage(...)).hit(item, key)`` (``limits``' fastest
  strategy, its default coredis client);
- the floor: seawall ``RedisLimiter.ahit(key)`` (one script call, no rules);
- the sync ``engine.check`` from one thread.

Rounds are interleaved, each row's best kept. Timings are never tests: this script always exits 0.

    .venv/bin/python benches/compare_rules_redis.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_redis import (
    CLIENT_CPU,
    SERVER_CPU,
    Row,
    async_row,
    calibrate,
    fmt_rate,
    pin_client,
    redis_servers,
    sync_row,
    versions,
)
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from timing import print_header, table

import seawall
from seawall.rules import RulesEngine

RATE = 1_000_000_000
RULES = [
    {
        "name": f"other{i}",
        "scope": "per_user",
        "rate": RATE,
        "window_seconds": 3600,
        "endpoints": [f"/other/{i}/*"],
        "priority": i,
    }
    for i in range(9)
] + [{"name": "api", "scope": "per_user", "rate": RATE, "window_seconds": 3600}]
ENDPOINT = "/api/items"


class SeedSelection:
    """The seed's selection in Python: rules by priority, endpoint globs, else the default."""

    def __init__(self) -> None:
        self.rules = sorted(
            (r for r in RULES if r.get("endpoints")), key=lambda r: -int(r["priority"])
        )
        self.default = next(r for r in RULES if r["name"] == "api")

    def select(self, endpoint: str) -> dict[str, object]:
        for rule in self.rules:
            if any(fnmatch.fnmatchcase(endpoint, e) for e in rule["endpoints"]):  # type: ignore[attr-defined]
                return rule
        return self.default


async def measure(port: int, a: argparse.Namespace) -> list[Row]:
    url = f"redis://127.0.0.1:{port}/0"
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    engine = RulesEngine(store=url, key_prefix=prefix + "r:")
    for rule in RULES:
        engine.add_rule(rule)
    floor = seawall.RedisLimiter(f"{RATE}/hour", store=url, key_prefix=prefix + "f:")
    storage = RedisStorage(f"async+redis://127.0.0.1:{port}/0")
    fixed = FixedWindowRateLimiter(storage)
    items = {r["name"]: parse(f"{RATE}/hour") for r in RULES}
    seed = SeedSelection()

    async def sw_decide(identifier: str) -> object:
        return await engine.adecide(identifier, endpoint=ENDPOINT, default="api")

    async def sw_check(identifier: str) -> object:
        return await engine.acheck("api", identifier)

    async def seed_way(identifier: str) -> bool:
        rule = seed.select(ENDPOINT)
        key = f"{rule['name']}:{rule['scope']}:{identifier}"
        return await fixed.hit(items[str(rule["name"])], key)

    def sw_check_sync(identifier: str) -> object:
        return engine.check("api", identifier)

    rows: list[Row] = []
    for tasks in (1, 64):
        rows += [
            async_row("seawall `adecide` (select + decide, 10 rules)", sw_decide, tasks, "d"),
            async_row("seawall `acheck` (named rule)", sw_check, tasks, "c"),
            async_row("seed's way: Python selection + limits fixed window", seed_way, tasks, "s"),
            async_row("floor: seawall `RedisLimiter.ahit` (no rules)", floor.ahit, tasks, "f"),
        ]
    rows.append(sync_row("seawall `check` (sync)", sw_check_sync))
    for row in rows:
        await calibrate(row, a.target_ms / 1000)
    for r in range(a.rounds):
        for i in range(len(rows)):
            row = rows[(i + r) % len(rows)]
            x = await row.run(row.n)
            row.rounds.append(x)
            row.best = max(row.best, x)
    return rows


def report(rows: list[Row]) -> None:
    def find(label: str, tasks: int) -> Row:
        return next(r for r in rows if r.label.startswith(label) and r.tasks == tasks)

    header = [
        "client",
        "1 task (dec/s)",
        "µs/decision",
        "64 tasks (dec/s)",
        "seawall adecide ÷ this",
    ]
    body: list[list[str]] = []
    sw1, sw64 = find("seawall `adecide`", 1), find("seawall `adecide`", 64)
    for label in [r.label for r in rows if r.tasks == 1]:
        one, many = find(label, 1), find(label, 64)
        ratio = (
            "—"
            if label.startswith("seawall `adecide`")
            else f"{sw1.best / one.best:.2f}x / {sw64.best / many.best:.2f}x"
        )
        body.append(
            [label, fmt_rate(one.best), f"{1e6 / one.best:.1f}", fmt_rate(many.best), ratio]
        )
    sync = next(r for r in rows if r.tasks == 0)
    body.append([sync.label, fmt_rate(sync.best), f"{1e6 / sync.best:.1f}", "—", "—"])
    print(table(header, body, right={1, 2, 3}))
    print()
    seed1 = find("seed's way", 1)
    seed64 = find("seed's way", 64)
    print(
        f"- seawall's rules on Redis against the seed's way on limits: "
        f"{sw1.best / seed1.best:.1f}x from 1 task, {sw64.best / seed64.best:.1f}x from 64 tasks"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter repeats")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    a = parser.parse_args()
    a.rounds = max(1, min(a.rounds, 10))
    a.target_ms = 150.0 if a.quick else 500.0
    started = time.perf_counter()
    rs = redis_servers()
    if rs.redis_server_binary() is None or shutil.which("redis-server") is None:
        print("redis-server not installed (Debian: redis-server)")
        return 0
    print_header("# seawall's rules engine on Redis vs the seed's way on `limits`", versions())
    note = pin_client()
    pinned = note.startswith("redis-server")
    server = rs.RedisServer(cpu=SERVER_CPU if pinned else None)
    print(f"- {note}; 10 rules, every decision admitted, one identifier per task")
    print(flush=True)
    try:
        server.start()
        rows = asyncio.run(measure(server.port, a))
    finally:
        server.close()
    report(rows)
    print(f"\ntotal run time: {time.perf_counter() - started:.0f} s (client CPU {CLIENT_CPU})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
