"""How a RedisLimiter names its Redis keys and which store URLs it takes (real redis-servers).

- Any client key, including ``}x``, the empty key, ``{`` and ``a}b{c``, keeps all of its Redis
  keys in one Cluster hash-tag slot: on a real 3-node Redis Cluster, limiters with two limits and
  with a sliding log (two Redis keys per limit) decide exactly, with no CROSSSLOT error and no
  ``on_error`` fallback, and client keys that look alike once escaped keep apart.
- Malformed store URLs (a port out of range or not a number, a missing or bad host, a negative
  or non-numeric database, a database on a Cluster) are a ``ValueError`` at construction that
  names the part and never shows the password, instead of a limiter whose every decision fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import CircuitBreaker, Limit, RedisLimiter

# A failure would refuse nothing (on_error="allow", the default), so it is caught by the counts of
# errors and fallbacks; the timeouts are generous so that a loaded machine does not cause one.
PATIENT: dict[str, Any] = {"connect_timeout": 5.0, "command_timeout": 5.0}

# Client keys that could leave (or empty) a `{…}` hash tag, and keys that a careless escape
# would confuse with them.
AWKWARD = ["}x", "", "{", "a}b{c", "}", "{}", "%", "%7Dx", "%25", "a%7Db%7Bc", "\0}", "é}{"]


def cluster_nodes(url: str) -> list[redis.Redis]:
    ports = [int(hp.rsplit(":", 1)[1]) for hp in url.removeprefix("redis+cluster://").split(",")]
    return [redis.Redis(port=p, decode_responses=True, socket_timeout=5) for p in ports]


@pytest.fixture
def nodes(redis_cluster_url: str) -> Iterator[list[redis.Redis]]:
    ns = cluster_nodes(redis_cluster_url)
    try:
        yield ns
    finally:
        for n in ns:
            n.close()


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    """redis-py's Cluster client, which routes each command to the node owning its slot."""
    port = int(redis_cluster_url.rsplit(":", 1)[1])
    c = redis.RedisCluster(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)
    try:
        yield c
    finally:
        c.close()


LIMITS: dict[str, Any] = {
    "two_limits": "2/minute; 3/hour",
    "sliding_log": [Limit("2/minute", "sliding_window_log")],
    "log_and_duplicate": [
        Limit("2/minute", "sliding_window_log"),
        Limit("2/minute", "sliding_window_log"),
        Limit("3/hour", "gcra"),
    ],
}


@pytest.mark.parametrize("limits", list(LIMITS.values()), ids=list(LIMITS))
def test_cluster_awkward_keys_decide_in_one_slot(
    redis_cluster_url: str,
    redis_prefix: str,
    nodes: list[redis.Redis],
    cluster: redis.RedisCluster,
    limits: Any,
) -> None:
    lim = RedisLimiter(limits, store=redis_cluster_url, key_prefix=redis_prefix, **PATIENT)
    for key in AWKWARD:
        slots = {nodes[0].cluster("KEYSLOT", k) for k in lim.redis_keys(key)}
        assert len(slots) == 1, (key, lim.redis_keys(key))
    # Round by round, so that two client keys sharing state would run out early.
    rounds = [[lim.hit(key).allowed for key in AWKWARD] for _ in range(3)]
    assert rounds == [[True] * len(AWKWARD)] * 2 + [[False] * len(AWKWARD)], lim.stats()
    stats = lim.stats()
    assert (stats["errors"], stats["fallbacks"]) == (0, 0), stats
    # The state is where redis_keys() says, and each key's reset deletes it in one call.
    for key in AWKWARD:
        assert all(cluster.exists(k) for k in lim.redis_keys(key) if "total" not in k), key
        assert lim.reset(key) is True
        assert lim.hit(key).allowed
    assert lim.stats()["errors"] == 0


def test_cluster_awkward_keys_async(redis_cluster_url: str, redis_prefix: str) -> None:
    lim = RedisLimiter(
        [Limit("2/minute", "sliding_window_log"), Limit("5/hour", "gcra")],
        store=redis_cluster_url,
        key_prefix=redis_prefix,
        on_error="allow",
        **PATIENT,
    )

    async def per_key(key: str) -> list[bool]:
        return [(await lim.ahit(key)).allowed for _ in range(3)]

    async def main() -> list[list[bool]]:
        got = await asyncio.gather(*(per_key(k) for k in AWKWARD))
        assert all([await lim.areset(k) for k in AWKWARD])
        return got

    assert asyncio.run(main()) == [[True, True, False]] * len(AWKWARD)
    assert (lim.stats()["errors"], lim.stats()["fallbacks"]) == (0, 0), lim.stats()


def test_single_server_keeps_awkward_keys_apart(redis_url: str, redis_prefix: str) -> None:
    """The same on one server (no Cluster): look-alike keys never share a budget."""
    lim = RedisLimiter(
        [Limit("1/minute", "sliding_window_log")],
        store=redis_url,
        key_prefix=redis_prefix,
        on_error="deny",
        **PATIENT,
    )
    assert [lim.hit(k).allowed for k in AWKWARD] == [True] * len(AWKWARD)
    assert [lim.hit(k).allowed for k in AWKWARD] == [False] * len(AWKWARD)
    assert lim.stats()["errors"] == 0


def crc16(data: bytes) -> int:
    """CRC16-XMODEM, as the Redis Cluster specification defines the key hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def keyslot(key: str) -> int:
    """The Cluster slot of ``key`` (spec, "Hash tags"): the bytes between the first ``{`` and
    the first ``}`` after it, if there are any, else the whole key."""
    b = key.encode()
    start = b.find(b"{")
    if start != -1:
        end = b.find(b"}", start + 1)
        if end > start + 1:
            return crc16(b[start + 1 : end]) % 16384
    return crc16(b) % 16384


def test_keyslot_follows_the_spec() -> None:
    assert crc16(b"123456789") == 0x31C3
    assert (keyslot("foo"), keyslot("bar"), keyslot("{bar}x")) == (12182, 5061, 5061)
    assert keyslot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384


# Any str that can be a key: every code point but lone surrogates (which no UTF-8 string holds:
# such a key is a ValueError, as in memory).
KEYLIKE = st.text(
    alphabet=st.sampled_from("{}%7DB25:#a\0é") | st.characters(exclude_categories=["Cs"]),
    max_size=12,
)
PROPERTY_LIMITER = RedisLimiter(
    [Limit("2/minute", "sliding_window_log"), Limit("2/minute", "sliding_window_log"), "5/hour"],
    store="redis://127.0.0.1:1/0",  # never reached: keys are computed without a connection
)


@settings(max_examples=2000, deadline=None)
@given(a=KEYLIKE, b=KEYLIKE)
def test_any_two_keys_never_share_state_and_each_keeps_one_slot(a: str, b: str) -> None:
    ka, kb = PROPERTY_LIMITER.redis_keys(a), PROPERTY_LIMITER.redis_keys(b)
    for ks in (ka, kb):
        assert len(ks) == len(set(ks)) == 5
        assert len({keyslot(k) for k in ks}) == 1, ks
    if a == b:
        assert ka == kb
    else:
        assert not set(ka) & set(kb), (a, b, ka, kb)


def test_a_bad_key_is_an_error_naming_key() -> None:
    # No Redis is reached: the key is refused before any call, on every method.
    lim = RedisLimiter("1/second", store="redis://127.0.0.1:1/0", on_error="deny")
    for method in ("hit", "allow", "test", "reset", "redis_keys"):
        with pytest.raises(ValueError, match=r"^key must be text that UTF-8 can encode"):
            getattr(lim, method)("\ud800")
        with pytest.raises(TypeError, match=r"^key must be a str, got NoneType"):
            getattr(lim, method)(None)

    async def awaited() -> None:
        for method in ("ahit", "aallow", "atest", "areset"):
            with pytest.raises(ValueError, match=r"^key must be text"):
                await getattr(lim, method)("\ud800")
            with pytest.raises(TypeError, match=r"^key must be a str"):
                await getattr(lim, method)(b"k")

    asyncio.run(awaited())


# --------------------------------------------------------------------------------------------
# Store URLs

PW = "s3cret-pw"

BAD_URLS = [
    ("redis://127.0.0.1:6379/-1", "database"),
    ("redis://127.0.0.1:6379/abc", "database"),
    ("redis://127.0.0.1:6379/0/1", "database"),
    ("redis://127.0.0.1:6379?db=3", "database"),
    ("redis://:99999", "host"),  # the first thing wrong: no host before the port
    ("redis://127.0.0.1:99999/0", "port"),
    ("redis://127.0.0.1:0/0", "port"),
    ("redis://127.0.0.1:x/0", "port"),
    ("rediss://127.0.0.1:70000", "port"),
    ("redis://:6379/0", "host"),
    ("redis://exa mple:6379/0", "host"),
    ("redis://0.0.0.0:6379/0", "host"),
    ("unix:///tmp/redis.sock?db=-1", "database"),
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:99999", "port"),
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:x", "port"),
    ("redis+cluster://127.0.0.1:7000,:7001", "host"),
    ("redis+cluster://127.0.0.1:7000/3", "database"),
    ("redis+cluster://127.0.0.1:7000/x", "database"),
    ("redis+sentinel://127.0.0.1:notaport/mymaster/0", "port"),
    ("redis+sentinel://127.0.0.1:26379,127.0.0.1:0/mymaster", "port"),
    ("redis+sentinel://:26379/mymaster", "host"),
    ("redis+sentinel://127.0.0.1:26379/mymaster/-1", "database"),
    ("redis+sentinel://127.0.0.1:26379/-1", "database"),
    ("redis+sentinel://127.0.0.1:26379/mymaster?db=-1", "database"),
    # Parameters redis-rs would silently ignore.
    ("redis://127.0.0.1:6379/0?timeout=3", "parameter"),
    ("redis+cluster://127.0.0.1:7000?readonly=1", "parameter"),
]


def with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme == "unix":
        return url + ("&" if "?" in url else "?") + f"pass={PW}"
    return f"{scheme}://app:{PW}@{rest}"


@pytest.mark.parametrize(("url", "part"), BAD_URLS)
def test_bad_store_url_names_the_part(url: str, part: str) -> None:
    for u in (url, with_password(url)):
        with pytest.raises(ValueError, match=f"store.*{part}") as e:
            RedisLimiter("5/minute", store=u)
        assert PW not in str(e.value)


@pytest.mark.parametrize(("url", "part"), BAD_URLS[:3] + BAD_URLS[13:14])
def test_bad_store_url_for_a_breaker(url: str, part: str) -> None:
    with pytest.raises(ValueError, match=f"store.*{part}"):
        CircuitBreaker("payments", store=with_password(url))


GOOD_URLS = [
    "redis://127.0.0.1",
    "redis://127.0.0.1:6379",
    "redis://127.0.0.1:6379/",
    "redis://127.0.0.1:6379/15",
    "redis://localhost:6379/0?protocol=resp3",
    "redis://[::1]:6379/0",
    "redis://app:p%40ss@localhost:6379/0",
    "rediss://localhost:6380/0",
    "unix:///tmp/redis.sock",
    "unix:///tmp/redis.sock?db=2",
    "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
    "redis+cluster://127.0.0.1:7000/0",
    "redis+cluster://[::1]:7000,localhost",
    "rediss+cluster://app:pw@127.0.0.1:7000",
    "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
    "redis+sentinel://127.0.0.1:26379/cache/3?sentinel_password=x",
    "sentinel://localhost:26379/0",
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_good_store_urls_are_accepted(url: str) -> None:
    RedisLimiter("5/minute", store=url)


@settings(max_examples=200, deadline=None)
@given(port=st.integers(min_value=-(2**20), max_value=2**20))
def test_ports_from_1_to_65535(port: int) -> None:
    urls = [
        f"redis://127.0.0.1:{port}/0",
        f"redis+cluster://127.0.0.1:7000,127.0.0.1:{port}",
        f"redis+sentinel://127.0.0.1:{port}/mymaster/0",
    ]
    for url in urls:
        if 1 <= port <= 65535:
            RedisLimiter("5/minute", store=url)
        else:
            with pytest.raises(ValueError, match="port"):
                RedisLimiter("5/minute", store=url)


@settings(max_examples=200, deadline=None)
@given(db=st.integers(min_value=-(2**70), max_value=2**70))
def test_databases_are_whole_numbers(db: int) -> None:
    single = [f"redis://127.0.0.1:6379/{db}", f"redis+sentinel://127.0.0.1:26379/m/{db}"]
    for url in single:
        if 0 <= db < 2**31 - 1:
            RedisLimiter("5/minute", store=url)
        else:
            with pytest.raises(ValueError, match="database"):
                RedisLimiter("5/minute", store=url)
    cluster = f"redis+cluster://127.0.0.1:7000/{db}"
    if db == 0:
        RedisLimiter("5/minute", store=cluster)
    else:
        with pytest.raises(ValueError, match="database"):
            RedisLimiter("5/minute", store=cluster)


def test_store_property_hides_passwords_anywhere() -> None:
    """``store`` (and every message) hides the password, even one with characters a URL
    should have escaped, and a Sentinel password in the query."""
    lim = RedisLimiter(
        "5/minute", store=f"redis+sentinel://app:{PW}@127.0.0.1:26379/m?sentinel_password=zz9top"
    )
    assert PW not in lim.store and "zz9top" not in lim.store, lim.store
    for url in (
        f"redis://app:{PW}/x@127.0.0.1:6379/0",
        f"redis+sentinel://127.0.0.1:26379/m?bogus=1&sentinel_password={PW}",
    ):
        with pytest.raises(ValueError, match="store") as e:
            RedisLimiter("5/minute", store=url)
        assert PW not in str(e.value), str(e.value)
