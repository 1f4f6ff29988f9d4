"""``send_with_headers``: an ASGI ``send`` that adds headers to the response start, for the
middleware and the drop-in middlewares that answer with the app's own response."""

from __future__ import annotations

from collections.abc import Awaitable

from seawall.types import Message, Send

__all__ = ["Headers", "send_with_headers"]

Headers = list[tuple[bytes, bytes]]


def send_with_headers(send: Send, headers: Headers) -> Send:
    """``send``, adding ``headers`` to ``http.response.start``; every other message untouched.

    A plain function returning ``send``'s awaitable, not a coroutine of its own: one frame less
    per message on the hot path, and ``await send_with_headers(message)`` works the same.
    """

    def send_with_headers(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            # A new message and a new list: the app's own may be shared (a prepared message, a
            # Response object sent twice), and must not grow nor carry this request's values.
            # ASGI messages are dicts: ``copy`` then one item costs ~60 ns less than
            # ``{**message, ...}``, ~45 ns more than changing the app's message in place.
            extended = [*message.get("headers", ()), *headers]
            message = message.copy()  # type: ignore[attr-defined]
            message["headers"] = extended
        return send(message)

    return send_with_headers
