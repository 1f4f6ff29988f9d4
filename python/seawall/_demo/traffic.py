"""The demo's clients: real HTTP from httpx, each client from its own loopback address.

On Linux every address of 127.0.0.0/8 is the loopback, so each client binds its own (127.0.0.2,
127.0.0.3, ...) and the server sees four different peers, as it would see four machines. Where
only 127.0.0.1 exists (macOS by default), the clients share it and the server keys them by an
``X-Api-Key`` header instead (:func:`loopback_aliases`).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

#: Outcomes, as the display shows them.
OK, LIMITED, BREAKER, FAILED, ERROR = "ok", "429", "503", "502", "error"


@dataclass
class Tally:
    """What one client sent and what it got back."""

    sent: int = 0
    admitted: int = 0  # any answer but a 429: the middleware let it through
    limited: int = 0  # 429
    breaker_open: int = 0  # 503: admitted, but the breaker did not call the dependency
    upstream_failed: int = 0  # 502: the dependency failed
    errors: int = 0  # no HTTP answer at all
    login_sent: int = 0
    login_admitted: int = 0
    login_limited: int = 0
    keys: set[str] = field(default_factory=set)  # the keys the server says it charged
    forged: set[str] = field(default_factory=set)  # distinct X-Forwarded-For values written
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=30))


@dataclass
class Client:
    """A simulated client: ``name``, what it does (``behaviour``), where it comes from."""

    name: str
    behaviour: str
    address: str
    api_key: str | None
    tally: Tally = field(default_factory=Tally)

    async def request(
        self, http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
    ) -> None:
        if self.api_key is not None:
            headers = {**headers, "X-Api-Key": self.api_key}
        login = path == "/login"
        t = self.tally
        t.sent += 1
        t.login_sent += login
        try:
            response = await http.request(method, path, headers=headers)
        except httpx.HTTPError:
            t.errors += 1
            t.recent.append(ERROR)
            return
        if response.status_code == 429:
            t.limited += 1
            t.login_limited += login
            t.recent.append(LIMITED)
            return
        t.admitted += 1
        t.login_admitted += login
        try:
            key = response.json().get("key")
        except ValueError:
            key = None
        if isinstance(key, str):
            t.keys.add(key)
        if response.status_code == 503:
            t.breaker_open += 1
            t.recent.append(BREAKER)
        elif response.status_code == 502:
            t.upstream_failed += 1
            t.recent.append(FAILED)
        else:
            t.recent.append(OK)


Behaviour = Callable[[Client, httpx.AsyncClient, Callable[[], bool]], Awaitable[None]]


async def _steady(client: Client, http: httpx.AsyncClient, running: Callable[[], bool]) -> None:
    """A well-behaved user: logs in once, then one request every 0.2 s (5/s, half its budget)."""
    await client.request(http, "POST", "/login", {})
    while running():
        await client.request(http, "GET", "/api/quote", {})
        await asyncio.sleep(0.2)


async def _bursty(client: Client, http: httpx.AsyncClient, running: Callable[[], bool]) -> None:
    """A batch job: 25 requests at once, then quiet for 2.5 s."""
    while running():
        await asyncio.gather(*(client.request(http, "GET", "/api/quote", {}) for _ in range(25)))
        for _ in range(25):  # quiet, but stops promptly at the end of the run
            if not running():
                return
            await asyncio.sleep(0.1)


async def _abusive(client: Client, http: httpx.AsyncClient, running: Callable[[], bool]) -> None:
    """A scraper guessing passwords on the side: 4 requests and a login every 0.1 s (~40/s)."""
    while running():
        await asyncio.gather(
            *(client.request(http, "GET", "/api/quote", {}) for _ in range(4)),
            client.request(http, "POST", "/login", {}),
        )
        await asyncio.sleep(0.1)


async def _spoofer(client: Client, http: httpx.AsyncClient, running: Callable[[], bool]) -> None:
    """As abusive, each request claiming to come from a new address in X-Forwarded-For."""
    while running():
        batch = []
        for _ in range(4):
            forged = f"203.0.113.{random.randrange(1, 255)}, 198.51.100.{random.randrange(1, 255)}"
            client.tally.forged.add(forged)
            batch.append(client.request(http, "GET", "/api/quote", {"X-Forwarded-For": forged}))
        await asyncio.gather(*batch)
        await asyncio.sleep(0.1)


BEHAVIOURS: dict[str, tuple[str, Behaviour]] = {
    "steady": ("5/s, logs in once", _steady),
    "bursty": ("25 at once every 2.5 s", _bursty),
    "abusive": ("40/s, guesses passwords", _abusive),
    "spoofer": ("40/s, forged XFF header", _spoofer),
}


def loopback_aliases() -> bool:
    """Whether this machine lets a client bind a loopback address other than 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


def make_clients(own_addresses: bool) -> list[Client]:
    """The four clients: each from its own loopback address, or all from 127.0.0.1 with their
    own API keys."""
    return [
        Client(
            name,
            behaviour,
            address=f"127.0.0.{i + 2}" if own_addresses else "127.0.0.1",
            api_key=None if own_addresses else f"key-{name}",
        )
        for i, (name, (behaviour, _)) in enumerate(BEHAVIOURS.items())
    ]


async def drive(base_url: str, clients: list[Client], running: Callable[[], bool]) -> None:
    """Runs every client against ``base_url`` while ``running()``; returns when all have
    stopped (each finishes the requests it has in flight)."""

    async def one(client: Client) -> None:
        transport = httpx.AsyncHTTPTransport(
            local_address=client.address, limits=httpx.Limits(max_connections=30)
        )
        async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10.0) as http:
            await BEHAVIOURS[client.name][1](client, http, running)

    await asyncio.gather(*(one(c) for c in clients))
