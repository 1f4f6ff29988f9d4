#!/usr/bin/env bash
# Prints the directory holding a `promtool` for the tests (`promtool check metrics`), getting it
# when missing: Debian's `prometheus` package ships /usr/bin/promtool, but installing it starts a
# Prometheus service, so the .deb is only downloaded (`apt-get download`, no root needed) and
# unpacked (`dpkg-deb -x`) into .cache/prometheus/ in the repo. Run twice, it reuses that copy.
# Usage: PATH="$(bash scripts/promtool.sh):$PATH"
set -euo pipefail
if command -v promtool >/dev/null; then
    dirname "$(command -v promtool)"
    exit 0
fi
cache="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/prometheus"
bin="$cache/bin"
if [ ! -x "$bin/promtool" ]; then
    for tool in apt-get dpkg-deb; do
        command -v "$tool" >/dev/null || {
            echo "promtool is missing and $tool is not available to fetch it: install Prometheus's promtool and put it on PATH" >&2
            exit 1
        }
    done
    rm -rf "$cache" && mkdir -p "$cache"
    # A machine whose package lists are empty or stale (redis-server already installed, so
    # test.sh never ran apt-get update) gets them refreshed once, as root or through sudo.
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    (cd "$cache" && apt-get download -qq prometheus >&2) ||
        { "${sudo[@]}" apt-get update -qq >&2 && (cd "$cache" && apt-get download -qq prometheus >&2); } || {
        echo "promtool is missing and 'apt-get download prometheus' failed: install promtool and put it on PATH" >&2
        exit 1
    }
    dpkg-deb -x "$cache"/prometheus_*.deb "$cache/root"
    [ -x "$cache/root/usr/bin/promtool" ] ||
        { echo "the prometheus package holds no usr/bin/promtool" >&2; exit 1; }
    # Only promtool is kept (a static Go binary): not the server, nor the .deb.
    mkdir -p "$bin" && mv "$cache/root/usr/bin/promtool" "$bin/"
    rm -rf "$cache/root" "$cache"/prometheus_*.deb
fi
echo "$bin"
