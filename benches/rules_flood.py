"""Seed 002's metrics under a flood: memory after N distinct identifiers are refused.

A client that rotates its identifier, its address and the path it asks for makes every refused
request a new key. Seed 002 counts violations in dicts keyed by user, IP and endpoint (its
``violations_by_user`` and ``violations_by_endpoint``, section "Monitoring"), so they grow with
the flood; seawall keeps each as a bounded top-1,000 (space-saving), and a rule's budgets as at
most ``max_keys`` keys.

Each subject runs in a fresh process (``multiprocessing``, spawn), which records its resident
set size (``/proc/self/statm``) after warming up and after N refused requests, each with a new
identifier, a new client address and a new path:

- seawall: ``RulesEngine().check("flood", f"user:{i}", endpoint=..., ip_address=...)`` on a
  GLOBAL rule of 1 per hour (every request after the first is refused), then a PER_USER rule of
  1 per hour asked twice per identifier (every identifier gets a budget, and a refusal):
  ``max_keys`` (100,000 here) bounds the budgets;
- seed-style: the seed's metrics as its document describes them: three ``defaultdict(int)``
  violation counters plus the totals, updated per refused request (the bench's
  ``compare_rules.SeedRulesEngine`` keeps the same dicts).

Figures are RSS growth in MiB and the entries each violation counter keeps. Linux only (it reads
``/proc``). Timings are not the point; the script always exits 0.

    .venv/bin/python benches/rules_flood.py [--identifiers N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from collections import defaultdict
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def seawall_global(n: int) -> dict[str, Any]:
    from seawall.rules import RulesEngine

    engine = RulesEngine()
    engine.add_rule({"name": "flood", "scope": "global", "rate": 1, "window_seconds": 3600})
    check = engine.check
    for i in range(2000):  # warm up: allocator, top-K slots
        check("flood", f"warm:{i}", endpoint=f"/w/{i}", ip_address=address(i))
    engine.reset_metrics()
    before = rss()
    for i in range(n):
        check("flood", f"user:{i}", endpoint=f"/p/{i}", ip_address=address(i))
    after = rss()
    m = engine.get_metrics("flood")
    return {
        "growth": after - before,
        "denied": m["denied_requests"],
        "kept": max(len(m[k]["entries"]) for k in m if k.startswith("violations_")),
        "budgets": 1,
    }


def seawall_per_user(n: int) -> dict[str, Any]:
    from seawall.rules import RulesEngine

    engine = RulesEngine(max_keys=100_000)
    engine.add_rule({"name": "flood", "scope": "per_user", "rate": 1, "window_seconds": 3600})
    check = engine.check
    for i in range(2000):
        check("flood", f"warm:{i}")
    before = rss()
    for i in range(n):
        who, path, ip = f"user:{i}", f"/p/{i}", address(i)
        check("flood", who, endpoint=path, ip_address=ip)
        check("flood", who, endpoint=path, ip_address=ip)
    after = rss()
    m = engine.get_metrics("flood")
    return {
        "growth": after - before,
        "denied": m["denied_requests"],
        "kept": max(len(m[k]["entries"]) for k in m if k.startswith("violations_")),
        "budgets": 100_000,
    }


def seed_style(n: int) -> dict[str, Any]:
    by_user: defaultdict[str, int] = defaultdict(int)
    by_ip: defaultdict[str, int] = defaultdict(int)
    by_endpoint: defaultdict[str, int] = defaultdict(int)
    denied = 0
    for i in range(2000):
        by_user[f"warm:{i}"] += 1
    before = rss()
    for i in range(n):
        denied += 1
        by_user[f"user:{i}"] += 1
        by_ip[address(i)] += 1
        by_endpoint[f"/p/{i}"] += 1
    after = rss()
    return {
        "growth": after - before,
        "denied": denied,
        "kept": max(len(by_user), len(by_ip), len(by_endpoint)),
        "budgets": 0,
    }


SUBJECTS = {
    "seawall GLOBAL rule (every request refused)": seawall_global,
    "seawall PER_USER rule (a budget and a refusal per identifier)": seawall_per_user,
    "seed-style violation dicts (as documented)": seed_style,
}


def run(name: str, n: int, out: Any) -> None:
    out.put((name, SUBJECTS[name](n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for name in SUBJECTS:
        q = ctx.Queue()
        p = ctx.Process(target=run, args=(name, args.identifiers, q))
        p.start()
        rows.append(q.get(timeout=600))
        p.join(60)
    n = args.identifiers
    print(f"\n## {n:,} distinct identifiers, addresses and paths, refused\n")
    print("| subject | refusals counted | most entries in a violation counter | RSS growth MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in rows:
        print(f"| {name} | {r['denied']:,} | {r['kept']:,} | {r['growth'] / 2**20:,.1f} |")
    print(
        "\nseawall's violation counters keep 1,000 entries each whatever the flood; a PER_USER "
        "rule's budgets stop at max_keys (100,000 here), the least useful going first."
    )


if __name__ == "__main__":
    main()
