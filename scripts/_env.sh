# Sourced by demo.sh and test.sh: a project venv with seawall built into it (release mode).
# Usage: source scripts/_env.sh EXTRAS   (EXTRAS: cli, dev, ...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
extras=${1:-cli}
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
export VIRTUAL_ENV=$ROOT/.venv
export PATH=$VIRTUAL_ENV/bin:$PATH
python -m pip install --quiet --disable-pip-version-check "maturin>=1.10,<2"
# Release build: benchmarks and the demo should see what users get. The target/ dir stays warm.
maturin develop --release --quiet --extras "$extras"
