#!/usr/bin/env bash
# Builds seawall into .venv and runs the in-memory demo (no Redis needed).
source "$(dirname "$0")/_env.sh" cli
python -m seawall demo "$@"
