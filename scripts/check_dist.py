"""Builds the sdist and this platform's wheel with maturin, lists them, and checks what a user gets.

    python scripts/check_dist.py                      # maturin build --release (--zig on Linux)
    python scripts/check_dist.py --profile fastdev    # the same policy checks, a faster build

Checks: LICENSE is in both (the wheel's ``.dist-info/licenses/``); the metadata says MIT; the
wheel is abi3 (``cp310-abi3``); on Linux it is tagged manylinux_2_17 (manylinux2014) and its
extension asks for no glibc symbol newer than 2.17. On Linux the wheel is built with
``--zig`` (``pip install ziglang``), which links against glibc 2.17 on any host; without zig,
run it in the manylinux2014 container (a newer host's glibc fails maturin's own check).
Not part of scripts/test.sh: a release wheel takes minutes to build.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_GLIBC = (2, 17)


def _maturin(*args: str) -> None:
    exe = shutil.which("maturin")
    cmd = [exe] if exe else [sys.executable, "-m", "maturin"]
    print("$", " ".join(["maturin", *args]), flush=True)
    subprocess.run([*cmd, *args], cwd=ROOT, check=True)


def _glibc_versions(library: bytes) -> set[tuple[int, ...]]:
    """The GLIBC_x.y symbol versions the extension asks for (read from ``objdump -T``)."""
    with tempfile.NamedTemporaryFile(suffix=".so") as so:
        so.write(library)
        so.flush()
        out = subprocess.run(
            ["objdump", "-T", so.name], check=True, capture_output=True, text=True
        ).stdout
    return {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([0-9.]+)", out)}


def main(build_args: list[str]) -> int:
    problems: list[str] = []
    license_text = (ROOT / "LICENSE").read_text()
    with tempfile.TemporaryDirectory() as out:
        _maturin("sdist", "--out", out)
        args = build_args or ["--release"]
        if sys.platform.startswith("linux") and "--zig" not in args:
            try:
                import ziglang  # noqa: F401
            except ImportError:
                print("ziglang is not installed: building with the host's toolchain")
            else:
                args = [*args, "--zig"]
        _maturin("build", *args, "--out", out)

        (sdist,) = Path(out).glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            names = tar.getnames()
            top = sdist.name.removesuffix(".tar.gz")
            print(f"\n{sdist.name}:", *names, sep="\n  ")
            member = tar.extractfile(f"{top}/LICENSE") if f"{top}/LICENSE" in names else None
            if member is None or member.read().decode() != license_text:
                problems.append("the sdist has no LICENSE (or another one)")

        (wheel,) = Path(out).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            names = whl.namelist()
            print(f"\n{wheel.name}:", *names, sep="\n  ")
            licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
            if not licenses or whl.read(licenses[0]).decode() != license_text:
                problems.append("the wheel has no .dist-info/licenses/LICENSE (or another one)")
            (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
            if "License-Expression: MIT" not in whl.read(metadata).decode():
                problems.append("the wheel's METADATA has no License-Expression: MIT")
            if "-cp310-abi3-" not in wheel.name:
                problems.append(f"{wheel.name} is not an abi3 wheel for CPython >= 3.10")
            if sys.platform.startswith("linux"):
                if "manylinux_2_17" not in wheel.name:
                    problems.append(f"{wheel.name} is not tagged manylinux_2_17 (manylinux2014)")
                (library,) = [n for n in names if n.endswith(".so")]
                if shutil.which("objdump"):
                    newest = max(_glibc_versions(whl.read(library)))
                    shown = ".".join(map(str, newest))
                    print(f"\nnewest glibc symbol version the extension needs: {shown}")
                    if newest > MAX_GLIBC:
                        problems.append(f"{library} needs GLIBC_{shown} (> 2.17)")
                else:
                    print("objdump not found: glibc symbol versions not checked")
    print()
    for problem in problems:
        print("FAIL:", problem)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
