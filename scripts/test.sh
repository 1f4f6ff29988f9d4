#!/usr/bin/env bash
# Builds seawall into .venv and runs every test: lints, the Rust core's tests (no Python), pytest.
source "$(dirname "$0")/_env.sh" dev,docs
# The Redis tests start real redis-servers (their fixtures do, on free loopback ports) and use
# redis-cli for the Cluster, libfaketime for clients with skewed clocks and openssl for a test CA;
# the Redis benchmark uses redis-benchmark. Install what is missing (Debian packages).
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
{ command -v redis-cli && command -v redis-benchmark; } >/dev/null || missing+=(redis-tools)
command -v faketime >/dev/null || missing+=(faketime)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ||
        { "${sudo[@]}" apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }
fi
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --features abi3 -- -D warnings
cargo test
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
ruff check python tests benches
ruff format --check python tests benches
mypy
python -m mypy.stubtest seawall._seawall --ignore-disjoint-bases
pyright
# The manual (docs/, mkdocs.yml), built offline in strict mode: a broken link fails here. Not
# --quiet (nor -v): mkdocs 1.6 then stops counting warnings, and strict mode passes anything.
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir site
# tests/test_promtool.py pipes a real scrape into `promtool check metrics`.
promtool_dir=$(bash scripts/promtool.sh)
PATH="$promtool_dir:$PATH" python -m pytest
