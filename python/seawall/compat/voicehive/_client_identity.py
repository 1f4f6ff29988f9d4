"""Who a request comes from, as the middleware classifies it (B4, B5; defects 1, 3, 13).

* A configured service token in ``X-Service-Token`` (compared in constant time with every token)
  makes the request ``internal`` (``internal:<service>``). Header names alone are never believed:
  ``X-Internal-Service`` / ``X-Kubernetes-Service`` carry no secret. A wrong token is ignored.
* ``scope["user"]`` set by an authentication middleware, authenticated: ``authenticated``, keyed
  by its ``identity`` (or ``display_name``).
* ``Authorization: ApiKey <k>``: ``api`` (``apikey:<sha256(k)[:32]>``); ``Bearer <t>``:
  ``authenticated`` (``jwt:<sha256(t)[:32]>``). No key material lands in keys or logs.
* Otherwise ``anonymous`` (``ip:<address>``): the peer's address, or, when the peer is a trusted
  proxy, the rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (uvicorn's
  walk). Untrusted peers' proxy headers are ignored.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from seawall._keys import DIGEST_PREFIX, digest
from seawall.types import Scope

__all__ = ["Identifier"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _short_hash(text: str) -> str:
    """The first 32 hex digits of the text's SHA-256 (the service's id length)."""
    return digest(text)[len(DIGEST_PREFIX) :][:32]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class Identifier:
    """Classifies ASGI requests: ``identify(scope) -> (client_id, client_type)``."""

    def __init__(
        self,
        *,
        internal_service_tokens: Mapping[str, str] | None,
        service_token_header: str,
        trusted_proxies: Iterable[str],
    ) -> None:
        tokens = dict(internal_service_tokens or {})
        for name, token in tokens.items():
            if not isinstance(name, str) or not isinstance(token, str):
                raise TypeError(
                    "internal_service_tokens must map service names (str) to tokens (str)"
                )
            if not token:
                raise ValueError(f"internal_service_tokens[{name!r}] must not be empty")
        if not isinstance(service_token_header, str) or not service_token_header:
            raise ValueError("service_token_header must be a non-empty header name")
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]
        self._token_header = service_token_header.lower().encode("latin-1")
        if isinstance(trusted_proxies, str):
            raise TypeError("trusted_proxies must be a list of IPs / CIDRs, not one str")
        try:
            self._proxies: tuple[_Network, ...] = tuple(
                ipaddress.ip_network(p, strict=False) for p in trusted_proxies
            )
        except ValueError as e:
            raise ValueError(f"trusted_proxies: {e}") from e

    def service(self, scope: Scope) -> str | None:
        """The service whose token the request carries, if any (every token compared)."""
        if not self._tokens:
            return None
        given = _header(scope, self._token_header)
        if given is None:
            return None
        raw = given.encode("latin-1")
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(raw, token) and found is None:
                found = name
        return found

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._proxies)

    def client_ip(self, scope: Scope) -> str:
        """The client's address (see the module documentation); ``"unknown"`` without one."""
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self._proxies or not self._trusted(peer):
            return peer
        forwarded = _header(scope, b"x-forwarded-for")
        if not forwarded:
            return peer
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer

    def identify(self, scope: Scope) -> tuple[str, str]:
        service = self.service(scope)
        if service is not None:
            return f"internal:{service}", "internal"
        user: Any = scope.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            ident = getattr(user, "identity", None) or getattr(user, "display_name", "")
            return f"user:{_short_hash(str(ident))}", "authenticated"
        auth = _header(scope, b"authorization")
        if auth:
            scheme, _, credential = auth.strip().partition(" ")
            credential = credential.strip()
            if credential and scheme.lower() == "apikey":
                return f"apikey:{_short_hash(credential)}", "api"
            if credential and scheme.lower() == "bearer":
                return f"jwt:{_short_hash(credential)}", "authenticated"
        return f"ip:{self.client_ip(scope)}", "anonymous"
