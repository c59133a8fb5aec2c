#!/usr/bin/env bash
# Fuzzes the gateway's parsers of untrusted input (request bodies; engine answers, SSE streams and usage) with libFuzzer:
#   scripts/fuzz.sh [seconds per target, default 60]
# cargo-fuzz needs nightly's -Z flags; RUSTC_BOOTSTRAP=1 lets this machine's stable rustc take them (no nightly
# toolchain can be fetched here). New inputs go to server/gateway/fuzz/corpus/ (not committed); the committed
# seeds are read as well. A crash leaves its input under server/gateway/fuzz/artifacts/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../server/gateway/fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
for target in request_parse sse_usage engine_response; do
  mkdir -p "corpus/$target"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -max_len=8192 -print_final_stats=1
done
