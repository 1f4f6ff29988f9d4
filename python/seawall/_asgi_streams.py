"""What the ASGI middleware does to a request's channels besides deciding it: reading messages
ahead of the app and handing them over unchanged (:class:`ReadAhead`), and learning the MCP
session ids the app issues from its responses (:func:`send_learning_sessions`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from seawall.types import Message, Receive, Send

__all__ = ["ReadAhead", "send_learning_sessions"]

_SESSION_HEADER = b"mcp-session-id"


def send_learning_sessions(send: Send, issue: Callable[[bytes], None]) -> Send:
    """``send``, recording the MCP session id the app issues in ``http.response.start``."""

    def send_learning(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", ()):
                if len(name) == 14 and name.lower() == _SESSION_HEADER:
                    if isinstance(value, bytes):
                        issue(value)
                    break
        return send(message)

    return send_learning


class ReadAhead:
    """Messages read from ``receive`` before the app runs, handed to the app first, in order,
    unchanged; then the live channel."""

    __slots__ = ("_receive", "pending")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.pending: deque[Message] = deque()

    async def read(self) -> Message:
        """Read one message for the middleware, keeping it for the app."""
        message = await self._receive()
        self.pending.append(message)
        return message

    async def receive(self) -> Message:
        """The app's ``receive``."""
        if self.pending:
            return self.pending.popleft()
        return await self._receive()
