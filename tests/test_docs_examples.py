"""Every ```python block of README.md and docs/ runs, as written, as a script.

Each block is written to a file named after its page and line and run as ``python <file>`` in a
process of its own (so no block sees another's breakers, statistics or default clock, as a
reader who copies one would not); it must exit with 0 within ``TIMEOUT``. A block that needs Redis
reads the environment variable ``SEAWALL_REDIS_URL`` (the pages say so beside the block); this
test sets it to a real redis-server of the block's own, started by ``tests/redis_servers.py`` on a
free loopback port, so blocks never share Redis state. Blocks start no network server that
outlives them: HTTP examples go through httpx's ASGI transport, MCP examples through fastmcp's
in-memory client.

The relative links of README.md (which mkdocs does not build) are checked here too; the links of
docs/ are checked by ``mkdocs build --strict`` in scripts/test.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_servers import RedisServer, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
# A block that runs longer than this is stuck: every example finishes in about a second.
TIMEOUT = 120
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# A fence that opens a Python block at the start of a line, and the fence that closes it.
_OPEN = re.compile(r"^```python\s*$")
_CLOSE = re.compile(r"^```\s*$")


def _blocks(page: Path) -> Iterator[tuple[int, str]]:
    """``(first line number, source)`` of each ```python block of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if _OPEN.match(lines[i]):
            start = i + 1
            j = start
            while j < len(lines) and not _CLOSE.match(lines[j]):
                j += 1
            if j == len(lines):
                raise AssertionError(f"{page.name}:{i + 1}: a ```python block is never closed")
            yield start + 1, "\n".join(lines[start:j]) + "\n"
            i = j
        i += 1


BLOCKS = [
    pytest.param(page, line, source, id=f"{page.relative_to(ROOT)}:{line}")
    for page in PAGES
    for line, source in _blocks(page)
]


def test_the_pages_have_python_blocks() -> None:
    """The collection itself: a fence spelled differently would silently run nothing."""
    assert any(page.name == "README.md" for page, *_ in (p.values for p in BLOCKS))
    assert sum(1 for p in BLOCKS if "docs" in p.values[0].parts) >= 10
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for fence in re.findall(r"^```[ \t]*(\S*)", text, flags=re.MULTILINE):
            assert fence in ("", "python", "sh", "text"), f"{page.name}: fence ```{fence}"


@pytest.mark.parametrize(("page", "line", "source"), BLOCKS)
def test_code_block_runs(page: Path, line: int, source: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SEAWALL_REDIS_URL"}
    server: RedisServer | None = None
    if "SEAWALL_REDIS_URL" in source:
        if redis_server_binary() is None:
            pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
        server = RedisServer().start()
        env["SEAWALL_REDIS_URL"] = server.url
    # Named after its page and line, so a traceback says where the block is.
    script = tmp_path / f"{str(page.relative_to(ROOT)).replace('/', '_')}_line{line}.py"
    script.write_text(source, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        if server is not None:
            server.close()
    assert done.returncode == 0, (
        f"{page.relative_to(ROOT)}:{line} exited with {done.returncode}\n{done.stderr}"
    )


def test_readme_is_a_front_door() -> None:
    """At most 200 lines, and the two set-up commands CI and developers run, exactly."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "\nbash scripts/demo.sh   #" in text
    assert "\nbash scripts/test.sh   #" in text


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_links_resolve() -> None:
    """Each relative link of README.md names a file of the repository (and, with ``#``, one of
    its headings as mkdocs spells the anchor)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [target for target in _LINK.findall(text) if "://" not in target]
    assert links, "README.md links to no page"
    for target in links:
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        assert file.is_file(), f"README.md links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+\s+(.*)$", file.read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {_slug(h) for h in headings}
            assert anchor in slugs, f"README.md links to {target}: no such heading"


def _slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) and GitHub give a heading, for plain headings."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s]+", "-", text)


def test_mkdocs_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """mkdocs.yml's strict mode catches what scripts/test.sh relies on it for: a copy of the
    manual with one link to a missing page and one to a missing heading does not build."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install '.[docs]'")
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "testing.md"
    page.write_text(
        page.read_text(encoding="utf-8") + "\n[gone](nowhere.md) [lost](limits.md#no-such)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "nowhere.md" in done.stderr and "no-such" in done.stderr


def test_code_blocks_are_lint_clean(tmp_path: Path) -> None:
    """The examples follow the project's own ruff rules and format (pyproject.toml), as the code
    they document does: a reader copies them."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra installs it)")
    for param in BLOCKS:
        page, line, source = param.values
        assert isinstance(page, Path)
        name = f"{str(page.relative_to(ROOT)).replace('/', '_')}_line{line}.py"
        (tmp_path / name).write_text(str(source), encoding="utf-8")
    config = str(ROOT / "pyproject.toml")
    for command in (["check"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [ruff, *command, "--config", config, "--no-cache", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
