"""A Redis blip or a database blip is not an outage. Tollgate reaches Redis and PostgreSQL through TCP proxies this
test controls; steady traffic runs through the real `openai` client while each is cut and restored:

- no 5xx beyond the requests in flight at a cut (in practice none);
- while Redis is away, limits still hold: RPM 3 refuses the fourth request on one replica, and with two replicas
  each admits at most its share (3 // 2 = 1);
- full service within a few seconds of the restore, with the requests admitted locally counted in the shared
  window and the month;
- one usage record per successful request, the database cut included, and Redis's monthly count equal to the
  tokens in the records.
"""

from __future__ import annotations

import datetime
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import openai

from conftest import POSTGRES, REDIS_URL
from tcp_proxy import TcpProxy
from tollgate_platform import Platform, start_engines, start_platform

STEADY = "granite-3.1-2b-base"
STRICT = "qwen2.5-coder-7b-instruct"
ENGINES = {
    STEADY: ("ibm-granite/granite-3.1-2b-base", 1, ["--sim-zero-latency"]),
    STRICT: ("Qwen/Qwen2.5-Coder-7B-Instruct", 1, ["--sim-zero-latency"]),
}


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def redis_get(key: str) -> str | None:
    """GET over RESP, so the test needs no Redis client library."""
    host, port = host_port(REDIS_URL, 6379)
    with socket.create_connection((host, port), timeout=5) as s:
        k = key.encode()
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        reply = s.makefile("rb")
        head = reply.readline()
        if head.startswith(b"$-1"):
            return None
        assert head.startswith(b"$"), head
        return reply.read(int(head[1:]) + 2)[:-2].decode()


def month_start_ms() -> int:
    now = datetime.datetime.now(datetime.timezone.utc)
    return int(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def readiness(p: Platform) -> tuple[int, dict]:
    r = httpx.get(f"{p.url}/readyz", timeout=30)
    return r.status_code, r.json()


def wait_for_mode(p: Platform, mode: str, within: float) -> float:
    """Seconds until /readyz reports the limiter in `mode`; fails after `within`."""
    started = time.monotonic()
    while True:
        _, body = readiness(p)
        if body["limiter"]["mode"] == mode:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"limiter still {body['limiter']} after {within} s, not {mode}"
        time.sleep(0.05)


def still_in_the_window(since: float) -> None:
    """Limits count over a sliding minute: what was admitted at `since` still counts for 59 s."""
    assert time.monotonic() - since < 59, "the test took too long to check within one window"


@dataclass
class Outcome:
    start: float
    end: float
    status: int  # the HTTP status; 0 when no answer came


class Load:
    """Clients calling one model in a loop with the real openai client, until stopped."""

    def __init__(self, p: Platform, key: str, model: str, workers: int = 2) -> None:
        self.outcomes: list[Outcome] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(p, key, model), daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self, p: Platform, key: str, model: str) -> None:
        client = p.client(key, timeout=15)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                client.completions.create(model=model, prompt="Count to three", max_tokens=4)
                status = 200
            except openai.APIStatusError as e:
                status = e.status_code
            except openai.APIConnectionError:
                status = 0
            with self.lock:
                self.outcomes.append(Outcome(started, time.monotonic(), status))
            time.sleep(0.01)

    def stop(self) -> list[Outcome]:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)
        return self.outcomes


def statuses(client: openai.OpenAI, model: str, n: int) -> list[int]:
    out = []
    for _ in range(n):
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
            out.append(200)
        except openai.APIStatusError as e:
            out.append(e.status_code)
    return out


def wait_for_records(p: Platform, sub: str, successes: int, timeout: float = 40) -> list[dict]:
    """Every record of `sub`, once as many as `successes` have status 200 and the count stopped moving."""
    deadline = time.monotonic() + timeout
    while True:
        total = p.settled_usage_total(subscription_id=sub)
        records = p.all_usage(subscription_id=sub)
        ok = sum(1 for r in records if r["status"] == 200)
        if (ok >= successes and len(records) == total) or time.monotonic() > deadline:
            return records
        time.sleep(1)


def test_one_replica_rides_out_a_redis_blip_and_a_database_blip(database):
    pg_host, pg_port = host_port(POSTGRES, 5432)
    redis_proxy = TcpProxy(*host_port(REDIS_URL, 6379))
    pg_proxy = TcpProxy(pg_host, pg_port)
    prefix = f"tg-test-{uuid.uuid4().hex[:8]}"
    sims = start_engines(ENGINES)
    p = start_platform(
        sims=sims,
        database_url=f"postgres://postgres@127.0.0.1:{pg_proxy.port}/{database.name}",
        extra_env={"TOLLGATE_REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}", "TOLLGATE_REDIS_PREFIX": prefix,
                   "TOLLGATE_METRICS_TOKEN": "outage-test-metrics"},
    )
    load = None
    try:
        steady, steady_key = p.subscribe_with_key(STEADY, {"name": "Steady", "requests_per_minute": 100000})
        _, strict_key = p.subscribe_with_key(STRICT, {"name": "Three a minute", "requests_per_minute": 3})
        assert readiness(p)[1]["limiter"]["mode"] == "shared"

        load = Load(p, steady_key, STEADY)
        time.sleep(2)

        # Redis goes away: the first admission to notice switches to local limits, logged once.
        cut_redis = time.monotonic()
        redis_proxy.cut()
        switched = wait_for_mode(p, "local_share", within=3)
        status, body = readiness(p)
        assert status == 200 and body["limiter"]["down_since_ms"], body
        metrics = httpx.get(f"{p.url}/metrics", headers={"Authorization": "Bearer outage-test-metrics"}).text
        assert 'tollgate_gateway_limiter_mode{mode="local_share"} 1' in metrics
        # Limits still hold: RPM 3 refuses the fourth request.
        window = time.monotonic()
        strict = p.client(strict_key)
        assert statuses(strict, STRICT, 4) == [200, 200, 200, 429]
        time.sleep(3)

        redis_proxy.restore()
        restored = time.monotonic()
        recovery = wait_for_mode(p, "shared", within=5)
        back = time.monotonic()
        print(f"switched to local limits {switched:.2f} s after the cut; shared again {recovery:.2f} s after the restore")
        # The three admitted locally are in the shared window: the minute's limit is used up.
        still_in_the_window(window)
        assert statuses(strict, STRICT, 1) == [429]
        time.sleep(2)

        # The database goes away: the gateway serves from memory and spools usage records to disk.
        cut_db = time.monotonic()
        pg_proxy.cut()
        time.sleep(2)
        status, body = readiness(p)
        assert status == 503 and body["database"] == "unreachable", body
        time.sleep(3)
        pg_proxy.restore()
        deadline = time.monotonic() + 30
        while readiness(p)[0] != 200:
            assert time.monotonic() < deadline, "the database never came back"
            time.sleep(0.2)
        time.sleep(1)
        outcomes = load.stop()
        load = None

        failed = [o for o in outcomes if o.status >= 500 or o.status == 0]
        in_flight = [o for o in outcomes if any(o.start <= cut <= o.end for cut in (cut_redis, cut_db))]
        ok = [o for o in outcomes if o.status == 200]
        print(f"{len(outcomes)} requests: {len(ok)} answered, {len(failed)} failed, {len(in_flight)} in flight at a cut")
        assert len(failed) <= len(in_flight), [o.status for o in failed]
        assert all(o.status == 200 for o in outcomes if o.start > back), "full service after the restore"
        during = [o for o in outcomes if cut_redis < o.start < restored]
        assert during and all(o.status == 200 for o in during), "served under local limits while Redis was away"

        records = wait_for_records(p, steady, len(ok))
        assert len(records) == len({r["id"] for r in records}), "no record twice"
        assert sum(1 for r in records if r["status"] == 200) == len(ok), "one usage record per successful request"
        # The month's count in Redis holds the outage's usage too: exactly the tokens in the records.
        tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
        deadline = time.monotonic() + 10
        while (counted := redis_get(f"{prefix}:{{{steady}}}:m:{month_start_ms()}")) != str(tokens):
            assert time.monotonic() < deadline, f"Redis counts {counted} tokens this month, the records {tokens}"
            time.sleep(0.5)
    finally:
        if load:
            load.stop()
        p.stop()
        for replicas in sims.values():
            for s in replicas:
                s.stop()
        redis_proxy.close()
        pg_proxy.close()


def test_two_replicas_each_keep_to_their_share_while_redis_is_away(database):
    redis_proxy = TcpProxy(*host_port(REDIS_URL, 6379))
    env = {"TOLLGATE_REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}",
           "TOLLGATE_REDIS_PREFIX": f"tg-test-{uuid.uuid4().hex[:8]}"}
    url = database.url
    sims = start_engines({STRICT: ENGINES[STRICT]})
    first = start_platform(sims=sims, database_url=url, extra_env=env)
    second = start_platform(sims=sims, database_url=url, extra_env=env)
    try:
        _, key = first.subscribe_with_key(STRICT, {"name": "Three a minute", "requests_per_minute": 3})
        # Each replica counts the other's heartbeat (every 5 s) and learns of the key (within its refresh).
        deadline = time.monotonic() + 15
        while not all(readiness(p)[1]["limiter"]["replicas"] == 2 for p in (first, second)) or \
                httpx.get(f"{second.base_url}/models", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
            assert time.monotonic() < deadline, "the replicas never saw each other"
            time.sleep(0.2)

        window = time.monotonic()
        redis_proxy.cut()
        answers = {p.url: statuses(p.client(key), STRICT, 4) for p in (first, second)}
        for p in (first, second):
            body = readiness(p)[1]
            assert body["limiter"]["mode"] == "local_share" and body["limiter"]["replicas"] == 2, body
        print(f"with Redis away, RPM 3 over two replicas: {answers}")
        for got in answers.values():
            assert got == [200, 429, 429, 429], f"each replica admits its share, 3 // 2 = 1: {answers}"

        redis_proxy.restore()
        for p in (first, second):
            wait_for_mode(p, "shared", within=5)
        # The two admitted locally now count in the shared window: one more fits in this minute, on either.
        still_in_the_window(window)
        after = statuses(first.client(key), STRICT, 1) + statuses(second.client(key), STRICT, 1)
        assert after == [200, 429], after
    finally:
        first.stop()
        second.stop()
        for replicas in sims.values():
            for s in replicas:
                s.stop()
        redis_proxy.close()
