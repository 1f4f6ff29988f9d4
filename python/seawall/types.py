"""Type aliases: ASGI's, as Starlette spells them (``Scope``, ``Message``, ``Receive``, ``Send``,
``ASGIApp``), so the middleware needs no web framework to import; and ``Limits``, what every
``limits=`` argument accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeAlias

from seawall._seawall import Limit

__all__ = ["ASGIApp", "Limits", "Message", "Receive", "Scope", "Send"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# What every ``limits=`` argument accepts: a limit string ("10/second; 1000/day"), a Limit, or a
# sequence of either.
Limits: TypeAlias = str | Limit | Sequence[str | Limit]
