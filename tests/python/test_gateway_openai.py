"""The unchanged `openai` client against Tollgate's gateway, which forwards to real `tollgate-sim` engines:
every endpoint, streams with and without usage, errors with OpenAI's shapes, 429s with their headers, and usage
records that match what the engines counted."""

from __future__ import annotations

import re
import time
from typing import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tollgate_platform import Platform, start_platform

# Limits as strings, as the API took them before numbers: still accepted.
GENEROUS = {"name": "Generous", "requests_per_minute": "10000", "tokens_per_minute": "10000000"}


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    p = start_platform()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def chat_key(platform: Platform) -> tuple[str, str]:
    return platform.subscribe_with_key("llama-3.1-8b-instruct", dict(GENEROUS))


def test_chat_completion(platform: Platform, chat_key: tuple[str, str]):
    sub, key = chat_key
    client = platform.client(key)
    raw = client.chat.completions.with_raw_response.create(
        model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Say hello"}], max_tokens=12, seed=7
    )
    r = raw.parse()
    assert r.choices[0].message.content
    assert r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert int(raw.headers["x-ratelimit-limit-requests"]) == 10000
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 10000
    assert raw.headers["x-request-id"]
    records = platform.wait_for_usage(1, subscription_id=sub)
    mine = [u for u in records if u["request_id"] == raw.headers["x-request-id"]]
    assert len(mine) == 1, records
    assert (mine[0]["prompt_tokens"], mine[0]["completion_tokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert mine[0]["status"] == 200 and not mine[0]["streamed"]


def test_stream_without_usage_hides_the_usage_chunk(platform: Platform, chat_key: tuple[str, str]):
    _, key = chat_key
    chunks = list(platform.client(key).chat.completions.create(
        model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Count"}], max_tokens=8, stream=True
    ))
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no empty-choices usage chunk the client did not ask for"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text


def test_stream_with_usage_and_it_is_metered(platform: Platform, chat_key: tuple[str, str]):
    sub, key = chat_key
    before = platform.settled_usage_total(subscription_id=sub)
    stream = platform.client(key).chat.completions.create(
        model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Stream please"}], max_tokens=10,
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert final.usage.completion_tokens == sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    records = platform.wait_for_usage(before + 1, subscription_id=sub)
    newest = records[0]
    assert newest["streamed"] and newest["completion_tokens"] == final.usage.completion_tokens
    assert newest["ttft_ms"] is not None


def test_completions_and_embeddings(platform: Platform):
    _, completion_key = platform.subscribe_with_key("granite-3.1-2b-base", {"name": "Completions"})
    c = platform.client(completion_key).completions.create(model="granite-3.1-2b-base", prompt="Once upon a", max_tokens=5)
    assert c.choices[0].text and c.usage.completion_tokens <= 5
    _, embed_key = platform.subscribe_with_key("bge-m3", {"name": "Embeddings"})
    e = platform.client(embed_key).embeddings.create(model="bge-m3", input=["one", "two"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0
    assert e.usage.prompt_tokens > 0


def test_models_lists_only_what_the_key_may_use(platform: Platform, chat_key: tuple[str, str]):
    _, key = chat_key
    models = platform.client(key).models.list()
    assert [m.id for m in models.data] == ["llama-3.1-8b-instruct"]


def test_errors_have_openai_shapes(platform: Platform, chat_key: tuple[str, str]):
    _, key = chat_key
    with pytest.raises(openai.AuthenticationError) as bad:
        platform.client("tg-notarealkey00000000000000000000000000000000000").models.list()
    assert bad.value.body["type"] or bad.value.body["message"]
    missing = httpx.get(f"{platform.base_url}/models")
    assert missing.status_code == 401 and "API key" in missing.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        platform.client(key).chat.completions.create(model="bge-m3", messages=[{"role": "user", "content": "x"}])
    r = httpx.post(f"{platform.base_url}/chat/completions", content=b"{not json",
                   headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        platform.client(key).chat.completions.create(
            model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "x " * 5000}], max_tokens=10
        )


def test_revoked_keys_stop_working(platform: Platform):
    sub, key = platform.subscribe_with_key("qwen2.5-coder-7b-instruct", {"name": "Revocable"})
    client = platform.client(key)
    assert client.models.list().data
    detail = platform.call("GET", f"/subscriptions/{sub}")
    platform.call("DELETE", f"/keys/{detail['keys'][0]['id']}")
    deadline = time.monotonic() + 5
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError as e:
            assert "revoked" in str(e).lower()
            break
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.05)


def test_rate_limits_answer_429_with_headers(platform: Platform):
    plan = platform.call("POST", "/plans", json={"name": "Tight", "requests_per_minute": 3})["id"]
    # A second team, so this subscription does not clash with the module's granite subscription.
    other = platform.call("POST", "/teams", json={"name": "Limits"})["id"]
    sub = platform.call("POST", "/subscriptions", json={"team_id": other, "model_id": "granite-3.1-2b-base", "plan_id": plan})
    key = platform.call("POST", f"/subscriptions/{sub['id']}/keys", json={"name": "tight"})["secret"]
    client = platform.client(key)
    for _ in range(3):
        client.completions.create(model="granite-3.1-2b-base", prompt="hi", max_tokens=2)
    with pytest.raises(openai.RateLimitError) as limited:
        client.completions.create(model="granite-3.1-2b-base", prompt="hi", max_tokens=2)
    headers = limited.value.response.headers
    # A sliding minute: room comes back when the first of the three leaves it, a minute (and up to a one-second
    # step) after it was admitted, a moment ago.
    assert 55 <= int(headers["retry-after"]) <= 61, headers["retry-after"]
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"[0-9hms.]+", headers["x-ratelimit-reset-requests"]), headers["x-ratelimit-reset-requests"]


def engine_tokens(sims) -> tuple[int, int]:
    prompt = generated = 0
    for s in sims:
        for family in text_string_to_metric_families(httpx.get(f"{s.url}/metrics").text):
            for sample in family.samples:
                if sample.name == "vllm:prompt_tokens_total":
                    prompt += int(sample.value)
                elif sample.name == "vllm:generation_tokens_total":
                    generated += int(sample.value)
    return prompt, generated


def test_usage_records_equal_the_engines_own_counters(platform: Platform):
    """A load run on a model no other test uses: what the gateway recorded equals what the engine counted."""
    sims = platform.sims["qwen2.5-coder-7b-instruct"]
    sub, key = platform.subscribe_with_key("qwen2.5-coder-7b-instruct", dict(GENEROUS, name="Load"))
    before = engine_tokens(sims)
    client = platform.client(key)
    for i in range(20):
        messages = [{"role": "user", "content": f"request {i} " + "word " * i}]
        if i % 2:
            list(client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=messages, max_tokens=6 + i, stream=True))
        else:
            client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=messages, max_tokens=6 + i)
    records = platform.wait_for_usage(20, subscription_id=sub)
    assert len(records) == 20
    after = engine_tokens(sims)
    assert sum(r["prompt_tokens"] for r in records) == after[0] - before[0]
    assert sum(r["completion_tokens"] for r in records) == after[1] - before[1]


# --- failures and disconnects, with the real client ------------------------------------------------------------

def set_faults(sim, **faults) -> None:
    r = httpx.post(f"{sim.url}/sim/faults", json=faults)
    assert r.status_code == 200, r.text


def test_a_client_leaving_mid_stream_is_metered_and_its_reservation_refunded(platform: Platform):
    """A tight token budget: a long stream reserves most of it; cutting the stream must give the rest back."""
    team = platform.call("POST", "/teams", json={"name": "Cutters"})["id"]
    plan = platform.call("POST", "/plans", json={"name": "Budget", "tokens_per_minute": "2000"})["id"]
    sub = platform.call("POST", "/subscriptions", json={"team_id": team, "model_id": "llama-3.1-8b-instruct", "plan_id": plan})
    key = platform.call("POST", f"/subscriptions/{sub['id']}/keys", json={"name": "cutter"})["secret"]
    client = platform.client(key)
    stream = client.chat.completions.create(
        model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Talk for a long time"}],
        max_tokens=1500, stream=True, extra_body={"ignore_eos": True},
    )
    received = 0
    for chunk in stream:
        received += 1
        if received == 3:
            break
    stream.close()
    records = platform.wait_for_usage(1, subscription_id=sub["id"])
    assert len(records) == 1
    cut = records[0]
    assert cut["streamed"] and cut["client_disconnected"], cut
    assert 0 < cut["completion_tokens"] < 1500, "tokens produced before the cut are charged, not the whole reservation"
    # Had the 1500-token reservation stayed, this request would not fit in the 2000 tokens/min budget.
    r = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=400)
    assert r.usage.completion_tokens > 0


def test_an_engine_failing_before_the_first_byte_is_retried_on_another(platform: Platform, chat_key: tuple[str, str]):
    sub, key = chat_key
    broken, healthy = platform.sims["llama-3.1-8b-instruct"]
    before = platform.settled_usage_total(subscription_id=sub)
    set_faults(broken, error_rate=1.0)
    try:
        client = platform.client(key)
        for _ in range(6):
            r = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "x"}], max_tokens=3)
            assert r.choices[0].message.content
            chunks = list(client.chat.completions.create(
                model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "y"}], max_tokens=3, stream=True))
            assert chunks
        records = platform.wait_for_usage(before + 12, subscription_id=sub)[:12]
        assert all(r["status"] == 200 for r in records)
        assert {r["replica"] for r in records} == {healthy.url}, "every request ended on the healthy replica"
    finally:
        set_faults(broken)


def test_an_engine_failing_mid_stream_gives_a_clean_error_and_usage(platform: Platform, chat_key: tuple[str, str]):
    sub, key = chat_key
    replicas = platform.sims["llama-3.1-8b-instruct"]
    for s in replicas:
        set_faults(s, cut_after_tokens=3)
    try:
        before = platform.settled_usage_total(subscription_id=sub)
        stream = platform.client(key).chat.completions.create(
            model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Tell a story"}],
            max_tokens=50, stream=True, extra_body={"ignore_eos": True},
        )
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
        records = platform.wait_for_usage(before + 1, subscription_id=sub)
        failed = records[0]
        assert failed["status"] >= 500 and failed["streamed"], failed
        assert failed["completion_tokens"] >= 1, "tokens produced before the failure are recorded"
    finally:
        for s in replicas:
            set_faults(s)
