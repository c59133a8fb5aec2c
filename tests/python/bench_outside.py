"""The gateway's overhead measured from outside: `wrk` sends the same requests to the engine simulator directly,
through nginx (a plain reverse-proxy hop, the floor for any HTTP proxy) and through Tollgate's own gateway listener
(key auth, limits, metering to SQLite, usage scanning all on), in alternating rounds so that whatever else the
machine does weighs on all three alike. Prints p50/p99 at concurrency 1 and throughput at concurrency 32, for
small completions and 16-token streams, and what each proxy adds over the direct path.

Not a test: run it with `scripts/bench-outside.sh` (release binaries, Debian's wrk and nginx-light)."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import start_sim
from tollgate_platform import free_port, start_platform

MODEL = "granite-3.1-2b-base"
SERVED = "ibm-granite/granite-3.1-2b-base"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = os.environ.get("BENCH_SECS", "4")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    upstream engine {{ server 127.0.0.1:{engine}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://engine;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def lua(dir: str, name: str, model: str, key: str, stream: bool) -> str:
    extra = ', "stream": true' if stream else ""
    body = f'{{"model": "{model}", "prompt": "Count to three", "max_tokens": 16{extra}}}'
    path = Path(dir) / f"{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return str(path)


def micros(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


def wrk(url: str, script: str, connections: int) -> dict:
    threads = "1" if connections == 1 else "2"
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{SECS}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in out or "Latency Distribution" not in out:
        raise SystemExit(f"{url} answered errors:\n{out}")
    return {
        "p50": micros(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1)),
        "p99": micros(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
    }


def main() -> None:
    work = tempfile.mkdtemp(prefix="tollgate-bench-")
    sim = start_sim(SERVED, "--sim-zero-latency")
    engine_port = int(sim.url.rsplit(":", 1)[1])
    gateway_port, nginx_port = free_port(), free_port()
    platform = start_platform(sims={MODEL: [sim]}, extra_env={"TOLLGATE_GATEWAY_LISTEN": f"127.0.0.1:{gateway_port}"})
    _, key = platform.subscribe_with_key(
        MODEL, {"name": "Bench", "requests_per_minute": 1_000_000_000, "tokens_per_minute": 2_000_000_000})
    for d in ("body", "proxy"):
        os.makedirs(f"{work}/{d}", exist_ok=True)
    conf = Path(work) / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=work, engine=engine_port, port=nginx_port))
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", str(conf), "-e", "stderr"])
    paths = {
        "direct": (f"{sim.url}/v1/completions", SERVED),
        "nginx": (f"http://127.0.0.1:{nginx_port}/v1/completions", SERVED),
        "gateway": (f"http://127.0.0.1:{gateway_port}/v1/completions", MODEL),
    }
    try:
        time.sleep(0.5)
        print(f"wrk from outside, {ROUNDS} alternating rounds of {SECS} s per path, median of the rounds "
              f"(client, nginx, Tollgate and the simulator share this machine's {os.cpu_count()} cores)")
        for stream in (False, True):
            kind = "16-token streams" if stream else "completions, 16 tokens, non-streaming"
            scripts = {name: lua(work, f"{name}-{stream}", model, key, stream) for name, (_, model) in paths.items()}
            for connections in (1, 32):
                rounds: dict[str, list[dict]] = {name: [] for name in paths}
                for _ in range(ROUNDS):
                    for name, (url, _) in paths.items():
                        rounds[name].append(wrk(url, scripts[name], connections))
                med = {name: {m: statistics.median(r[m] for r in rs) for m in ("p50", "p99", "rps")}
                       for name, rs in rounds.items()}
                print(f"\n{kind}, concurrency {connections}:")
                for name in paths:
                    m = med[name]
                    added = "" if name == "direct" else (
                        f"  adds p50 {m['p50'] - med['direct']['p50']:7.1f} µs")
                    print(f"  {name:8} p50 {m['p50']:8.1f} µs  p99 {m['p99']:8.1f} µs  {m['rps']:9.0f} req/s{added}")
                own = med["gateway"]["p50"] - med["nginx"]["p50"]
                print(f"  gateway beyond the nginx floor: p50 {own:+.1f} µs, "
                      f"throughput {med['gateway']['rps'] / med['nginx']['rps']:.0%} of nginx's")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        platform.stop()
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
