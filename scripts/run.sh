#!/usr/bin/env bash
# `make run`: the platform on this machine with nothing else installed. Starts one simulated vLLM engine
# (tollgate-sim) per model of the seed catalog, then Tollgate in front of them, on SQLite under ./data.
# Ctrl-C stops everything. Until the fleet controller manages engines, this script is the "simulated fleet".
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
sim="$target/release/tollgate-sim"
first_port="${TOLLGATE_SIM_FIRST_PORT:-8101}"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

engines=""
port=$first_port
# model id and served name of each seeded model, read from the seed catalog itself.
while read -r model served; do
  "$sim" "$served" --host 127.0.0.1 --port "$port" --max-model-len 8192 >/dev/null 2>&1 &
  pids+=("$!")
  engines="${engines:+$engines,}$model=http://127.0.0.1:$port"
  port=$((port + 1))
done < <(python3 -c '
import tomllib
for m in tomllib.load(open("server/catalog/seed/catalog.toml", "rb"))["models"]:
    if m["status"] != "retired":
        print(m["id"], m.get("upstream_name") or m["id"])
')
echo "Started $(( port - first_port )) simulated engines on ports $first_port-$(( port - 1 ))."

mkdir -p data
export TOLLGATE_ENGINES="${TOLLGATE_ENGINES:-$engines}"
export TOLLGATE_SITE_ROOT="${TOLLGATE_SITE_ROOT:-target/site}"
"$target/release/tollgate" "$@" &
pids+=("$!")
wait "${pids[-1]}"
