"""Keys too long to store: replaced by ``sha256:`` and their digest, so that a client writing
huge ids cannot make a limiter store them, and two different long ids never share a budget.

The HTTP middleware does the same natively (``max_key_length``); this is the Python side's one
home of it, for the MCP decorator and middleware and the drop-in modules.
"""

from __future__ import annotations

import hashlib

from seawall._args import check_int

__all__ = ["DIGEST_LENGTH", "DIGEST_PREFIX", "check_max_key_length", "digest"]

DIGEST_PREFIX = "sha256:"
#: The length of a digested key: why ``max_key_length`` may not be smaller.
DIGEST_LENGTH = len(DIGEST_PREFIX) + 64


def digest(key: str) -> str:
    """A fixed-length stand-in for a key over the cap: distinct keys keep distinct budgets (a
    lone surrogate is hashed as it is, not refused)."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_max_key_length(max_key_length: int) -> int:
    """``max_key_length``, checked: an int of at least :data:`DIGEST_LENGTH`."""
    if check_int("max_key_length", max_key_length) < DIGEST_LENGTH:
        raise ValueError(
            f"max_key_length must be at least {DIGEST_LENGTH} (the length of the digest that "
            f"replaces a longer key), got {max_key_length}"
        )
    return max_key_length
