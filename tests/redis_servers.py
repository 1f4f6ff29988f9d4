"""Real redis-server processes on loopback, for the Redis tests and the Redis benchmark.

:class:`RedisServer` runs one ``redis-server`` on a free 127.0.0.1 port in its own temporary
directory, with persistence off (``--save "" --appendonly no``), so a restart starts empty. It can
be stopped (SIGTERM, then SIGKILL), killed with SIGKILL (``kill -9``: no shutdown, connections
reset) and restarted on the same port. :class:`RedisCluster` is three cluster-enabled servers
joined with ``redis-cli --cluster create ... --cluster-replicas 0`` (every slot on a primary).

Readiness is checked with ``PING`` over a raw socket (RESP), so this module needs nothing but the
``redis-server`` and ``redis-cli`` binaries (Debian packages ``redis-server`` and ``redis-tools``).
Every wait is bounded; a server that does not come up raises :class:`RedisUnavailable` with its
log attached. Used by ``tests/conftest.py`` (fixtures) and ``benches/compare_redis.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "RedisCluster",
    "RedisServer",
    "RedisUnavailable",
    "command",
    "free_port",
    "redis_server_binary",
]

START_TIMEOUT = 10.0


class RedisUnavailable(RuntimeError):
    """A redis-server (or the cluster) could not be started."""


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or ``None`` if it is not installed."""
    return shutil.which("redis-server")


def free_port(cluster: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (and, for a cluster node, whose bus
    port, ``port + 10000``, is free too)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not cluster:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RedisUnavailable("no free port pair on 127.0.0.1")


# A few lines of RESP rather than redis-py: these helpers must talk to servers that are still
# starting, want a password, or are cluster nodes, with no client-side handshake or routing.


def _encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read_reply(f: BinaryIO) -> object:
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


def command(port: int, *args: str | bytes | int, timeout: float = 2.0) -> object:
    """Send one command to 127.0.0.1:``port`` over a fresh connection; return its decoded reply
    (``str``, ``int``, ``None`` or a list). A Redis error reply raises ``RuntimeError``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_encode(args))
        with s.makefile("rb") as f:
            return _read_reply(f)


def _ping(port: int) -> bool:
    try:
        return command(port, "PING", timeout=0.5) == "PONG"
    except RuntimeError as e:
        # A server with a password answers, but only to say so: it is up.
        return str(e).startswith(("NOAUTH", "WRONGPASS"))
    except OSError:
        return False


class RedisServer:
    """One redis-server on 127.0.0.1:``port`` (a free one by default), in its own temp dir."""

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        cpu: int | None = None,
        cluster: bool = False,
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.port = port if port is not None else free_port(cluster=cluster)
        self.cluster = cluster
        self.extra_args = list(extra_args)
        # Pinned with taskset when asked (the benchmark), if taskset exists and the CPU is ours.
        self.cpu = cpu
        self._dir = tempfile.TemporaryDirectory(prefix=f"seawall-redis-{self.port}-")
        self.dir = Path(self._dir.name)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def argv(self) -> list[str]:
        args = [
            self.binary,
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.dir / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            ]
        args += self.extra_args
        if self.cpu is not None and shutil.which("taskset") and self.cpu in _usable_cpus():
            args = ["taskset", "-c", str(self.cpu), *args]
        return args

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start the server (if not running) and wait until it answers PING."""
        if self.running:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.process = subprocess.Popen(
            self.argv(),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if _ping(self.port):
                    return self
                time.sleep(0.01)
        except BaseException:
            # Whatever went wrong while waiting, never leave a server behind.
            self.stop()
            raise
        self.stop()
        raise RedisUnavailable(
            f"redis-server on port {self.port} did not answer PING within {timeout} s; "
            f"log:\n{self.log()}"
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _reap(self, timeout: float) -> None:
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def _close_log(self) -> None:
        log = self._log
        self._log = None
        if log is not None:
            log.close()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the temp dir stays until :meth:`close`."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self._reap(timeout)
        self.process = None
        self._close_log()

    def kill(self) -> None:
        """``kill -9``: the server dies at once, without closing its connections cleanly."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None
        self._close_log()

    def restart(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start again on the same port (empty: nothing is persisted)."""
        self.kill()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.start(timeout=max(0.5, deadline - time.monotonic()))
            except RedisUnavailable:
                # The port may linger for a moment after a kill; try again until the deadline.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def command(self, *args: str | bytes | int) -> object:
        return command(self.port, *args)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


class RedisCluster:
    """Three cluster-enabled redis-servers on loopback, all 16384 slots assigned, no replicas."""

    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(nodes)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> RedisCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisUnavailable("redis-cli is not installed (Debian package redis-tools)")
        try:
            for node in self.nodes:
                node.start()
            create = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if create.returncode != 0:
                raise RedisUnavailable(
                    f"redis-cli --cluster create failed ({create.returncode}):\n"
                    f"{create.stdout}\n{create.stderr}"
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(self._state_ok(n) for n in self.nodes):
                    return self
                time.sleep(0.05)
            raise RedisUnavailable(f"cluster_state did not become ok within {timeout} s")
        except BaseException:
            self.close()
            raise

    def _state_ok(self, node: RedisServer) -> bool:
        try:
            info = node.command("CLUSTER", "INFO")
        except (OSError, RuntimeError):
            return False
        if not isinstance(info, str):
            return False
        # Every node must see the whole cluster, not only its own slots, before clients come.
        fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_slots_ok") == "16384"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
        )

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
