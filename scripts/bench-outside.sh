#!/usr/bin/env bash
# The gateway's overhead from outside, against an nginx floor (tests/python/bench_outside.py). Builds the release
# binaries, installs Debian's wrk and nginx-light when missing (without starting a system nginx), and runs.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
scripts/setup.sh --test
cargo build --release -p tollgate -p tollgate-sim
TOLLGATE_BIN="$target/release/tollgate" TOLLGATE_SIM_BIN="$target/release/tollgate-sim" \
  .venv/bin/python tests/python/bench_outside.py
