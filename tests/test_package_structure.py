"""The Python package's structure (issue 12): modules of one idea each, no module reaching into
another's private names, ``seawall.mcp`` standing apart from the drop-in modules, short files."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import seawall

PACKAGE = Path(seawall.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_the_package_has_sources() -> None:
    # The checks below would pass on an empty list.
    assert len(SOURCES) > 20
    assert PACKAGE / "mcp" / "__init__.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    """``from seawall.x import _helper`` is how two rooms end up sharing one helper that neither
    owns: a shared helper lives, public, in the module that owns it. (A private *module*, such
    as the native ``seawall._seawall``, may be imported: its public names are its API.)"""
    offending = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = _absolute(node, path)
        if module != "seawall" and not module.startswith("seawall."):
            continue
        for alias in node.names:
            name = alias.name
            private = name.startswith("_") and not name.startswith("__")
            if private and not _is_module(f"{module}.{name}"):
                offending.append(f"line {node.lineno}: from {module} import {name}")
    assert not offending, offending


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            found += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return found


def test_mcp_does_not_import_the_drop_in_modules_in_its_source() -> None:
    paths = sorted((PACKAGE / "mcp").rglob("*.py"))
    assert paths
    for path in paths:
        compat = [m for m in _imports(path) if m.startswith("seawall.compat")]
        assert not compat, (path.name, compat)


def test_importing_mcp_loads_no_drop_in_module() -> None:
    code = (
        "import sys, seawall.mcp; "
        "print(sorted(m for m in sys.modules if m.startswith('seawall.compat')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _opening_comment(path: Path) -> str:
    """The comment lines at the top of the file and its module docstring."""
    text = path.read_text()
    comments = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comments.append(line.lstrip("# "))
    docstring = ast.get_docstring(ast.parse(text)) or ""
    return " ".join([*comments, docstring])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_source_files_are_short_or_say_why(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    if lines <= MAX_LINES:
        return
    assert f"longer than {MAX_LINES} lines because" in " ".join(_opening_comment(path).split()), (
        f"{path.name} has {lines} lines and its opening comment does not say why"
    )


def test_each_helper_has_one_home() -> None:
    """The helpers issue 12 found written several times are defined once."""
    definitions: dict[str, list[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.col_offset == 0:
                name = node.name.lstrip("_")
                definitions.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    for helper in ("whole_seconds", "now", "digest", "send_with_headers", "check_int"):
        assert len(definitions.get(helper, [])) == 1, (helper, definitions.get(helper))
