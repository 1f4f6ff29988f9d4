"""``benches/compare_asgi.py --store redis --smoke`` runs end to end and accounts for Redis.

The smoke mode serves each variant once (1 worker, one 1 s wrk run at 64 connections, no
warm-up) on a redis-server the script starts itself. This checks that the mode starts, that
every row is valid (no non-2xx, rate-limit headers present, a limiter row made Redis calls) and
that the ``INFO commandstats`` / ``MONITOR`` accounting parses into the table. No timing is
asserted: only what each library does on Redis per request, which is not a matter of speed.
Skipped without wrk, redis-server or the bench extra (slowapi, limits).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benches" / "compare_asgi.py"

pytestmark = [
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server missing"),
    pytest.mark.skipif(
        importlib.util.find_spec("slowapi") is None or importlib.util.find_spec("limits") is None,
        reason="the bench extra (slowapi, limits) is not installed",
    ),
]

SEAWALL = "seawall `RateLimitMiddleware` on Redis"
SLOWAPI = "slowapi `SlowAPIMiddleware` on Redis"


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The rows of the first markdown table after the Redis heading, by variant label."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Served on Redis:"))
    header_at = next(i for i in range(start, len(lines)) if lines[i].startswith("| variant"))

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[header_at])
    rows: dict[str, dict[str, str]] = {}
    for line in lines[header_at + 2 :]:
        if not line.startswith("|"):
            break
        row = dict(zip(header, cells(line), strict=True))
        rows[row["variant"]] = row
    return rows


def test_store_redis_smoke_serves_every_variant_and_counts_redis_calls() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--store", "redis", "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout)
    assert set(rows) == {"no middleware", SEAWALL, SLOWAPI}, done.stdout

    for label, row in rows.items():
        assert row["valid"] == "yes", (label, row, done.stdout)
        assert row["non-2xx"] == "0", (label, row)
        assert float(row["best req/s"].replace(",", "")) > 0, (label, row)

    # No middleware: nothing touches Redis.
    assert float(rows["no middleware"]["commands executed/request"]) == 0

    # slowapi on Redis: limits' fixed window is one EVALSHA per request (its INCRBY runs inside
    # that script, told apart by the MONITOR sample), then TTL and GET for the headers.
    slow = rows[SLOWAPI]
    assert float(slow["script calls/request"]) > 0
    assert float(slow["Redis calls/request"]) > float(slow["script calls/request"])
    assert "in scripts: incrby" in slow["calls per request"], slow
    for command in ("evalsha", "ttl", "get"):
        assert command in slow["calls per request"].split(";")[0], slow

    # seawall on Redis: script calls only (no other command per request), and each request
    # was decided on Redis (on_error="deny": a failed call would have answered 503).
    sw = rows[SEAWALL]
    assert float(sw["script calls/request"]) > 0, sw
    assert sw["calls per request"].split(";")[0].startswith("fcall"), sw
    assert float(sw["Redis calls/request"]) == pytest.approx(
        float(sw["script calls/request"]), abs=0.002
    ), sw
    assert "check: 1 worker(s)" in done.stdout
