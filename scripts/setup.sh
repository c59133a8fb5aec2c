#!/usr/bin/env bash
# Installs what building and testing Tollgate needs, idempotently: each step is skipped when already done.
#   scripts/setup.sh          build tools (wasm target, cargo-leptos, wasm-bindgen, npm packages)
#   scripts/setup.sh --test   also the test tools (Debian's Chromium for Playwright, a Python venv)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs a newer rustc than 1.95
# Must equal the wasm-bindgen version in Cargo.lock (pinned with "=" in Cargo.toml).
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  say "adding the wasm32 target (about a minute, once)"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION: compiled from crates.io, about 15 minutes on 2 cores, once"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION: compiled from crates.io (cargo-leptos's own download does not work offline), about 5 minutes, once"
  # Not --locked: its lockfile names a webpki-roots release the registry no longer serves.
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ ! -x node_modules/.bin/tailwindcss ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (Tailwind, binaryen, Playwright, oidc-provider): under a minute"
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's Chromium for the end-to-end tests: a minute or two, once"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -x .venv/bin/pytest ] || [ tests/python/requirements.txt -nt .venv/.installed ]; then
    say "creating the Python virtualenv for the openai-client tests: about a minute, once"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
    touch .venv/.installed
  fi
fi
