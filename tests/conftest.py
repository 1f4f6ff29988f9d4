from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from redis_servers import RedisCluster, RedisServer, RedisUnavailable, redis_server_binary

from seawall import TokenBucketConfig


@pytest.fixture
def config() -> TokenBucketConfig:
    """The seed's global defaults: a burst of 100, 10 per second, starting at half."""
    return TokenBucketConfig(capacity=100, refill_rate=10.0, initial_tokens=50)


# --------------------------------------------------------------------------------------------
# Real Redis servers (tests/redis_servers.py), for tests/test_redis.py. Each is started on a free
# 127.0.0.1 port when a test first asks for it and stopped at the end of its scope.

NO_REDIS = (
    "redis-server is not installed (Debian package redis-server; scripts/test.sh installs it "
    "before running pytest)"
)


def _require_redis() -> None:
    if redis_server_binary() is None:
        pytest.skip(NO_REDIS)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of one redis-server shared by the whole session (tests keep apart by
    ``redis_prefix``). A server that is installed but does not start is an error, not a skip."""
    _require_redis()
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill (``kill()``: SIGKILL) and ``restart()``."""
    _require_redis()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A ``redis+cluster://`` URL naming a 3-node Redis Cluster on loopback (no replicas).

    Skipped, with the reason, if the cluster cannot be formed here (for example a sandbox that
    forbids the cluster bus ports, ``port + 10000``)."""
    _require_redis()
    try:
        cluster = RedisCluster().start()
    except RedisUnavailable as e:
        pytest.skip(f"a 3-node Redis Cluster could not be started on 127.0.0.1: {e}")
    try:
        yield cluster.url
    finally:
        cluster.close()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test (or earlier run) uses: ``t:<test name>:<random>:``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    return f"t:{name}:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(autouse=True)
def _fresh_log_throttles() -> None:
    """Each test's rate-limited ``seawall.*`` records (at most one per site per 10 s) start
    unthrottled, whatever earlier tests logged."""
    from seawall import _log

    _log.reset()
