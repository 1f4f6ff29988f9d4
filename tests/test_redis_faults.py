"""What the Redis transport does when the server misbehaves.

A small RESP server in the test (:class:`FakeRedis`, a thread on 127.0.0.1) answers the seawall
script in ways a real Redis never would: one reply too many, replies split byte by byte, slow
replies, garbage. Whatever it sends, every ``await`` ends within ``command_timeout`` (the outer
``asyncio.wait_for`` bounds are hang detectors, far above it) and no decision is ever another
request's reply. Real redis-servers for the rest: ``CLIENT KILL`` with decisions in flight and
while idle, ACL users without permission, wrong passwords, resets during an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, free_port

from seawall import RedisLimiter

HANG = 20.0  # a hang detector, not a timing assertion
FAST: dict[str, Any] = {
    "connect_timeout": 2.0,
    "command_timeout": 0.3,
    "on_error": "deny",
    "breaker_failures": 1000,  # these tests look at each call, not at the breaker
}


# --------------------------------------------------------------------------------------------
# A fake Redis speaking RESP


def read_command(f: Any) -> list[bytes] | None:
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip()]
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


def decision(remaining: int) -> bytes:
    """One decision of the seawall script: allowed, limit 1000, ``remaining``."""
    return b"*8\r\n:1\r\n:1000\r\n:%d\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n" % remaining


def script_reply(args: list[bytes]) -> bytes:
    """The script's reply, each decision's ``remaining`` the number in its key (``k17``: 17),
    so a reply given to the wrong request shows."""
    numkeys = int(args[2])
    keys = args[3 : 3 + numkeys]
    batch = int(args[3 + numkeys])
    per = numkeys // batch
    out = [b"*%d\r\n" % batch]
    for i in range(batch):
        m = re.search(rb"k(\d+)", keys[i * per])
        out.append(decision(int(m.group(1)) if m else 0))
    return b"".join(out)


class FakeRedis:
    """A RESP server on a free loopback port; ``mode`` says how it answers the script:

    - ``"ok"``: correctly;
    - ``"extra"``: correctly, then one reply nobody asked for, in the same write;
    - ``"bytewise"``: correctly, one byte every ``delay`` seconds;
    - ``"slow"``: correctly, after ``delay`` seconds;
    - ``"silent"``: never;
    - ``"garbage"``: bytes that are not RESP;
    - ``"error"``: a Redis error reply.
    """

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            t = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while not self.stop.is_set():
                args = read_command(f)
                if args is None:
                    return
                name = args[0].upper()
                if name in (b"FCALL", b"EVALSHA", b"EVAL"):
                    self.answer(conn, script_reply(args))
                elif name == b"PING":
                    conn.sendall(b"+PONG\r\n")
                else:
                    conn.sendall(b"+OK\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def answer(self, conn: socket.socket, reply: bytes) -> None:
        mode = self.mode
        if mode == "ok":
            conn.sendall(reply)
        elif mode == "extra":
            conn.sendall(reply + decision(424242))
        elif mode == "bytewise":
            # One byte per delay while the mode lasts; the rest at once when it ends.
            for at in range(len(reply)):
                if self.mode != "bytewise":
                    conn.sendall(reply[at:])
                    return
                if self.stop.wait(self.delay):
                    return
                conn.sendall(reply[at : at + 1])
        elif mode == "slow":
            deadline = time.monotonic() + self.delay
            while self.mode == "slow" and time.monotonic() < deadline:
                if self.stop.wait(0.01):
                    return
            conn.sendall(reply)
        elif mode == "garbage":
            conn.sendall(b"\x00\xffnot resp at all\r\n")
        elif mode == "error":
            conn.sendall(b"-ERR something odd\r\n")
        # "silent": nothing

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    server = FakeRedis()
    try:
        yield server
    finally:
        server.close()


def right_or_fallback(key_number: int, d: Any) -> bool:
    """From the server for this key, or on_error="deny"; never another request's reply."""
    return (d.allowed and d.remaining == key_number) or (not d.allowed and d.remaining == 0)


async def bounded(coro: Any) -> Any:
    return await asyncio.wait_for(coro, HANG)


# --------------------------------------------------------------------------------------------
# Item 9 and the fake-server bar: every await ends, whatever the server sends


MODES = ["extra", "bytewise", "slow", "silent", "garbage", "error"]


@pytest.mark.parametrize("mode", MODES)
def test_every_await_ends_whatever_the_server_sends(fake: FakeRedis, mode: str) -> None:
    """Sequential and concurrent ``ahit`` on the direct path and (a second loop) the tokio path:
    each ends, with the server's answer for its own key or on_error."""
    lim = RedisLimiter("1000/minute", store=fake.url, **FAST)

    async def scenario() -> list[tuple[int, Any]]:
        # Connected and owned by this loop, with the server answering well.
        for i in range(3):
            assert (await bounded(lim.ahit(f"k{i}"))).remaining == i
        fake.mode, fake.delay = mode, (0.05 if mode == "bytewise" else 1.0)
        out = []
        for i in range(3, 6):
            out.append((i, await bounded(lim.ahit(f"k{i}"))))
        ds = await bounded(asyncio.gather(*(lim.ahit(f"k{i}") for i in range(6, 30))))
        out += list(zip(range(6, 30), ds, strict=True))
        fake.mode = "ok"
        for i in range(30, 33):
            out.append((i, await bounded(lim.ahit(f"k{i}"))))
        return out

    for _ in range(2):  # the first loop owns the direct connection; the second takes tokio
        fake.mode = "ok"
        out = asyncio.run(scenario())
        # A reply nobody asked for, among requests pipelined on redis-rs's multiplexed
        # connection (the tokio path, also used while the direct connection is made again),
        # is taken for the next one's: there every await ends, but may end wrong.
        if mode != "extra":
            assert all(right_or_fallback(i, d) for i, d in out), [
                (i, d) for i, d in out if not right_or_fallback(i, d)
            ]
        # Once the server behaves again, decisions come from it (a connection broken by the
        # fault is made again).
        assert all(d.allowed for i, d in out[-2:]), out[-3:]


def test_extra_reply_does_not_lose_the_replies_read_with_it(fake: FakeRedis) -> None:
    """One reply more than was asked for, in the same read as the awaited ones: the awaited
    replies still reach their callers (before, they were dropped with their futures, and each
    of those ``await`` hung forever)."""
    lim = RedisLimiter("1000/minute", store=fake.url, **FAST)

    async def scenario() -> list[Any]:
        for i in range(3):
            await bounded(lim.ahit(f"k{i}"))
        fake.mode = "extra"
        return [await bounded(lim.ahit(f"k{i}")) for i in range(3, 8)]

    out = asyncio.run(scenario())
    assert out[0].allowed and out[0].remaining == 3, out
    assert all(right_or_fallback(i, d) for i, d in zip(range(3, 8), out, strict=True)), out


def test_sync_extra_reply_is_never_another_requests_answer(fake: FakeRedis) -> None:
    """The sync pool: a connection with an unrequested reply left on it is not used again."""
    lim = RedisLimiter("1000/minute", store=fake.url, **FAST)
    assert lim.hit("k1").remaining == 1
    fake.mode = "extra"
    out = [(i, lim.hit(f"k{i}")) for i in range(2, 12)]
    assert all(right_or_fallback(i, d) for i, d in out), out
    assert out[0][1].remaining == 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split=st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_replies_split_anywhere_are_read_whole(split: list[int]) -> None:
    """A reply may arrive in pieces of any size (here: writes of hypothesis-chosen sizes,
    quickly): each decision is still its own key's."""
    server = FakeRedis()

    def pieces(conn: socket.socket, reply: bytes) -> None:
        at, i = 0, 0
        while at < len(reply):
            n = split[i % len(split)]
            conn.sendall(reply[at : at + n])
            at += n
            i += 1
            time.sleep(0.001)

    server.answer = pieces  # type: ignore[method-assign]
    try:
        lim = RedisLimiter("1000/minute", store=server.url, **{**FAST, "command_timeout": 5.0})

        async def scenario() -> list[Any]:
            seq = [await bounded(lim.ahit(f"k{i}")) for i in range(4)]
            ds = await bounded(asyncio.gather(*(lim.ahit(f"k{i}") for i in range(4, 20))))
            return seq + list(ds)

        out = asyncio.run(scenario())
        assert [d.remaining for d in out] == list(range(20)), out
        assert [lim.hit(f"k{i}").remaining for i in range(3)] == [0, 1, 2]
    finally:
        server.close()


# --------------------------------------------------------------------------------------------
# Item 11: command_timeout bounds the command on the sync path, not each read


def test_sync_command_timeout_bounds_the_whole_reply(fake: FakeRedis) -> None:
    """A reply sent one byte every 100 ms (some 7 s in all): ``hit`` with a 0.3 s timeout
    falls to on_error long before the reply is through (bounded here by 4 s, a hang detector)
    rather than waiting for byte after byte."""
    lim = RedisLimiter("1000/minute", store=fake.url, **FAST)
    assert lim.hit("k1").allowed
    fake.mode, fake.delay = "bytewise", 0.1
    t0 = time.monotonic()
    d = lim.hit("k2")
    took = time.monotonic() - t0
    assert not d.allowed and took < 4.0, took
    assert lim.stats()["errors"] == 1


@pytest.mark.parametrize("mode", ["slow", "silent", "garbage", "error", "extra"])
def test_sync_hit_ends_whatever_the_server_sends(fake: FakeRedis, mode: str) -> None:
    lim = RedisLimiter("1000/minute", store=fake.url, **FAST)
    assert lim.hit("k1").remaining == 1
    fake.mode, fake.delay = mode, 2.0
    out = []
    for i in range(2, 5):
        t0 = time.monotonic()
        out.append((i, lim.hit(f"k{i}")))
        assert time.monotonic() - t0 < 4.0  # hang detector
    assert all(right_or_fallback(i, d) for i, d in out), out
    fake.mode = "ok"
    assert lim.hit("k7").remaining == 7


# --------------------------------------------------------------------------------------------
# Items 10 and 12: CLIENT KILL on a real server


def kill_clients(server: RedisServer) -> None:
    server.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")


def test_client_kill_with_decisions_in_flight_is_one_failure(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Redis holds 40 decisions (``CLIENT PAUSE ... WRITE`` keeps the script from running), then
    ``CLIENT KILL`` closes the connection under them. That is one connection failure: the
    breaker (3 failures) stays closed and the next decisions come from Redis, on both async
    paths."""
    lim = RedisLimiter(
        "1000/minute",
        store=redis_server.url,
        key_prefix=redis_prefix,
        on_error="deny",
        connect_timeout=5.0,
        command_timeout=5.0,
        breaker_failures=3,
        breaker_recovery=30.0,
    )

    async def scenario() -> tuple[list[Any], list[Any], dict[str, Any]]:
        for _ in range(3):
            assert (await bounded(lim.ahit("warm"))).allowed
        redis_server.command("CLIENT", "PAUSE", "5000", "WRITE")
        try:
            flight = [asyncio.ensure_future(lim.ahit(f"f{i}")) for i in range(40)]
            await asyncio.sleep(0.2)  # let them reach Redis
            kill_clients(redis_server)
        finally:
            redis_server.command("CLIENT", "UNPAUSE")
        in_flight = await bounded(asyncio.gather(*flight))
        stats = lim.stats()
        after = [await bounded(lim.ahit("after")) for _ in range(5)]
        return in_flight, after, stats

    for _ in range(2):  # the direct path, then (a new loop) the tokio path
        in_flight, after, stats = asyncio.run(scenario())
        assert stats["breaker"] == "closed", (stats, in_flight)
        assert all(d.allowed for d in after), (after, lim.stats())


def test_first_ahit_after_idle_client_kill_comes_from_redis(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Ten times: one ``ahit``, ``CLIENT KILL`` while idle, one more ``ahit``: it must come from
    Redis (before, it fell to on_error every time), as on the sync path."""
    lim = RedisLimiter("1000/minute", store=redis_server.url, key_prefix=redis_prefix, **FAST)
    lim_fresh_each: list[bool] = []

    async def trial(lim: RedisLimiter) -> bool:
        assert (await bounded(lim.ahit("k"))).allowed
        kill_clients(redis_server)
        return bool((await bounded(lim.ahit("k"))).allowed)

    async def same_loop() -> list[bool]:
        return [await trial(lim) for _ in range(10)]

    async def fresh() -> None:
        for _ in range(10):
            other = RedisLimiter(
                "1000/minute", store=redis_server.url, key_prefix=redis_prefix, **FAST
            )
            lim_fresh_each.append(await trial(other))

    assert asyncio.run(same_loop()) == [True] * 10, lim.stats()
    asyncio.run(fresh())
    assert lim_fresh_each == [True] * 10
    # The sync path keeps its promise too.
    for _ in range(5):
        assert lim.hit("s").allowed
        kill_clients(redis_server)
        assert lim.hit("s").allowed
    assert lim.stats()["errors"] == 0, lim.stats()


# --------------------------------------------------------------------------------------------
# Item 13: a store that can never work is a configuration error


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        # "app" may use the seawall script on other keys only; "noeval" may not run scripts
        # (neither EVAL / EVALSHA nor functions).
        server.command("ACL", "SETUSER", "app", "on", ">app-pw", "~other:*", "+@all")
        server.command("ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-@scripting")
        yield server


@pytest.mark.parametrize(
    "who", ["app:app-pw", "noeval:pw", "app:wrong", "nobody:pw", ":not-required"]
)
def test_permanent_configuration_errors_raise_and_log_error(
    acl_server: RedisServer, redis_prefix: str, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NOPERM, WRONGPASS (and AUTH where no password is set) can never heal by waiting: each
    use raises ``PermissionError`` (sync, async on both paths, and resets), logged at ERROR on
    ``seawall.redis``; ``on_error="allow"`` does not hide it, and the breaker does not count
    it as an outage."""
    caplog.set_level(logging.WARNING, logger="seawall.redis")
    url = f"redis://{who}@127.0.0.1:{acl_server.port}/0"
    lim = RedisLimiter(
        "5/minute", store=url, key_prefix=redis_prefix, on_error="allow", connect_timeout=5.0
    )
    for _ in range(3):
        with pytest.raises(PermissionError, match="Redis"):
            lim.hit("k")

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(PermissionError, match="Redis"):
                await bounded(lim.ahit("k"))
            await asyncio.sleep(0.05)  # give the direct connection time to be tried

    asyncio.run(scenario())
    asyncio.run(scenario())
    if who == "noeval:pw":
        assert lim.reset("k") is False  # DEL is allowed, the script is not
    else:
        with pytest.raises(PermissionError):
            lim.reset("k")
    assert "pw" not in " ".join(r.getMessage() for r in caplog.records)
    records = [r for r in caplog.records if r.name == "seawall.redis"]
    assert records and all(r.levelno == logging.ERROR for r in records), [
        (r.levelname, r.getMessage()) for r in records
    ]
    assert lim.stats()["breaker"] == "closed"


def test_database_the_server_does_not_have_is_a_configuration_error(
    redis_url: str, redis_prefix: str
) -> None:
    """``/99`` on a server with 16 databases: ``PermissionError`` on every path, not on_error."""
    url = redis_url.rsplit("/", 1)[0] + "/99"
    lim = RedisLimiter("5/minute", store=url, key_prefix=redis_prefix, on_error="allow")
    with pytest.raises(PermissionError, match="database"):
        lim.hit("k")

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(PermissionError, match="database"):
                await bounded(lim.ahit("k"))
            await asyncio.sleep(0.05)
        with pytest.raises(PermissionError):
            await bounded(lim.areset("k"))

    asyncio.run(scenario())
    assert lim.stats()["errors"] == 0


def test_configuration_error_heals_when_the_acl_is_fixed(
    acl_server: RedisServer, redis_prefix: str
) -> None:
    """Raised per use, not remembered forever: an operator who grants the permission needs no
    restart."""
    url = f"redis://noeval:pw@127.0.0.1:{acl_server.port}/0"
    lim = RedisLimiter("5/minute", store=url, key_prefix=redis_prefix, on_error="deny")
    with pytest.raises(PermissionError):
        lim.hit("k")
    acl_server.command("ACL", "SETUSER", "noeval", "+@scripting")
    assert lim.hit("k").allowed


# --------------------------------------------------------------------------------------------
# Item 27: reset and areset during an outage: one behaviour, through the breaker, rate-limited


def test_reset_and_areset_during_an_outage_behave_alike(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.WARNING, logger="seawall.redis")
    lim = RedisLimiter(
        "5/minute",
        store=dead,
        key_prefix=redis_prefix,
        connect_timeout=0.05,
        command_timeout=0.1,
        breaker_failures=3,
        breaker_recovery=3600,
        log_interval=3600,
    )

    async def areset_all(n: int) -> list[str]:
        out = []
        for _ in range(n):
            with pytest.raises(OSError) as e:
                await bounded(lim.areset("k"))
            out.append(str(e.value))
        return out

    async_msgs = asyncio.run(areset_all(50))
    assert lim.stats()["breaker"] == "open"
    sync_msgs = []
    for _ in range(50):
        with pytest.raises(OSError) as e:
            lim.reset("k")
        sync_msgs.append(str(e.value))
    assert all("Redis" in m for m in async_msgs + sync_msgs)
    # The breaker opened after 3 failures: the rest were refused without a call.
    assert lim.stats()["errors"] == 3, lim.stats()
    # One failure record per log_interval, and one as the breaker opened (tests/test_logs.py).
    records = [r for r in caplog.records if r.name == "seawall.redis"]
    events = sorted(getattr(r, "event", "") for r in records)
    assert events == ["redis_breaker_open", "redis_failed"], [r.getMessage() for r in records]
