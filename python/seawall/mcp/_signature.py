"""A tool's signature, as the MCP frameworks read it: its ``Context`` parameter, the hidden one a
tool without it gets, whether its return type admits the refusal dict, and whether a framework
already registered it (then a limit applied now would change nothing)."""

from __future__ import annotations

import functools
import inspect
import operator
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "HIDDEN_CTX",
    "admits_error_dict",
    "context_param",
    "refuse_registered",
    "signature",
    "with_hidden_context",
]


def signature(func: Callable[..., Any]) -> inspect.Signature:
    """``func``'s signature with its annotations evaluated when they can be (as the SDK does)."""
    try:
        return inspect.signature(func, eval_str=True)
    except Exception:
        return inspect.signature(func)


def _is_context_annotation(annotation: Any, classes: tuple[type, ...]) -> bool:
    if isinstance(annotation, str):  # not evaluable: judge by the name, as a reader would
        return re.search(r"\bContext\b", annotation) is not None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_context_annotation(typing.get_args(annotation)[0], classes)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_context_annotation(a, classes) for a in typing.get_args(annotation))
    return inspect.isclass(annotation) and issubclass(annotation, classes)


def context_param(sig: inspect.Signature, classes: tuple[type, ...]) -> str | None:
    """The parameter the framework injects its ``Context`` into, if the tool declares one."""
    for name, param in sig.parameters.items():
        if param.annotation is not param.empty and _is_context_annotation(
            param.annotation, classes
        ):
            return name
    return None


# The keyword-only parameter a tool without a ``Context`` parameter gets, so that the framework
# injects its ``Context`` (annotated with every installed framework's class: each excludes it
# from the input schema and fills it); the wrapper removes it before calling the tool.
# (Not ``_``-prefixed: the SDK rejects tool parameters whose names start with one.)
HIDDEN_CTX = "seawall_ctx"


def with_hidden_context(
    wrapper: Callable[..., Any], func: Callable[..., Any], classes: tuple[type, ...]
) -> None:
    sig = signature(func)
    if HIDDEN_CTX in sig.parameters:
        raise TypeError(
            f"{func.__name__!r} has a parameter named {HIDDEN_CTX!r}, the name seawall gives "
            "the Context it asks for: rename it, or give the tool a Context parameter"
        )
    params = list(sig.parameters.values())
    hidden = inspect.Parameter(
        HIDDEN_CTX,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=functools.reduce(operator.or_, classes, type(None)),
    )
    at = len(params)
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        at -= 1
    params.insert(at, hidden)
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    # Both frameworks find ``Context`` parameters through ``typing.get_type_hints``, which reads
    # ``__annotations__`` (functools.wraps shares ``func``'s dict: replace it, don't mutate it).
    annotations = dict(getattr(func, "__annotations__", {}))
    annotations[HIDDEN_CTX] = hidden.annotation
    wrapper.__annotations__ = annotations


def admits_error_dict(annotation: Any) -> bool:
    """Whether a tool declared to return ``annotation`` may return the refusal dict (its output
    schema, which both frameworks derive from the annotation and check, accepts one)."""
    if annotation in (inspect.Signature.empty, Any, object, dict, Mapping):
        return True
    if isinstance(annotation, str):  # not evaluable: leave it to the framework
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return admits_error_dict(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(admits_error_dict(a) for a in args)
    if origin in (dict, Mapping):  # ``typing.Dict`` and ``typing.Mapping`` too
        return not args or (args[0] in (str, Any) and args[1] in (Any, object))
    return False


def refuse_registered(func: object) -> None:
    """A TypeError for a function a framework already holds: wrapping it would change nothing."""
    registered = hasattr(func, "__fastmcp__")  # fastmcp's ``@mcp.tool()`` / ``@tool`` marks it
    is_tool = not inspect.isroutine(func) and hasattr(func, "fn") and hasattr(func, "name")
    if not (registered or is_tool):
        return
    what = getattr(func, "__name__", None) or getattr(func, "name", None) or repr(func)
    raise TypeError(
        f"@rate_limit_tool was applied to {what!r} after it became an MCP tool (it carries "
        "fastmcp's tool registration, or is a tool object): the server would keep calling the "
        "undecorated function. Write @rate_limit_tool below @mcp.tool(), next to the "
        "function:\n\n    @mcp.tool()\n    @rate_limit_tool(...)\n    def tool(...): ..."
    )
