"""The fleet controller end to end, through the real `tollgate` server: deployments made with `/api/v1`, replicas
started by the simulator driver (engines inside the server process) or by the local driver (one `tollgate-sim`
process per replica, taking vLLM's flags, on GPUs read from a recorded `nvidia-smi` answer), and the gateway
serving what is ready with no restart, as the real `openai` client sees it.

- a deployment comes up (pending -> starting -> ready), holds its GPU, is served and explains itself in events,
  which can be paged through;
- bad input is refused with a clear 400 (409 for a second deployment of a model) and creates nothing;
- a crashed replica is restarted with no failed request beyond those in flight on it;
- load raises the replica count, and idle lowers it again;
- idle takes a deployment to zero and a request wakes it (held, then answered);
- a scale-down during 20 streams ends none of them early;
- the local driver places, starts (CUDA_VISIBLE_DEVICES set) and stops engine processes;
- two servers on one PostgreSQL run one controller; when it is killed the other takes over and adopts the running
  engine processes.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from conftest import sim_binary
from tollgate_platform import Platform, start_platform

MODEL = "llama-3.1-8b-instruct"
SERVED = "meta-llama/Llama-3.1-8B-Instruct"
OTHER = "qwen2.5-coder-7b-instruct"
PLAN = {"name": "Fleet", "requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000}
METRICS_TOKEN = "fleet-test-metrics"

# Fast enough for a 2-core machine: passes every 200 ms, engines that load in 0.3 s, restarts after 0.2 s.
FAST = {
    "TOLLGATE_FLEET_DRIVER": "simulator",
    "TOLLGATE_FLEET_NODES": "2x8xH100-80GB",
    "TOLLGATE_FLEET_SIM_ARGS": "--sim-load-time-s 0.3",
    "TOLLGATE_FLEET_TICK_MS": "200",
    "TOLLGATE_FLEET_RESTART_BACKOFF_MS": "200",
    "TOLLGATE_FLEET_SCALE_DOWN_WINDOW_S": "1",
    "TOLLGATE_FLEET_DRAIN_GRACE_S": "30",
    "TOLLGATE_FLEET_START_TIMEOUT_S": "30",
    "TOLLGATE_KEY_REFRESH_MS": "200",
    "TOLLGATE_GATEWAY_WAKE_WAIT_MS": "20000",
    "TOLLGATE_METRICS_TOKEN": METRICS_TOKEN,
    "RUST_LOG": "warn,tollgate_fleet=info",
}

# In the shape `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv` prints, with the names NVIDIA's
# driver reports for these cards.
RECORDED_NVIDIA_SMI = """index, name, memory.total [MiB], uuid
0, NVIDIA H100 80GB HBM3, 81559 MiB, GPU-5b5a3c1e-6d0b-2f7e-1a3c-0e0f3d2b9a11
1, NVIDIA H100 80GB HBM3, 81559 MiB, GPU-6c6b4d2f-7e1c-3a8f-2b4d-1f1a4e3cab22
2, NVIDIA A100-SXM4-40GB, 40960 MiB, GPU-77aa3c1e-6d0b-2f7e-1a3c-0e0f3d2b9a12
"""


# --- helpers ------------------------------------------------------------------------------------------------------

def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy (returned); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def deploy(p: Platform, **spec: Any) -> dict:
    r = p.api.post("/deployments", json=spec)
    assert r.status_code == 201, f"POST /deployments {spec}: {r.status_code} {r.text}"
    return r.json()


def deployment(p: Platform, dep_id: str) -> dict:
    return p.call("GET", f"/deployments/{dep_id}")


def wait_deployment(p: Platform, dep_id: str, what: str, cond: Callable[[dict], bool], timeout: float) -> dict:
    """Polls the deployment until `cond` holds; the failure names the last state seen."""
    last: dict = {}

    def check() -> dict | None:
        nonlocal last
        last = deployment(p, dep_id)
        return last if cond(last) else None

    try:
        return wait_for(what, check, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {summary(last)}") from None


def summary(d: dict) -> str:
    replicas = ", ".join(
        f"{r['id']}={r['state']}(restarts {r['restarts']}, {r.get('reason')!r}, {r.get('last_error')!r})"
        for r in d.get("replicas", [])
    )
    return (f"desired {d.get('desired_replicas')} ready {d.get('ready_replicas')} reason {d.get('scale_reason')!r} "
            f"condition {d.get('condition')!r} replicas [{replicas}]")


def live(d: dict) -> list[dict]:
    return [r for r in d["replicas"] if r["state"] in ("pending", "starting", "ready", "failed", "draining")]


def replica(d: dict, rep_id: str) -> dict:
    return next(r for r in d["replicas"] if r["id"] == rep_id)


def events(p: Platform, dep_id: str) -> list[dict]:
    """The deployment's events, oldest first."""
    return list(reversed(p.call("GET", f"/deployments/{dep_id}/events", params={"limit": 500})))


def server_metrics(p: Platform) -> dict[tuple[str, frozenset], float]:
    """The server's /metrics, read with the metrics token: {(name, labels): value}."""
    r = httpx.get(f"{p.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return parse_metrics(r.text)


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


def engine_served(base_url: str) -> float:
    """Requests an engine has finished (`vllm:request_success_total`, summed)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(v for (name, _), v in parse_metrics(text).items() if name == "vllm:request_success_total")


def chat(client: openai.OpenAI, text: str = "Say hello", max_tokens: int = 8):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}],
                                          max_tokens=max_tokens)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port, url
    return port


@dataclass
class Outcome:
    start: float
    end: float
    status: int  # the HTTP status; 0 when no answer came
    error: str = ""


class Load:
    """Clients calling the model in a loop (non-streaming) with the real openai client, until stopped."""

    def __init__(self, p: Platform, key: str, workers: int = 3) -> None:
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(p, key), daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self, p: Platform, key: str) -> None:
        client = p.client(key, timeout=20)
        while not self.stopping.is_set():
            started = time.monotonic()
            status, error = 200, ""
            try:
                r = chat(client, "Count to three", max_tokens=4)
                assert r.choices[0].message.content
            except openai.APIStatusError as e:
                status, error = e.status_code, str(e)
            except openai.APIConnectionError as e:
                status, error = 0, str(e)
            with self.lock:
                self.outcomes.append(Outcome(started, time.monotonic(), status, error))

    def successes(self) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if o.status == 200)

    def stop(self) -> list[Outcome]:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)
        return list(self.outcomes)


@dataclass
class Stream:
    """One streaming chat completion run in a thread: tokens received, how it finished, or what went wrong."""
    thread: threading.Thread
    first: threading.Event
    tokens: int = 0
    finish: str | None = None
    error: str | None = None


def start_streams(p: Platform, key: str, count: int, max_tokens: int) -> list[Stream]:
    streams: list[Stream] = []

    def run(s: Stream, i: int) -> None:
        try:
            client = p.client(key, timeout=60)
            for chunk in client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Tell a long story, number {i}"}],
                max_tokens=max_tokens, stream=True, extra_body={"ignore_eos": True},
            ):
                if chunk.choices:
                    if chunk.choices[0].delta.content:
                        s.tokens += 1
                        s.first.set()
                    if chunk.choices[0].finish_reason:
                        s.finish = chunk.choices[0].finish_reason
        except Exception as e:  # noqa: BLE001 - every failure counts, whatever its kind
            s.error = f"{type(e).__name__}: {e}"
        finally:
            s.first.set()

    for i in range(count):
        s = Stream(thread=threading.Thread(), first=threading.Event())
        s.thread = threading.Thread(target=run, args=(s, i), daemon=True)
        streams.append(s)
        s.thread.start()
    return streams


# --- engine processes of the local driver ---------------------------------------------------------------------------

def tagged_processes(tag: str) -> dict[int, list[str]]:
    """Live processes whose command line carries `--fleet-test-tag=TAG`: {pid: argv}. The tag is an unknown flag
    `tollgate-sim` ignores, as vLLM's other flags; it marks the engines this test's server started."""
    marker = f"--fleet-test-tag={tag}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if marker in argv and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found[int(entry)] = [a.decode() for a in argv if a]
    return found


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def kill_tagged(tag: str) -> None:
    for pid in tagged_processes(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def local_env(tmp_path: Path, tag: str) -> dict[str, str]:
    """The local driver with `tollgate-sim` as its engine command and a recorded `nvidia-smi` answer."""
    csv = tmp_path / "nvidia-smi.csv"
    csv.write_text(RECORDED_NVIDIA_SMI)
    return {
        **FAST,
        "TOLLGATE_FLEET_DRIVER": "local",
        "TOLLGATE_FLEET_LOCAL_COMMAND": f"{sim_binary()} --sim-load-time-s 0.3 --fleet-test-tag={tag}",
        "TOLLGATE_FLEET_LOCAL_GPU_QUERY": f"cat {csv}",
        "TOLLGATE_FLEET_LOCAL_HOST": "127.0.0.1",
    }


# --- fixtures -------------------------------------------------------------------------------------------------------

def print_log(p: Platform, label: str) -> None:
    log = Path(p.workdir.name) / "server.log"
    if log.exists():
        print(f"--- {label} server log (tail) ---\n{log.read_text()[-6000:]}")


@pytest.fixture
def fleet() -> Iterator[Callable[..., Platform]]:
    """Starts servers with the simulator driver and no static engines (env overrides FAST); stops them after,
    printing the tail of each log (shown when the test failed)."""
    started: list[Platform] = []

    def start(**env: str) -> Platform:
        p = start_platform(sims={}, extra_env={**FAST, **env})
        started.append(p)
        return p

    yield start
    for i, p in enumerate(started):
        print_log(p, f"server {i}")
        p.stop()


@pytest.fixture
def engine_tag() -> Iterator[str]:
    """A tag marking the engine processes of one test; whatever still runs with it is killed after the test."""
    tag = uuid.uuid4().hex[:12]
    yield tag
    kill_tagged(tag)


# --- tests ----------------------------------------------------------------------------------------------------------

def test_a_deployment_comes_up_holds_its_gpu_and_is_served_without_a_restart(fleet):
    """Deploy through the API onto the simulated fleet (2 x 8 H100-80GB): the replica goes pending -> starting ->
    ready (seen in the API and in its events), holds one GPU in the inventory, and the gateway of the same, never
    restarted, server answers the `openai` client from that replica."""
    p = fleet()
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    client = p.client(key, timeout=30)
    assert p.call("GET", "/deployments") == []
    with pytest.raises(openai.APIStatusError):
        chat(client)  # nothing serves the model yet

    created = deploy(p, model_id=MODEL)
    dep_id = created["id"]
    assert created["model_id"] == MODEL
    assert (created["min_replicas"], created["max_replicas"], created["gpus_per_replica"]) == (1, 1, 1)
    assert created["desired_replicas"] == 1 and created["ready_replicas"] == 0
    assert all(r["state"] in ("pending", "starting") for r in created["replicas"])

    # Watch it come up: the states seen move forward only.
    order = ["pending", "starting", "ready"]
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while True:
        d = deployment(p, dep_id)
        assert len(d["replicas"]) <= 1, summary(d)
        for r in d["replicas"]:
            assert r["state"] in order, summary(d)
            if not seen or seen[-1] != r["state"]:
                seen.append(r["state"])
        if d["ready_replicas"] == 1:
            break
        assert time.monotonic() < deadline, f"not ready in 20 s: {summary(d)}"
        time.sleep(0.03)
    assert seen == sorted(seen, key=order.index) and seen[-1] == "ready", seen
    assert "starting" in seen, f"a 0.3 s model load was never seen as starting: {seen}"

    r = d["replicas"][0]
    assert r["node"] and len(r["gpus"]) == 1 and r["base_url"] and r["restarts"] == 0, r
    assert r["generation"] == d["generation"] == 1

    nodes = p.call("GET", "/fleet/nodes")
    assert [n["name"] for n in nodes] == ["sim-node-1", "sim-node-2"]
    assert all(n["schedulable"] and len(n["gpus"]) == 8 for n in nodes), nodes
    held = [(n["name"], g) for n in nodes for g in n["gpus"] if g["replica"] is not None]
    assert len(held) == 1, held
    node, gpu = held[0]
    assert (node, gpu["index"]) == (r["node"], r["gpus"][0])
    assert (gpu["replica"], gpu["deployment"]) == (r["id"], dep_id)
    assert (gpu["product"], gpu["memory_mib"], gpu["healthy"]) == ("H100-80GB", 80 * 1024, True)

    # The gateway serves it (held while the route catches up, if it has to), from that replica.
    before = engine_served(r["base_url"])
    reply = chat(client)
    assert reply.choices[0].message.content and reply.model == MODEL
    assert engine_served(r["base_url"]) == before + 1

    # A client that sets no max_tokens (the README's first call) is answered too: the simulated engine serves the
    # catalog's context length, as vLLM serves the model's own, and the gateway's default fits in it.
    context = p.call("GET", f"/models/{MODEL}")["model"]["context_length"]
    engine_models = httpx.get(f"{r['base_url']}/v1/models", timeout=10).json()
    assert engine_models["data"][0]["max_model_len"] == context > 4096
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0

    # Every state change is an event: the deployment's creation, then the replica's created -> started -> ready
    # (created and started happen in one pass, at one instant).
    evs = events(p, dep_id)
    assert all(e["deployment_id"] == dep_id for e in evs)
    assert [e["at"] for e in evs] == sorted(e["at"] for e in evs), "newest first"
    creation = [e for e in evs if e["kind"] == "created" and e["replica_id"] is None]
    assert len(creation) == 1 and "admin@gateway.test" in creation[0]["message"], evs
    at = {e["kind"]: e["at"] for e in evs if e["replica_id"] == r["id"]}
    assert creation[0]["at"] <= at["created"] <= at["started"] <= at["ready"], evs
    assert deployment(p, dep_id)["gpu_seconds"] > 0


def test_paging_through_events_shows_each_event_once(fleet):
    """Walking a deployment's events a page at a time with `before` (the `id` of the previous page's last event,
    as the API documents) reaches every event exactly once, also where several share one instant."""
    p = fleet()
    dep_id = deploy(p, model_id=MODEL, min_replicas=2, max_replicas=2)["id"]
    wait_deployment(p, dep_id, "2 replicas ready", lambda d: d["ready_replicas"] == 2, 20)
    everything = p.call("GET", f"/deployments/{dep_id}/events", params={"limit": 500})
    assert len(everything) >= 7, everything
    paged: list[dict] = []
    params: dict = {"limit": 2}
    for _ in range(100):
        page = p.call("GET", f"/deployments/{dep_id}/events", params=params)
        if not page:
            break
        paged.extend(page)
        params = {"limit": 2, "before": page[-1]["id"]}
    instants = [e["at"] for e in everything]
    shared = sorted({t for t in instants if instants.count(t) > 1})
    assert [e["id"] for e in paged] == [e["id"] for e in everything], (
        f"paging returned {len(paged)} of {len(everything)} events; instants shared by several events: {shared}")


def test_bad_input_is_refused_in_words_and_creates_nothing(fleet):
    """Each refusal is a 400 with a message saying what is wrong (409 for a second deployment of one model); the
    deployment list, the inventory and the existing deployment are unchanged afterwards."""
    p = fleet()
    existing = deploy(p, model_id=MODEL)
    wait_deployment(p, existing["id"], "the first deployment ready", lambda d: d["ready_replicas"] == 1, 20)
    before = p.call("GET", "/deployments")
    nodes_before = p.call("GET", "/fleet/nodes")

    cases: list[tuple[dict, list[str]]] = [
        ({"model_id": "no-such-model"}, ["no model 'no-such-model' in the catalog"]),
        ({"model_id": OTHER, "min_replicas": 3, "max_replicas": 2},
         ["min replicas (3) cannot be more than max replicas (2)"]),
        ({"model_id": OTHER, "gpus_per_replica": 16}, ["cannot run on this fleet", "16", "8"]),
        ({"model_id": OTHER, "gpu_products": ["B200-192GB"]}, ["cannot run on this fleet", "B200-192GB", "H100-80GB"]),
        ({"model_id": OTHER, "engine": {"extra_args": ["--max-num-seqs", "lots"]}},
         ["the engine would not start with these arguments", "max-num-seqs"]),
        ({"model_id": OTHER, "engine": {"extra_args": ["--port=9"]}}, ["--port is set by Tollgate"]),
    ]
    for body, words in cases:
        r = p.api.post("/deployments", json=body)
        assert r.status_code == 400, f"{body}: {r.status_code} {r.text}"
        error = r.json()["error"]
        assert error["type"] == "invalid_request", (body, error)
        for w in words:
            assert w in error["message"], f"{body}: {error['message']!r} does not say {w!r}"

    # A field the API does not know is refused, not ignored.
    r = p.api.post("/deployments", json={"model_id": OTHER, "gpus": 2})
    assert r.status_code == 400, r.text
    assert "gpus" in r.json()["error"]["message"], r.text

    # A second deployment of the same model.
    r = p.api.post("/deployments", json={"model_id": MODEL})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["type"] == "conflict" and MODEL in r.json()["error"]["message"], r.text

    # A patch is checked as a whole, too.
    r = p.api.patch(f"/deployments/{existing['id']}", json={"min_replicas": 5})
    assert r.status_code == 400 and "min replicas (5) cannot be more than max replicas (1)" in r.text, r.text
    # (A patch's unknown field is the JSON shape rejection of the rest of /api/v1.)
    r = p.api.patch(f"/deployments/{existing['id']}", json={"replicas": 5})
    assert r.status_code == 422, r.text
    assert p.api.get("/deployments/dep_nope").status_code == 404

    after = p.call("GET", "/deployments")
    assert [d["id"] for d in after] == [d["id"] for d in before] == [existing["id"]]
    assert [(d["min_replicas"], d["max_replicas"], d["generation"]) for d in after] == [(1, 1, 1)]
    assert [r["id"] for r in after[0]["replicas"]] == [r["id"] for r in before[0]["replicas"]]
    held = lambda nodes: [(n["name"], g["index"], g["replica"]) for n in nodes for g in n["gpus"] if g["replica"]]
    assert held(p.call("GET", "/fleet/nodes")) == held(nodes_before)
    assert [e["kind"] for e in events(p, existing["id"]) if e["kind"] == "updated"] == []


def test_a_crashed_replica_is_restarted_and_no_request_fails_beyond_those_in_flight(fleet):
    """Two replicas under steady non-streaming load through the gateway; one engine crashes (the simulator's exit
    fault). The controller sees it exit and restarts it (restarts 1, ready again, counted in /metrics); requests
    go on being answered, and the only failures allowed are requests already in flight when it crashed."""
    p = fleet()
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    dep_id = deploy(p, model_id=MODEL, min_replicas=2, max_replicas=2)["id"]
    d = wait_deployment(p, dep_id, "2 replicas ready", lambda d: d["ready_replicas"] == 2, 20)
    victim, survivor = d["replicas"]
    load = Load(p, key, workers=3)
    try:
        wait_for("load flowing", lambda: load.successes() >= 10, 20)
        crash_sent = time.monotonic()
        r = httpx.post(f"{victim['base_url']}/sim/faults", json={"exit": True}, timeout=10)
        crash_acked = time.monotonic()
        assert r.status_code == 200 and r.json()["exiting"], r.text

        def restarted(d: dict) -> bool:
            v = replica(d, victim["id"])
            return v["restarts"] == 1 and v["state"] == "ready" and d["ready_replicas"] == 2

        d = wait_deployment(p, dep_id, "the crashed replica restarted and ready", restarted, 20)
        v = replica(d, victim["id"])
        assert v["last_error"] and "exited" in v["last_error"], v
        assert (v["node"], v["gpus"]) == (victim["node"], victim["gpus"]), "restarted on the GPUs it held"
        assert replica(d, survivor["id"])["restarts"] == 0
        # Routing follows the restarted engine: it serves requests again.
        served = engine_served(v["base_url"])
        wait_for("the restarted replica serving", lambda: engine_served(v["base_url"]) >= served + 3, 15)
        after_restart = load.successes()
        wait_for("load still flowing", lambda: load.successes() >= after_restart + 10, 15)
    finally:
        outcomes = load.stop()

    failed = [o for o in outcomes if o.status != 200]
    # In flight on the crashed engine: started before it ended (~50 ms after the fault's answer, with slack for a
    # busy machine) and ended after the fault was sent.
    in_flight = [o for o in failed if o.start <= crash_acked + 0.5 and o.end >= crash_sent]
    print(f"{len(outcomes)} requests, {len(failed)} failed, {len(in_flight)} of them in flight at the crash")
    assert failed == in_flight, [(round(o.start - crash_sent, 3), o.status, o.error) for o in failed]
    assert len(failed) <= 3, "at most the 3 workers' requests can be in flight"

    kinds = [e["kind"] for e in events(p, dep_id) if e["replica_id"] == victim["id"]]
    assert kinds[-3:] == ["failed", "restarted", "ready"], kinds
    m = server_metrics(p)
    assert metric(m, "tollgate_fleet_failures_total", kind="replica_failed") == 1
    assert metric(m, "tollgate_fleet_leader") == 1
    assert metric(m, "tollgate_fleet_replicas", state="ready") == 2
    assert metric(m, "tollgate_fleet_passes_total") > 10


def test_load_through_the_gateway_raises_replicas_and_idle_lowers_them(fleet):
    """min 1, max 3, target 1 request per replica: six long streams through the gateway make the autoscaler ask
    for more replicas and a second one becomes ready while they run; all six finish whole; once idle, the
    deployment goes back to its minimum of one (1 s scale-down window)."""
    p = fleet()
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    dep_id = deploy(p, model_id=MODEL, min_replicas=1, max_replicas=3, target_requests_per_replica=1)["id"]
    d = wait_deployment(p, dep_id, "1 replica ready", lambda d: d["ready_replicas"] == 1, 20)
    assert d["desired_replicas"] == 1

    # 200 tokens at the simulator's 20 ms per token: about 4 s each.
    streams = start_streams(p, key, 6, max_tokens=200)
    d = wait_deployment(p, dep_id, "scaled up under load",
                        lambda d: d["desired_replicas"] >= 2 and d["ready_replicas"] >= 2, 15)
    assert any(s.thread.is_alive() for s in streams), "scaled up only after the load had ended"
    assert d["desired_replicas"] <= 3
    assert "running or waiting" in (d["scale_reason"] or ""), d["scale_reason"]
    for s in streams:
        s.thread.join(timeout=60)
    assert [(s.error, s.tokens, s.finish) for s in streams] == [(None, 200, "length")] * 6

    scaled = [e["message"] for e in events(p, dep_id) if e["kind"] == "scaled"]
    assert any(m.startswith("1 -> ") for m in scaled), scaled

    d = wait_deployment(p, dep_id, "back to the minimum when idle",
                        lambda d: d["desired_replicas"] == 1 and len(live(d)) == 1 and d["ready_replicas"] == 1, 20)
    assert sum(1 for r in d["replicas"] if r["state"] == "stopped") >= 1, summary(d)


def test_idle_scales_to_zero_and_a_request_wakes_the_model(fleet):
    """min 0, to zero after 2 s idle: the replica drains and stops, freeing its GPU; then a chat request through
    the `openai` client is held while the model wakes (a new replica starts) and gets its answer."""
    p = fleet(TOLLGATE_FLEET_SCALE_DOWN_WINDOW_S="1")
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    created = deploy(p, model_id=MODEL, min_replicas=0, max_replicas=2, scale_to_zero_after_s=2)
    dep_id = created["id"]
    assert created["desired_replicas"] == 1, "a new deployment starts one replica even with min 0"
    first = wait_deployment(p, dep_id, "1 replica ready", lambda d: d["ready_replicas"] == 1, 20)["replicas"][0]

    d = wait_deployment(p, dep_id, "scaled to zero when idle",
                        lambda d: d["desired_replicas"] == 0 and not live(d), 20)
    assert replica(d, first["id"])["state"] == "stopped"
    assert "idle" in (d["scale_reason"] or ""), d["scale_reason"]
    assert not [g for n in p.call("GET", "/fleet/nodes") for g in n["gpus"] if g["replica"]], "GPUs freed"
    stopped_gpu_seconds = d["gpu_seconds"]
    assert stopped_gpu_seconds > 0

    started = time.monotonic()
    reply = chat(p.client(key, timeout=30), "Wake up")
    waited = time.monotonic() - started
    assert reply.choices[0].message.content and reply.model == MODEL
    assert waited >= 0.25, f"answered in {waited:.2f} s: no engine can have loaded (0.3 s) in that time"
    print(f"the model woke and answered in {waited:.2f} s")

    d = deployment(p, dep_id)
    assert d["ready_replicas"] == 1 and d["desired_replicas"] >= 1, summary(d)
    woken = [r for r in d["replicas"] if r["state"] == "ready"][0]
    assert woken["id"] != first["id"]
    assert engine_served(woken["base_url"]) == 1, "the held request was sent once"
    scaled = [e["message"] for e in events(p, dep_id) if e["kind"] == "scaled"]
    assert any("-> 0" in m for m in scaled) and any("woken from zero" in m for m in scaled), scaled


def test_a_scale_down_during_20_streams_ends_none_of_them(fleet):
    """Two replicas carry 20 long streams; mid-stream the deployment is scaled to one (PATCH min 1, max 1). The
    replica that goes is taken out of the routes and drains: every stream finishes whole, then it stops."""
    p = fleet(TOLLGATE_FLEET_DRAIN_GRACE_S="30")
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    dep_id = deploy(p, model_id=MODEL, min_replicas=2, max_replicas=2)["id"]
    d = wait_deployment(p, dep_id, "2 replicas ready", lambda d: d["ready_replicas"] == 2, 20)
    urls = {r["id"]: r["base_url"] for r in d["replicas"]}

    # 200 tokens at ~21 ms a step with 10 sequences per engine: about 4 s each.
    streams = start_streams(p, key, 20, max_tokens=200)
    for s in streams:
        assert s.first.wait(20), "a stream never started"
    assert all(s.error is None for s in streams), [s.error for s in streams if s.error]
    running = {rid: httpx.get(f"{url}/sim/state", timeout=10).json()["running_requests"] for rid, url in urls.items()}
    assert sum(running.values()) == 20 and all(n > 0 for n in running.values()), running

    patched = p.call("PATCH", f"/deployments/{dep_id}", json={"min_replicas": 1, "max_replicas": 1})
    assert (patched["min_replicas"], patched["max_replicas"], patched["desired_replicas"]) == (1, 1, 1)
    d = wait_deployment(p, dep_id, "one replica draining",
                        lambda d: any(r["state"] in ("draining", "stopped") for r in d["replicas"]), 10)
    drained = next(r for r in d["replicas"] if r["state"] in ("draining", "stopped"))
    still_running = sum(1 for s in streams if s.thread.is_alive())
    assert still_running > 0, "the scale-down came after the streams had ended: the test proves nothing"

    for s in streams:
        s.thread.join(timeout=60)
    outcomes = [(s.error, s.tokens, s.finish) for s in streams]
    assert outcomes == [(None, 200, "length")] * 20, outcomes

    d = wait_deployment(p, dep_id, "the drained replica stopped",
                        lambda d: replica(d, drained["id"])["state"] == "stopped" and d["ready_replicas"] == 1, 15)
    assert len(live(d)) == 1, summary(d)
    kinds = [e["kind"] for e in events(p, dep_id) if e["replica_id"] == drained["id"]]
    assert kinds[-2:] == ["draining", "stopped"], kinds
    updated = [e["message"] for e in events(p, dep_id) if e["kind"] == "updated"]
    assert updated and "replicas 1..1" in updated[-1], updated
    print(f"{still_running} of 20 streams were still running when the replica started draining")


def test_the_local_driver_runs_tollgate_sim_on_recorded_gpus(fleet, engine_tag, tmp_path):
    """The local driver with `tollgate-sim` as its command and a recorded `nvidia-smi` answer: the inventory shows
    the recorded GPUs with normalized products; a deployment for A100s lands on the A100, its engine process gets
    vLLM's arguments and CUDA_VISIBLE_DEVICES, the gateway serves it; deleting it stops the process."""
    p = fleet(**local_env(tmp_path, engine_tag))
    nodes = p.call("GET", "/fleet/nodes")
    assert len(nodes) == 1 and nodes[0]["schedulable"], nodes
    assert [(g["index"], g["product"], g["memory_mib"]) for g in nodes[0]["gpus"]] == [
        (0, "H100-80GB", 81559), (1, "H100-80GB", 81559), (2, "A100-40GB", 40960)]

    r = p.api.post("/deployments", json={"model_id": MODEL, "gpus_per_replica": 4})
    assert r.status_code == 400 and "cannot run on this fleet" in r.text, r.text

    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    dep_id = deploy(p, model_id=MODEL, gpu_products=["A100-40GB"], engine={"max_model_len": 4096})["id"]
    d = wait_deployment(p, dep_id, "ready on the local driver", lambda d: d["ready_replicas"] == 1, 30)
    rep = d["replicas"][0]
    assert (rep["node"], rep["gpus"]) == (nodes[0]["name"], [2]), rep
    held = [(g["index"], g["replica"]) for g in p.call("GET", "/fleet/nodes")[0]["gpus"]]
    assert held == [(0, None), (1, None), (2, rep["id"])]

    procs = tagged_processes(engine_tag)
    assert len(procs) == 1, procs
    pid, argv = next(iter(procs.items()))
    assert argv[0] == str(sim_binary())
    line = " ".join(argv)
    for part in (f"--served-model-name {SERVED}", f"--port {port_of(rep['base_url'])}", "--tensor-parallel-size 1",
                 "--max-model-len 4096", "--host 127.0.0.1"):
        assert part in line, f"{part!r} not in {line!r}"
    assert process_env(pid).get("CUDA_VISIBLE_DEVICES") == "2"

    reply = chat(p.client(key, timeout=30))
    assert reply.choices[0].message.content and reply.model == MODEL
    assert engine_served(rep["base_url"]) >= 1

    r = p.api.delete(f"/deployments/{dep_id}")
    assert r.status_code == 202, r.text
    wait_for("the deployment gone", lambda: p.api.get(f"/deployments/{dep_id}").status_code == 404, 20)
    wait_for("the engine process stopped", lambda: not tagged_processes(engine_tag), 15)
    # Its events stay listed after it is gone.
    assert [e["kind"] for e in events(p, dep_id)][-1] == "deleted"


def test_two_servers_one_controller_and_the_survivor_adopts_the_replicas(database, engine_tag, tmp_path):
    """Two servers on one PostgreSQL with the local driver: exactly one runs the controller (tollgate_fleet_leader
    1). It is killed (SIGKILL, so it cannot hand the lease back); the other takes over within the lease's 10 s and
    adopts the engine processes the dead one started (same replica ids and processes, no restart, no duplicate),
    and the model keeps answering through the surviving server all along."""
    env = local_env(tmp_path, engine_tag)
    servers = [start_platform(sims={}, database_url=database.url, extra_env=env)]
    servers.append(start_platform(sims={}, database_url=database.url, extra_env=env))
    load: Load | None = None
    try:
        def one_leader() -> tuple[Platform, Platform] | None:
            flags = [metric(server_metrics(s), "tollgate_fleet_leader") for s in servers]
            if sorted(flags) == [0, 1]:
                return (servers[flags.index(1)], servers[flags.index(0)])
            assert sum(flags) <= 1, f"two controllers at once: {flags}"
            return None

        leader, follower = wait_for("exactly one controller", one_leader, 15)
        # And it stays so.
        for _ in range(5):
            time.sleep(0.2)
            assert one_leader() == (leader, follower)

        # Deployed and used through the follower: the API and the gateway work on any server.
        _, key = follower.subscribe_with_key(MODEL, dict(PLAN))
        dep_id = deploy(follower, model_id=MODEL, min_replicas=2, max_replicas=2)["id"]
        d = wait_deployment(follower, dep_id, "2 replicas ready", lambda d: d["ready_replicas"] == 2, 30)
        before = {r["id"]: (r["state"], r["node"], tuple(r["gpus"]), r["base_url"], r["restarts"])
                  for r in d["replicas"]}
        procs = tagged_processes(engine_tag)
        assert len(procs) == 2, procs
        assert {port_of(r[3]) for r in before.values()} == {
            int(argv[argv.index("--port") + 1]) for argv in procs.values()}

        client = follower.client(key, timeout=30)
        wait_for("the follower accepts the key", lambda: _answers(client), 10)
        load = Load(follower, key, workers=2)
        wait_for("load flowing", lambda: load.successes() >= 5, 15)

        passes_before = metric(server_metrics(follower), "tollgate_fleet_passes_total")
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait(timeout=10)
        killed = time.monotonic()
        wait_for("the survivor takes over",
                 lambda: metric(server_metrics(follower), "tollgate_fleet_leader") == 1, 20, every=0.2)
        took = time.monotonic() - killed
        print(f"the survivor took over {took:.1f} s after the leader was killed")
        assert took <= 15, f"took {took:.1f} s"
        assert passes_before == 0, "the follower ran passes while the other server led"

        # Let the new controller run a couple of seconds of passes, then look: nothing restarted or duplicated.
        taken = metric(server_metrics(follower), "tollgate_fleet_passes_total")
        wait_for("passes on the new controller",
                 lambda: metric(server_metrics(follower), "tollgate_fleet_passes_total") >= taken + 10, 15)
        d = deployment(follower, dep_id)
        after = {r["id"]: (r["state"], r["node"], tuple(r["gpus"]), r["base_url"], r["restarts"])
                 for r in d["replicas"]}
        assert after == before, f"adopted replicas changed: {summary(d)}"
        assert all(state == "ready" and restarts == 0 for state, *_, restarts in after.values())
        assert tagged_processes(engine_tag) == procs, "the same engine processes, none started again"
        m = server_metrics(follower)
        assert metric(m, "tollgate_fleet_replicas", state="ready") == 2
        kinds = [e["kind"] for e in events(follower, dep_id)]
        assert "failed" not in kinds and "restarted" not in kinds, kinds

        served = load.successes()
        wait_for("the model answering after the takeover", lambda: load.successes() >= served + 5, 15)
    finally:
        outcomes = load.stop() if load else []
        for i, s in enumerate(servers):
            print_log(s, f"server {i}")
            s.stop()
    failed = [(o.status, o.error) for o in outcomes if o.status != 200]
    assert outcomes and not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:5]}"


def _answers(client: openai.OpenAI) -> bool:
    try:
        return bool(chat(client).choices[0].message.content)
    except openai.APIStatusError:
        return False


def test_a_higher_priority_deployment_preempts_a_lower_one_when_gpus_are_short(fleet):
    """One node of two GPUs. A priority-0 deployment takes both (two 1-GPU replicas); a priority-10 deployment of
    another model then needs one: one low-priority replica is drained and stopped, the high-priority replica gets
    its GPU and serves, and the low one's replacement waits, saying why in words."""
    p = fleet(TOLLGATE_FLEET_NODES="1x2xH100-80GB")
    low = deploy(p, model_id=MODEL, min_replicas=2, max_replicas=2, priority=0)
    wait_deployment(p, low["id"], "both low-priority replicas ready", lambda d: d["ready_replicas"] == 2, 20)

    high = deploy(p, model_id=OTHER, priority=10)
    wait_deployment(p, high["id"], "the high-priority replica ready", lambda d: d["ready_replicas"] == 1, 30)
    d = wait_deployment(
        p, low["id"], "one low replica left, its replacement pending with a reason",
        lambda d: d["ready_replicas"] == 1 and any(r["state"] == "pending" and r["reason"] for r in d["replicas"]),
        20)
    pending = next(r for r in d["replicas"] if r["state"] == "pending")
    assert pending["node"] is None and pending["gpus"] == [], pending
    assert "GPU" in pending["reason"] or "free" in pending["reason"], pending["reason"]
    low_kinds = [e["kind"] for e in events(p, low["id"])]
    assert "preempted" in low_kinds and "stopped" in low_kinds, low_kinds
    assert any(e["kind"] == "preempted" and "priority 10" in e["message"] for e in events(p, low["id"]))
    assert "preempting" in [e["kind"] for e in events(p, high["id"])]

    # Both GPUs are held: one by each deployment.
    holders = sorted(g["deployment"] for n in p.call("GET", "/fleet/nodes") for g in n["gpus"])
    assert holders == sorted([low["id"], high["id"]]), holders

    _, key = p.subscribe_with_key(OTHER, dict(PLAN))
    reply = p.client(key, timeout=30).chat.completions.create(
        model=OTHER, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.model == OTHER and reply.usage.completion_tokens == 4


def test_new_engine_arguments_roll_the_replicas_over_keeping_capacity(fleet):
    """Two ready replicas under steady load; the engine arguments change (PATCH engine). New replicas of the next
    generation start, and old ones drain only as new ones become ready: the deployment never has fewer than two
    ready replicas, no request fails, and in the end only new-generation replicas serve."""
    p = fleet()
    dep = deploy(p, model_id=MODEL, min_replicas=2, max_replicas=2)
    d = wait_deployment(p, dep["id"], "two ready", lambda d: d["ready_replicas"] == 2, 20)
    old = {r["id"] for r in live(d)}
    _, key = p.subscribe_with_key(MODEL, dict(PLAN))
    load = Load(p, key, workers=2)
    try:
        wait_for("load running", lambda: load.successes() >= 5, 20)
        patched = p.call("PATCH", f"/deployments/{dep['id']}", json={"engine": {"max_model_len": 4096}})
        assert patched["generation"] == 2 and patched["engine"]["max_model_len"] == 4096, patched
        fewest_ready = 2
        deadline = time.monotonic() + 40
        while True:
            d = deployment(p, dep["id"])
            fewest_ready = min(fewest_ready, d["ready_replicas"])
            serving = [r for r in d["replicas"] if r["state"] == "ready"]
            if len(serving) == 2 and all(r["generation"] == 2 and r["id"] not in old for r in serving) \
                    and not any(r["id"] in old for r in live(d)):
                break
            assert time.monotonic() < deadline, f"not rolled over in 40 s: {summary(d)}"
            time.sleep(0.05)
        assert fewest_ready >= 2, f"capacity fell to {fewest_ready} ready replicas during the rollout"
        time.sleep(0.5)
    finally:
        outcomes = load.stop()
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, failed[:3]
    assert len(outcomes) > 10
    kinds = [e["kind"] for e in events(p, dep["id"])]
    assert "updated" in kinds and kinds.count("draining") >= 2, kinds
