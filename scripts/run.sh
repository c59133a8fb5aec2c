#!/usr/bin/env bash
# `make run`: the whole platform on this machine with nothing else installed: SQLite under ./data, a platform
# admin, a demo tenant, the seed catalog, and the fleet controller running each seeded model on a simulated GPU
# fleet (2 nodes x 8 H100-80GB; engine simulators inside the server process). Ctrl-C stops everything.
# Engines Tollgate does not manage can still be named with TOLLGATE_ENGINES=model=http://host:port.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p data
export TOLLGATE_SITE_ROOT="${TOLLGATE_SITE_ROOT:-target/site}"
exec "$target/release/tollgate" "$@"
