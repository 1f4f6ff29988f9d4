"""Argument checks shared by the Python-side constructors: one error path, each message naming the
parameter (``TypeError`` for a wrong type, ``ValueError`` for a wrong value).

The native constructors check their own arguments; these are for what Python receives first (the
middleware, the FastAPI dependency, the decorators, the drop-in modules). None of them runs per
decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from seawall._seawall import Limit

__all__ = [
    "check_at_least_one",
    "check_bool",
    "check_int",
    "check_iterable",
    "check_limits",
    "check_optional_callable",
    "check_optional_str",
    "check_str",
    "check_strings",
]


def check_iterable(name: str, value: Any) -> Iterable[Any]:
    """``value`` if it is a list-like iterable (not a str or bytes)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    return value


def _check_type(name: str, value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_str(name: str, value: Any) -> str:
    return cast(str, _check_type(name, value, str, "a str"))


def check_optional_str(name: str, value: Any) -> str | None:
    return None if value is None else check_str(name, value)


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an int (a bool is not one here) of at least ``minimum``, if given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_at_least_one(name: str, value: Any) -> int:
    """``value`` if it is an int of at least 1; else ``ValueError`` whatever is wrong with it
    (the drop-in modules' contract)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int of at least 1, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    return cast(bool, _check_type(name, value, bool, "a bool"))


def check_optional_callable(name: str, value: Any) -> Any:
    """``value`` if it is callable or ``None``."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    return value


def check_strings(name: str, value: Any) -> list[str]:
    """A list of str from a list (or one str, taken as a list of one)."""
    if isinstance(value, str):
        return [value]
    items = list(check_iterable(name, value))
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold str, got {type(item).__name__}")
    return items


def check_limits(name: str, value: Any) -> str | Limit | list[str | Limit]:
    """What every ``limits=`` takes: a limit string, a :class:`seawall.Limit`, or a list of
    either (the native parser checks the strings)."""
    if isinstance(value, (str, Limit)):
        return value
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        return list(value)
    raise TypeError(
        f"{name} must be a limit string, a Limit or a list of them, got {type(value).__name__}"
    )
