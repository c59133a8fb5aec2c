"""The gateway's overhead measured from outside: `wrk` sends the same requests to the engine simulator directly,
through nginx (a plain reverse-proxy hop, the floor for any HTTP proxy) and through Tollgate, on its own gateway
listener (`TOLLGATE_GATEWAY_LISTEN`) and on the portal's listener, with key auth, limits, metering to SQLite and
usage scanning all on, in alternating rounds so that whatever else the machine does weighs on all alike. For small
completions and 16-token streams at concurrency 1, 16 and 64 it prints p50/p99, requests per second, the CPU time
each proxy process spent per request (from /proc), and each against the nginx floor: added latency (the path's
p50 minus the direct p50), CPU per request and throughput.

Not a test: run it with `scripts/bench-outside.sh` (release binaries, Debian's wrk and nginx-light).
Knobs: BENCH_ROUNDS (3), BENCH_SECS (4), BENCH_CONCURRENCY ("1,16,64"), BENCH_GATEWAY_WORKERS (the gateway
listener's runtimes, `TOLLGATE_GATEWAY_WORKERS`; default one per core)."""

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
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,16,64").split(",")]
TICK = os.sysconf("SC_CLK_TCK")

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


def cpu_seconds(pids: list[int]) -> float:
    """User and system time the processes (all their threads) have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / TICK


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wrk(url: str, script: str, connections: int, pids: list[int]) -> dict:
    threads = "1" if connections == 1 else "2"
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{SECS}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(pids) - cpu_before
    if "Non-2xx" in out or "Latency Distribution" not in out:
        raise SystemExit(f"{url} answered errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "p50": micros(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1)),
        "p99": micros(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "cpu": cpu / max(requests, 1) * 1e6,
    }


def main() -> None:
    work = tempfile.mkdtemp(prefix="tollgate-bench-")
    sim = start_sim(SERVED, "--sim-zero-latency")
    engine_port = int(sim.url.rsplit(":", 1)[1])
    gateway_port, nginx_port = free_port(), free_port()
    env = {"TOLLGATE_GATEWAY_LISTEN": f"127.0.0.1:{gateway_port}"}
    if "BENCH_GATEWAY_WORKERS" in os.environ:
        env["TOLLGATE_GATEWAY_WORKERS"] = os.environ["BENCH_GATEWAY_WORKERS"]
    platform = start_platform(sims={MODEL: [sim]}, extra_env=env)
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
        "portal": (f"{platform.base_url}/completions", MODEL),
    }
    try:
        time.sleep(0.5)
        # nginx's work is done by its worker; Tollgate's by its one process (both listeners).
        pids = {"direct": [], "nginx": children(nginx.pid), "gateway": [platform.process.pid],
                "portal": [platform.process.pid]}
        print(f"wrk from outside, {ROUNDS} alternating rounds of {SECS} s per path, median of the rounds "
              f"(client, nginx, Tollgate and the simulator share this machine's {os.cpu_count()} cores)")
        print("aims, beside the nginx floor: added p50 latency at most 1.5x, CPU per request at most 1.3x, "
              "throughput at least 0.8x")
        for stream in (False, True):
            kind = "16-token streams" if stream else "completions, 16 tokens, non-streaming"
            scripts = {name: lua(work, f"{name}-{stream}", model, key, stream) for name, (_, model) in paths.items()}
            for connections in CONCURRENCY:
                rounds: dict[str, list[dict]] = {name: [] for name in paths}
                for _ in range(ROUNDS):
                    for name, (url, _) in paths.items():
                        rounds[name].append(wrk(url, scripts[name], connections, pids[name]))
                med = {name: {m: statistics.median(r[m] for r in rs) for m in ("p50", "p99", "rps", "cpu")}
                       for name, rs in rounds.items()}
                print(f"\n{kind}, concurrency {connections}:")
                for name in paths:
                    m = med[name]
                    extra = "" if name == "direct" else (
                        f"  adds p50 {m['p50'] - med['direct']['p50']:7.1f} µs"
                        f" p99 {m['p99'] - med['direct']['p99']:8.1f} µs  CPU {m['cpu']:6.1f} µs/req")
                    print(f"  {name:8} p50 {m['p50']:8.1f} µs  p99 {m['p99']:8.1f} µs  {m['rps']:9.0f} req/s{extra}")
                floor = med["nginx"]
                floor_added = max(floor["p50"] - med["direct"]["p50"], 1.0)
                for name in ("gateway", "portal"):
                    m = med[name]
                    print(f"  {name} against the nginx floor: added latency "
                          f"{(m['p50'] - med['direct']['p50']) / floor_added:.2f}x, "
                          f"CPU per request {m['cpu'] / max(floor['cpu'], 0.01):.2f}x, "
                          f"throughput {m['rps'] / floor['rps']:.2f}x")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        platform.stop()
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
