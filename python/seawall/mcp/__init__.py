"""Rate-limited MCP tools: a decorator for fastmcp and the official SDK; a fastmcp middleware.

``@rate_limit_tool("3/10 seconds")`` limits one tool per MCP client (by default the
authenticated principal, else the client's address; see "Keys" below). Write it below
``@mcp.tool()`` (for the SDK, ``@server.tool()``), next to the function, so the server
registers the limited tool::

    @mcp.tool()
    @rate_limit_tool("3/10 seconds")
    async def search(query: str, ctx: Context) -> dict: ...

The wrapped tool keeps its signature, so the framework generates the same input schema and still
injects its ``Context``; sync and async tools alike. A tool without a ``Context`` parameter needs
none: the wrapper's signature gains a hidden keyword-only ``seawall_ctx`` parameter annotated
with the installed frameworks' ``Context`` classes, which each framework leaves out of the input
schema and fills with its context, and which the wrapper removes before calling the tool (so such
a tool then costs fastmcp what a tool declaring ``ctx: Context`` costs it: its dependency
injection, some tens of µs per call). A refused call returns seed 004's dict
(``on_limit="error"``; the tool's declared return type must admit it, else ``TypeError``) or
raises a tool error (``on_limit="raise"``) that both frameworks turn into an ``isError`` result
carrying ``retry after N s``.

The other order, ``@rate_limit_tool`` above ``@mcp.tool()``, cannot work: the server registered
the undecorated function before the limit was applied, and neither framework's decorator returns
anything that leads back to the registered tool. fastmcp marks the function it registered
(``__fastmcp__``), so with fastmcp that order raises ``TypeError`` at import time, naming the
order to write (so does a function marked with fastmcp's standalone ``@tool``, or registered
unlimited on another fastmcp server: apply the limit before either). The official SDK's
``@server.tool()`` returns the function untouched and records nothing on it, so nothing can
tell, and that order silently leaves the tool unlimited: with the SDK, always write
``@rate_limit_tool`` below ``@server.tool()``.

Keys: whose budget a call spends, by who writes it (``key=`` of both; keys are namespaced by
their source, ``principal:…``, ``ip:…``, ``conn:…``, ``session:…``, ``client-id:…``,
``user_id:…``, ``key:…``, so that a value one source yields never spends another's budget):

* ``"auto"`` (default), what a client cannot choose: the authenticated principal when the
  server has auth (the access token's client id, issuer and subject, hashed: ``principal:…``);
  else, over HTTP (streamable HTTP, SSE), the client address: the peer, or the address that
  ``trusted_proxies=`` report in the one ``proxy_header=`` they write (default
  ``X-Forwarded-For``; believed only from those peers, exactly as ``seawall.RateLimitMiddleware``
  does; IPv6 per /64), so
  clients behind one NAT or untrusted proxy share a budget; else (stdio, in memory) the
  connection, one per connected client object (a stdio server process serves one client). A
  client that reconnects in memory gets a fresh budget: in-process clients are your own code.
* ``"principal"``: the same, and a warning (once) if a request is not authenticated.
* ``"address"``: the client address (or the connection), even for authenticated requests.
* ``"session"``: the session the server issued, on handshake-era connections it keeps: the
  ``Mcp-Session-Id`` it handed out over stateful streamable HTTP (the SDK answers 404 to any
  other), else one id per connection (SSE, stdio, in memory). A client resets its budget by
  opening a new session, so use it where sessions are costly to open or clients trusted.
  2026-07-28 connections (fastmcp's and the SDK's default) and ``stateless_http=True`` have no
  server-issued session (``ctx.session_id`` is new on every request, or the client's own
  header): there the key is ``"auto"``'s, and a warning says so once.
* ``"client-id"`` (alias ``"client"``): the ``client_id`` in the request's ``_meta``, which
  the client writes (rotating it resets the budget): only for clients you trust. Without one,
  ``"auto"``'s key. ``"user_id"`` (decorator): the tool's ``user_id`` argument, client-written
  too. A callable ``key``: whatever it returns.

A tool run as a fastmcp background task has no request: unless the access token is still known
there, its calls share one budget per tool (a warning says so once; pass a ``key`` callable).

Keys longer than ``max_key_length`` (default 256 characters) are replaced by ``sha256:`` and
their digest (71 characters), as the HTTP middleware does, so that a client writing huge ids
cannot make the limiter store them, and two different long ids never share a budget.

``ToolRateLimitMiddleware`` limits every tool call of a fastmcp server by client and tool name,
with per-tool limits, without decorating any tool; other requests (``tools/list`` and so on)
pass. A call of a tool name the server does not have spends the client's budget of
``"<unknown>"``. (Its former name, ``seawall.mcp.RateLimitMiddleware``, still works but is
deprecated: it is the name of the HTTP middleware, :class:`seawall.RateLimitMiddleware`.)

Refusals raised as errors (``on_limit="raise"``, the middleware) carry fastmcp's ``log_level``
DEBUG, so fastmcp does not log every refused call at ERROR. (The official SDK logs every tool
error at INFO, refusals included.)

``tool_stats()`` / ``reset_tool_stats()``: total calls, limited calls and the time of the last
refusal, per tool, for both.
"""

# One module per idea: _decorator (rate_limit_tool), _middleware (ToolRateLimitMiddleware),
# _identity (whose budget a call spends), _context (the MCP context of the current call),
# _signature (a tool's signature as the frameworks read it), _stats (per-tool statistics),
# _errors (ToolRateLimitedError). Their public names are imported from here.

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any

from seawall.mcp._decorator import DecisionLike, KeyFunc, KeyLimiter, rate_limit_tool
from seawall.mcp._errors import ToolRateLimitedError
from seawall.mcp._identity import KeyName, session_identity
from seawall.mcp._middleware import ToolRateLimitMiddleware
from seawall.mcp._stats import reset_tool_stats, tool_stats

__all__ = [
    "DecisionLike",
    "KeyFunc",
    "KeyLimiter",
    "KeyName",
    "ToolRateLimitMiddleware",
    "ToolRateLimitedError",
    "rate_limit_tool",
    "reset_tool_stats",
    "session_identity",
    "tool_stats",
]

# Old names: each still works, with a DeprecationWarning on every access, and is left out of
# ``__all__`` (so ``from seawall.mcp import *`` warns about nothing). Type checkers see them as
# plain aliases; a module ``__getattr__`` visible to them would make every misspelt name ``Any``.
if TYPE_CHECKING:
    RateLimitMiddleware = ToolRateLimitMiddleware
else:
    _DEPRECATED: dict[str, tuple[str, Any]] = {
        "RateLimitMiddleware": ("ToolRateLimitMiddleware", ToolRateLimitMiddleware),
    }

    def __getattr__(name: str) -> Any:
        deprecated = _DEPRECATED.get(name)
        if deprecated is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        new_name, value = deprecated
        # ``from seawall.mcp import X`` looks X up twice: first importlib's ``hasattr`` (for a
        # package), then the import itself, which warns; so that statement warns once.
        if sys._getframe(1).f_code.co_name == "_handle_fromlist":
            return value
        warnings.warn(
            f"seawall.mcp.{name} is deprecated: use seawall.mcp.{new_name} (the fastmcp "
            "middleware; seawall.RateLimitMiddleware is the HTTP one)",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
