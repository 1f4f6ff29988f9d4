"""What a user installs: the license in the sdist, the Linux wheel policy, the `cli` extra that
the demo needs, and the CI workflow that builds the wheels. (Wheels themselves are not built here,
which takes minutes: ``python scripts/check_dist.py`` builds both and checks them.)"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tarfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _maturin() -> list[str]:
    exe = shutil.which("maturin")
    if exe is not None:
        return [exe]
    pytest.importorskip("maturin")
    return [sys.executable, "-m", "maturin"]


def test_the_license_is_mit_everywhere() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert cargo["package"]["license"] == "MIT"


def test_the_sdist_carries_the_license(tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("maturin sdist asks cargo for the crate's files")
    subprocess.run(
        [*_maturin(), "sdist", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("seawall-*.tar.gz")
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as tar:
        names = set(tar.getnames())
        assert f"{top}/LICENSE" in names
        license_file = tar.extractfile(f"{top}/LICENSE")
        assert license_file is not None
        assert license_file.read().decode() == (ROOT / "LICENSE").read_text()
        pkg_info_file = tar.extractfile(f"{top}/PKG-INFO")
        assert pkg_info_file is not None
        pkg_info = HeaderParser().parsestr(pkg_info_file.read().decode())
    assert pkg_info["License-Expression"] == "MIT"
    assert pkg_info.get_all("License-File") == ["LICENSE"]
    # What a build from the sdist needs is there too.
    for needed in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "python/seawall/__init__.py"):
        assert f"{top}/{needed}" in names, needed


def test_linux_wheels_are_manylinux2014_and_abi3() -> None:
    maturin = PYPROJECT["tool"]["maturin"]
    assert maturin["compatibility"] == "manylinux2014"  # glibc >= 2.17, not the build host's
    assert "abi3" in maturin["features"]


def _third_party_imports(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "seawall" and n not in sys.stdlib_module_names}


def test_the_cli_extra_installs_what_the_demo_imports() -> None:
    from packaging.requirements import Requirement

    package = ROOT / "python" / "seawall"
    imported = _third_party_imports([package / "demo.py", *(package / "_demo").glob("*.py")])
    assert imported == {"httpx", "rich", "starlette", "uvicorn"}
    cli = {Requirement(r).name for r in PYPROJECT["project"]["optional-dependencies"]["cli"]}
    assert imported <= cli


def test_the_ci_workflow_builds_the_usual_platforms() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "CI.yml").read_text())
    jobs = workflow["jobs"]

    def targets(job: str) -> set[str]:
        return {p["target"] for p in jobs[job]["strategy"]["matrix"]["platform"]}

    def build_step(job: str) -> dict[str, Any]:
        (step,) = [s for s in jobs[job]["steps"] if s.get("name") == "Build wheels"]
        return dict(step["with"])

    assert targets("linux") == {"x86_64", "aarch64"}
    assert build_step("linux")["manylinux"] == "2014"
    assert targets("musllinux") == {"x86_64", "aarch64"}
    assert build_step("musllinux")["manylinux"] == "musllinux_1_2"
    assert targets("macos") == {"x86_64", "aarch64"}
    assert targets("windows") == {"x64"}
    for job in ("linux", "musllinux", "macos", "windows"):
        # abi3: one build per platform, no interpreter search, no free-threaded build
        steps = [s for s in jobs[job]["steps"] if "maturin-action" in s.get("uses", "")]
        assert len(steps) == 1, job
        assert "--find-interpreter" not in build_step(job)["args"], job
    assert any("scripts/test.sh" in s.get("run", "") for s in jobs["test"]["steps"])
    assert set(jobs["release"]["needs"]) == {
        "test",
        "linux",
        "musllinux",
        "windows",
        "macos",
        "sdist",
    }
