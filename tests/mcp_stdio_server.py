"""A small MCP server over stdio for tests/test_mcp.py: one tool limited to 2 calls an hour."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP

from seawall.mcp import rate_limit_tool

mcp = FastMCP("seawall-stdio")


@mcp.tool()
@rate_limit_tool("2/hour")
def ping(n: int) -> dict[str, Any]:
    return {"n": n}


if __name__ == "__main__":
    mcp.run(transport="stdio", show_banner=False)
