#!/usr/bin/env bash
# Prints the size of the portal's release wasm bundle, as shipped: built with the wasm-release profile, bound by
# wasm-bindgen, optimised by wasm-opt -Oz, then gzip -9 and brotli where available. The aim is <= 400 KB gzipped.
# Usage: scripts/wasm-size.sh   (uses CARGO_TARGET_DIR or target/; about 5 minutes cold on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
target="${CARGO_TARGET_DIR:-target}"
out="$target/wasm-size"
mkdir -p "$out"
LEPTOS_OUTPUT_NAME=tollgate cargo build -p tollgate-hydrate --lib --target wasm32-unknown-unknown \
  --profile wasm-release --no-default-features --target-dir "$target/front" --quiet
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name tollgate \
  "$target/front/wasm32-unknown-unknown/wasm-release/tollgate_hydrate.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int -o "$out/tollgate.opt.wasm" "$out/tollgate_bg.wasm"
gzip -9 -k -f "$out/tollgate.opt.wasm"
gzip -9 -k -f "$out/tollgate.js"
kb() { echo "$(( $(stat -c %s "$1") / 1024 )) KB"; }
echo "wasm after wasm-bindgen: $(kb "$out/tollgate_bg.wasm")"
echo "wasm after wasm-opt -Oz: $(kb "$out/tollgate.opt.wasm")"
echo "wasm gzipped:            $(kb "$out/tollgate.opt.wasm.gz")"
echo "js glue gzipped:         $(kb "$out/tollgate.js.gz")"
