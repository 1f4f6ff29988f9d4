"""A rule or override added through the CLI is in force in 4 running workers within 1 s (issue 15's
bar), and a rule's budget is exact across them.

``uvicorn --workers 4`` serves tests/rules_worker_app.py on 127.0.0.1: each worker has its own
``RulesEngine(store=<redis>, key_prefix=<this server's>)`` behind ``RulesMiddleware``. Client
threads keep sending requests, each on a new connection (so the kernel hands them to every
worker), and record when each was sent, which worker answered (``X-Worker-Pid``) and which rule
decided it (``X-RateLimit-Limit``). Meanwhile ``python -m seawall rules`` runs as a process of its
own and adds a rule, then an unlimited override. The bar is checked as a bound, not a timing: every
request sent one second or more after the command exited, to any worker, is decided by the new
rule (by the override), and at least three distinct workers answered such requests. Before the
command, none was. The polling stops once that evidence is in (or after ``DEADLINE``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import rules_worker_app
from redis_servers import redis_server_binary
from test_workers_redis import TIMEOUT, Server, serve

from seawall.rules import RulesEngine

BAR = 1.0  # seconds from the command's exit until every worker enforces what it added
RATE = 5  # the rule's budget: 5 requests an hour, for every client and worker together
DEADLINE = 15.0  # seconds of polling after which the evidence is taken as missing
MIN_WORKERS = 3  # distinct workers that must be seen enforcing after the bar
THREADS = 8
PATH = "/limited"
OPEN_LIMIT = str(rules_worker_app.OPEN["rate"])

pytestmark = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed (Debian redis-server)"
)


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    answered: float  # and when its answer came
    pid: int
    status: int
    limit: str | None  # X-RateLimit-Limit: the limit of the rule that decided


@dataclass
class Poller:
    """Threads sending ``GET path`` on new connections until stopped; every answer is kept."""

    server: Server
    answers: list[Answer] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Poller:
        for _ in range(THREADS):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        url = self.server.url
        with httpx.Client(base_url=url, trust_env=False, timeout=TIMEOUT, limits=limits) as c:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    r = c.get(PATH, headers={"Connection": "close"})
                    answer = Answer(
                        sent,
                        time.monotonic(),
                        int(r.headers["x-worker-pid"]),
                        r.status_code,
                        r.headers.get("x-ratelimit-limit"),
                    )
                except Exception as error:
                    with self._changed:
                        self.errors.append(error)
                        self._changed.notify_all()
                    return
                with self._changed:
                    self.answers.append(answer)
                    self._changed.notify_all()

    def wait_for(self, done: Callable[[list[Answer]], bool]) -> list[Answer]:
        """Waits until ``done(answers)`` (or an error, or ``DEADLINE``); the answers so far."""
        deadline = time.monotonic() + DEADLINE
        with self._changed:
            # Waiting for answers to arrive, not for time to pass.
            while not (done(self.answers) or self.errors or time.monotonic() > deadline):
                self._changed.wait(0.1)
            return list(self.answers)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)


@dataclass(frozen=True)
class Change:
    """A command run while the poller ran: when it started and exited."""

    started: float
    exited: float
    stdout: str


def cli(store: str, prefix: str, command: str) -> Change:
    """``python -m seawall rules --store ... --key-prefix ... <command>``, a process of its own."""
    argv = ["rules", "--store", store, "--key-prefix", prefix, *shlex.split(command)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "seawall", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    exited = time.monotonic()
    assert done.returncode == 0, done
    return Change(started, exited, done.stdout)


@dataclass
class Rules:
    server: Server
    store: str
    prefix: str


@pytest.fixture(scope="module")
def rules_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rules]:
    prefix = f"rw:{uuid.uuid4().hex[:12]}:"
    # The default rule, in the store before any worker starts.
    RulesEngine(store=redis_url, key_prefix=prefix).add_rule(rules_worker_app.OPEN)
    log = tmp_path_factory.mktemp("rules-workers") / "server.log"
    argv = ["uvicorn", "rules_worker_app:app", "--factory", "--workers", "4",
            "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEAWALL_RULES_PREFIX", prefix)
        with serve(argv, redis_url, log) as server:
            yield Rules(server, redis_url, prefix)


def _after(answers: list[Answer], moment: float) -> list[Answer]:
    return [a for a in answers if a.sent >= moment]


def _enough_after(moment: float, pids: set[int]) -> Callable[[list[Answer]], bool]:
    """Done once every worker answered requests sent after ``moment``, or ``MIN_WORKERS`` did
    and ``BAR`` more seconds passed (the kernel may starve a worker of connections)."""

    def done(answers: list[Answer]) -> bool:
        seen = {a.pid for a in _after(answers, moment)}
        return seen >= pids or (len(seen) >= MIN_WORKERS and time.monotonic() > moment + BAR)

    return done


def _first_enforcing(
    answers: list[Answer], change: Change, enforces: Callable[[Answer], bool]
) -> dict[int, float]:
    """Per worker, how long after the command's exit the first request it enforced was sent
    (what the assertion messages show)."""
    first: dict[int, float] = {}
    for a in sorted(answers, key=lambda a: a.sent):
        if enforces(a) and a.pid not in first:
            first[a.pid] = round(a.sent - change.exited, 3)
    return first


def _check_propagation(
    server: Server,
    answers: list[Answer],
    change: Change,
    enforces: Callable[[Answer], bool],
) -> None:
    before = [a for a in answers if a.answered < change.started]
    assert before, "no request was answered before the command ran"
    assert not any(enforces(a) for a in before), "in force before the command ran"
    late = _after(answers, change.exited + BAR)
    stale = [a for a in late if not enforces(a)]
    first = _first_enforcing(answers, change, enforces)
    assert stale == [], (
        f"{len(stale)} requests sent {BAR} s or more after the command exited were decided "
        f"without it, by workers {sorted({a.pid for a in stale})}; first enforced at {first}"
    )
    pids = {a.pid for a in late}
    assert len(pids) >= MIN_WORKERS, (
        f"only workers {sorted(pids)} answered after the bar (of {sorted(server.pids)})"
    )
    assert pids <= server.pids, (pids, server.pids)


def test_a_rule_and_an_override_added_through_the_cli_are_in_force_in_every_worker_within_1s(
    rules_server: Rules,
) -> None:
    server, store, prefix = rules_server.server, rules_server.store, rules_server.prefix
    rule = str(RATE)
    poller = Poller(server).start()
    try:
        poller.wait_for(lambda answers: len(answers) >= 4 * THREADS)
        added = cli(
            store,
            prefix,
            f"add --name tight --scope global --rate {RATE} --burst {RATE} --window 3600 "
            f"--endpoint {PATH} --priority 100 --strategy retry_after",
        )
        assert "rule 'tight' added" in added.stdout
        answers = poller.wait_for(_enough_after(added.exited + BAR, server.pids))
        assert poller.errors == []
        _check_propagation(server, answers, added, lambda a: a.limit == rule)

        # The rule's budget is spent: only an override lets anyone through now.
        granted = cli(
            store,
            prefix,
            "override add --admin ops-1 --ip 127.0.0.1 --unlimited --duration 10 "
            "--reason 'workers test'",
        )
        assert "added" in granted.stdout
        answers = poller.wait_for(_enough_after(granted.exited + BAR, server.pids))
        assert poller.errors == []
    finally:
        poller.stop()
    _check_propagation(
        server, _after(answers, added.exited + BAR), granted, lambda a: a.status == 200
    )
    # Exact across the workers: of every request the rule decided before the override command
    # ran, RATE were admitted; the others were the default rule's.
    ruled = [a for a in poller.answers if a.answered < granted.started]
    decided = [a for a in ruled if a.limit == rule]
    assert Counter(a.status for a in decided) == {200: RATE, 429: len(decided) - RATE}
    assert len({a.pid for a in decided}) >= MIN_WORKERS
    assert {a.limit for a in ruled if a.limit != rule} == {OPEN_LIMIT}
