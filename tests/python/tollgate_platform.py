"""Runs the real `tollgate` server in front of real `tollgate-sim` engines, and sets up, through the management
API, what a developer would have: a subscription and an API key. Used by the gateway tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from conftest import REPO_ROOT, Sim, start_sim

ADMIN_EMAIL = "admin@gateway.test"
ADMIN_PASSWORD = "gateway-admin-password"


def tollgate_binary() -> Path:
    path = Path(os.environ.get("TOLLGATE_BIN", REPO_ROOT / "target" / "debug" / "tollgate"))
    if not path.exists():
        raise RuntimeError(f"tollgate binary not found at {path}; build it or set TOLLGATE_BIN")
    return path


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float, verify: bool | ssl.SSLContext = True) -> bool:
    """Polls `url` until it answers 200 (True), or the process ends or `timeout` seconds pass (False); `verify`: how
    an https:// URL's certificate is checked (an SSL context trusting a test CA)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    process: subprocess.Popen
    url: str
    sims: dict[str, list[Sim]]
    workdir: tempfile.TemporaryDirectory
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=30)

    def stop(self) -> None:
        self.api.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for replicas in self.sims.values():
            for s in replicas:
                s.stop()
        self.workdir.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, key: str, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kwargs)

    def call(self, method: str, path: str, **kwargs) -> dict:
        r = self.api.request(method, path, **kwargs)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def sign_in_token(self) -> str:
        """A write-scoped personal access token of the platform admin, made through the portal's own calls."""
        web = httpx.Client(base_url=self.url, headers={"Origin": self.url}, timeout=30)
        r = web.post("/api/auth/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/"})
        assert r.status_code in (200, 302, 303), r.text
        r = web.post("/api/tokens/create", data={"name": "tests", "scope": "write", "expiry_days": "7"},
                     headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        web.close()
        return r.json()["secret"]

    def subscribe_with_key(self, model: str, plan: dict) -> tuple[str, str]:
        """Creates a plan, subscribes the demo tenant's team to `model` under it, and returns (subscription, key)."""
        plan_id = self.call("POST", "/plans", json={"name": plan.pop("name"), **plan})["id"]
        team = self.call("GET", "/teams")["items"][0]["id"]
        sub = self.call("POST", "/subscriptions", json={"team_id": team, "model_id": model, "plan_id": plan_id})
        assert sub["state"] == "active", sub
        key = self.call("POST", f"/subscriptions/{sub['id']}/keys", json={"name": f"{model} tests"})
        return sub["id"], key["secret"]

    def usage(self, **filters) -> list[dict]:
        """The newest page of matching records (up to 100, newest first)."""
        return self.call("GET", "/usage", params={"limit": 100, **filters})["items"]

    def all_usage(self, **filters) -> list[dict]:
        """Every matching record, newest first, walking the API's keyset pages (`after` = the last page's `next`)."""
        records: list[dict] = []
        after = None
        while True:
            params = {"limit": 1000, **filters, **({"after": after} if after else {})}
            body = self.call("GET", "/usage", params=params)
            records.extend(body["items"])
            after = body["next"]
            if after is None:
                return records

    def usage_total(self, **filters) -> int:
        return len(self.all_usage(**filters))

    def settled_usage_total(self, **filters) -> int:
        """The record count once earlier requests' records are all written (the writer flushes every 500 ms)."""
        total = self.usage_total(**filters)
        while True:
            time.sleep(0.6)
            now = self.usage_total(**filters)
            if now == total:
                return total
            total = now

    def wait_for_usage(self, count: int, timeout: float = 10.0, **filters) -> list[dict]:
        """Usage records are written in batches; waits (bounded) until `count` are there, then returns the newest
        page (up to 100, newest first)."""
        deadline = time.monotonic() + timeout
        while self.usage_total(**filters) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.usage(**filters)


# Catalog model id -> (the name engines serve it as, how many replicas, extra simulator flags).
ENGINES = {
    "llama-3.1-8b-instruct": ("meta-llama/Llama-3.1-8B-Instruct", 2, ["--sim-decode-ms", "2", "--max-model-len", "4096"]),
    "granite-3.1-2b-base": ("ibm-granite/granite-3.1-2b-base", 1, ["--sim-zero-latency"]),
    "bge-m3": ("BAAI/bge-m3", 1, ["--sim-zero-latency"]),
    "qwen2.5-coder-7b-instruct": ("Qwen/Qwen2.5-Coder-7B-Instruct", 1, ["--sim-decode-ms", "1"]),
}


def start_engines(engines: dict = ENGINES) -> dict[str, list[Sim]]:
    return {
        model: [start_sim(served, *flags) for _ in range(replicas)]
        for model, (served, replicas, flags) in engines.items()
    }


def start_platform(timeout: float = 60.0, sims: dict[str, list[Sim]] | None = None, database_url: str | None = None,
                   extra_env: dict[str, str] | None = None) -> Platform:
    """Starts a server; with `sims`, in front of those engines (shared with other servers, not stopped by this one)."""
    owns_sims = sims is None
    sims = start_engines() if sims is None else sims
    engines = ",".join(f"{model}={'|'.join(s.url for s in replicas)}" for model, replicas in sims.items())
    workdir = tempfile.TemporaryDirectory(prefix="tollgate-gateway-tests-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        # The fleet deploys nothing by itself here: these tests bring their own engines (TOLLGATE_ENGINES).
        "TOLLGATE_FLEET_SEED": "false",
        "RUST_LOG": "warn",
        **(extra_env or {}),
        "DATABASE_URL": database_url or f"sqlite://{workdir.name}/tollgate.db",
        "TOLLGATE_LISTEN": f"127.0.0.1:{port}",
        "TOLLGATE_PUBLIC_URL": url,
        "TOLLGATE_ADMIN_EMAIL": ADMIN_EMAIL,
        "TOLLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TOLLGATE_ENGINES": engines,
        "TOLLGATE_USAGE_SPOOL": f"{workdir.name}/spool.jsonl",
        "TOLLGATE_SITE_ROOT": str(REPO_ROOT / "target" / "site"),
    }
    log = open(Path(workdir.name) / "server.log", "w")
    proc = subprocess.Popen([str(tollgate_binary())], env=env, stdout=log, stderr=subprocess.STDOUT)
    if not wait_until_up(f"{url}/readyz", proc, timeout):
        proc.kill()
        raise RuntimeError(f"tollgate did not start: {(Path(workdir.name) / 'server.log').read_text()}")
    platform = Platform(process=proc, url=url, sims=sims if owns_sims else {}, workdir=workdir)
    platform.api.headers["Authorization"] = f"Bearer {platform.sign_in_token()}"
    return platform
