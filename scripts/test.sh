#!/usr/bin/env bash
# Builds seawall into .venv and runs every test: lints, the Rust core's tests (no Python), pytest.
source "$(dirname "$0")/_env.sh" dev
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --features abi3 -- -D warnings
cargo test
ruff check python tests benches
ruff format --check python tests benches
mypy
python -m mypy.stubtest seawall._seawall --ignore-disjoint-bases
python -m pytest
