"""``send_with_headers``: an ASGI ``send`` that adds headers to the response start, for the
middlewares that answer with the app's own response (the native ``HeaderSend``)."""

from __future__ import annotations

from seawall._seawall import HeaderSend
from seawall.types import Send

__all__ = ["Headers", "send_with_headers"]

Headers = list[tuple[bytes, bytes]]


def send_with_headers(send: Send, headers: Headers) -> Send:
    """``send``, adding ``headers`` to ``http.response.start``; every other message is passed
    as it is. The start message is sent as a new dict with a new list: the app's own may be
    shared (a prepared message, a ``Response`` sent twice), and must neither grow nor carry this
    request's values. Native: no Python frame per message; the bound method ``send`` rather than
    the object, since a method's arguments are passed in place and a native ``__call__``'s in a new
    tuple."""
    return HeaderSend(send, headers).send
