"""Two Tollgate server processes sharing one PostgreSQL database and one Redis enforce ONE token limit: clients
hammering both with the same key get, together, what the plan allows and no more (within 1%)."""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from conftest import REDIS_URL
from tollgate_platform import start_engines, start_platform

TOKENS_PER_MINUTE = 50_000


def test_two_servers_share_one_token_limit(database):
    sims = start_engines({"granite-3.1-2b-base": ("ibm-granite/granite-3.1-2b-base", 2, ["--sim-zero-latency"])})
    env = {"TOLLGATE_REDIS_URL": REDIS_URL, "TOLLGATE_REDIS_PREFIX": f"tg-test-{uuid.uuid4().hex[:8]}"}
    first = start_platform(sims=sims, database_url=database.url, extra_env=env)
    second = start_platform(sims=sims, database_url=database.url, extra_env=env)
    try:
        sub, key = first.subscribe_with_key(
            "granite-3.1-2b-base",
            {"name": "Shared", "requests_per_minute": 100000, "tokens_per_minute": TOKENS_PER_MINUTE},
        )
        # The second server learns of the key from the database within its refresh interval.
        deadline = time.monotonic() + 10
        while httpx.get(f"{second.base_url}/models", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
            assert time.monotonic() < deadline, "the second server never accepted the key"
            time.sleep(0.1)

        # Limits count over a sliding minute: a run shorter than a minute is one window, whenever it starts.
        accepted, refused = [0], [0]
        lock = threading.Lock()

        def hammer(base_url: str) -> None:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
                while True:
                    r = c.post("/completions", json={"model": "granite-3.1-2b-base", "prompt": "Count to three", "max_tokens": 8})
                    with lock:
                        if r.status_code == 200:
                            accepted[0] += 1
                        elif r.status_code == 429:
                            refused[0] += 1
                            if refused[0] >= 40:
                                return
                        else:
                            raise AssertionError(f"{r.status_code} {r.text}")

        threads = [threading.Thread(target=hammer, args=(p.base_url,)) for p in (first, second) for _ in range(3)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert time.monotonic() - started < 50, "the run took too long to stay inside one minute's window"
        assert accepted[0] > 0 and refused[0] >= 40

        # Wait until every record is written before paging through them (paging while the writer still inserts
        # would shift the pages).
        expected = accepted[0] + refused[0]
        deadline = time.monotonic() + 10
        while first.usage_total(subscription_id=sub) < expected:
            assert time.monotonic() < deadline, "usage records were not all written"
            time.sleep(0.2)
        records = first.all_usage(subscription_id=sub)
        assert len(records) == expected == len({r["id"] for r in records}), "one usage record per request"
        statuses = {s: sum(1 for r in records if r["status"] == s) for s in {r["status"] for r in records}}
        assert statuses.get(429, 0) == refused[0], statuses
        records = [r for r in records if r["status"] == 200]
        assert len(records) == accepted[0]
        used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
        print(f"two servers admitted {used} of {TOKENS_PER_MINUTE} tokens in {len(records)} requests ({refused[0]} refused)")
        assert used <= TOKENS_PER_MINUTE, f"{used} tokens admitted against a limit of {TOKENS_PER_MINUTE}"
        assert used >= TOKENS_PER_MINUTE * 0.99, f"only {used} of {TOKENS_PER_MINUTE} tokens were admitted"
    finally:
        first.stop()
        second.stop()
        for replicas in sims.values():
            for s in replicas:
                s.stop()
