"""tollgate-sim answers the real `openai` client like vLLM would.

Covers chat, streaming with usage, completions, embeddings, models, tokenize, LoRA,
the error cases, `/metrics` (parsed by `prometheus_client`) moving under load, and
every fault mode.
"""

from __future__ import annotations

import math
import threading
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MODEL, Sim


def chat(client: openai.OpenAI, content: str = "Hello!", **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kwargs)


def metrics(sim: Sim) -> dict[tuple[str, tuple], float]:
    """Scrapes /metrics with prometheus_client's parser: {(sample name, labels): value}."""
    text = httpx.get(f"{sim.url}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m: dict, name: str, **labels) -> float:
    for (n, lbls), v in m.items():
        if n == name and all(dict(lbls).get(k) == v2 for k, v2 in labels.items()):
            return v
    raise KeyError(name)


# --- OpenAI API -----------------------------------------------------------------------


def test_models_list(client: openai.OpenAI):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids
    card = next(m for m in models.data if m.id == MODEL)
    assert card.owned_by == "vllm"
    assert card.model_extra["max_model_len"] == 512
    assert card.model_extra["root"] == MODEL


def test_chat_completion(client: openai.OpenAI):
    r = chat(client, max_tokens=200, seed=3)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert r.created > 0
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert choice.message.content and choice.message.content.endswith(".")
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = chat(client, max_tokens=200, seed=3)
    assert again.choices[0].message.content == choice.message.content, "deterministic for prompt + seed"
    other = chat(client, max_tokens=200, seed=4)
    assert other.choices[0].message.content != choice.message.content


def test_prompt_tokens_grow_with_prompt(client: openai.OpenAI):
    short = chat(client, "Hi", max_tokens=1).usage.prompt_tokens
    long = chat(client, "Hi " * 100, max_tokens=1).usage.prompt_tokens
    assert long >= short + 100


def test_max_tokens_length_n_and_stop(client: openai.OpenAI):
    r = chat(client, max_completion_tokens=5, n=3)
    assert len(r.choices) == 3
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 15
    assert len({c.message.content for c in r.choices}) > 1
    r = chat(client, max_tokens=100, stop=["."], temperature=0.0)
    assert r.choices[0].finish_reason == "stop"
    assert "." not in r.choices[0].message.content


def test_chat_streaming_with_usage(client: openai.OpenAI):
    stream = chat(client, max_tokens=8, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == 8 == len(content)
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    full = chat(client, max_tokens=8)
    assert "".join(content) == full.choices[0].message.content, "streamed text equals the non-streamed text"


def test_chat_streaming_without_usage(client: openai.OpenAI):
    chunks = list(chat(client, max_tokens=3, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completions(client: openai.OpenAI):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert r.id.startswith("cmpl-")
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == r.choices[0].text
    assert chunks[-1].usage.total_tokens == r.usage.total_tokens


def test_embeddings(client: openai.OpenAI):
    # The client asks for base64 by default and decodes it.
    r = client.embeddings.create(model=MODEL, input=["hello", "world"])
    assert len(r.data) == 2
    vec = r.data[0].embedding
    assert len(vec) == 768
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-4)
    f = client.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7) for a, b in zip(f.data[0].embedding, vec))
    assert r.usage.prompt_tokens == 4  # hell|o + worl|d


def test_tokenize_detokenize_health_version(sim: Sim):
    t = httpx.post(f"{sim.url}/tokenize", json={"model": MODEL, "prompt": "Hello, world!"}).json()
    assert t["count"] == 6 and t["max_model_len"] == 512
    d = httpx.post(f"{sim.url}/detokenize", json={"model": MODEL, "tokens": t["tokens"]}).json()
    assert d["prompt"] == "Hello, world!"
    assert httpx.get(f"{sim.url}/health").status_code == 200
    assert "version" in httpx.get(f"{sim.url}/version").json()


# --- errors -----------------------------------------------------------------------------


def test_unknown_model_is_404(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    assert e.value.body["message"] == "The model `gpt-nope` does not exist."
    assert e.value.body["type"] == "NotFoundError"


def test_prompt_longer_than_max_model_len_is_400(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "word " * 600)
    assert e.value.status_code == 400
    assert "maximum context length is 512 tokens" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        chat(client, "hi", max_tokens=10_000)


def test_malformed_json_is_400(sim: Sim):
    r = httpx.post(f"{sim.url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == 400


# --- LoRA -------------------------------------------------------------------------------


def test_dynamic_lora(sim: Sim, client: openai.OpenAI):
    r = httpx.post(f"{sim.url}/v1/load_lora_adapter", json={"lora_name": "sql-lora", "lora_path": "/adapters/sql"})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'sql-lora' added successfully."
    try:
        card = next(m for m in client.models.list().data if m.id == "sql-lora")
        assert card.model_extra["parent"] == MODEL
        r = client.chat.completions.create(model="sql-lora", messages=[{"role": "user", "content": "q"}], max_tokens=2)
        assert r.model == "sql-lora"
    finally:
        r = httpx.post(f"{sim.url}/v1/unload_lora_adapter", json={"lora_name": "sql-lora"})
        assert r.status_code == 200
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="sql-lora", messages=[{"role": "user", "content": "q"}])


# --- metrics ----------------------------------------------------------------------------


def test_metrics_parse_with_vllm_names(sim: Sim, client: openai.OpenAI):
    chat(client, max_tokens=4)
    text = httpx.get(f"{sim.url}/metrics").text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name, kind in {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:inter_token_latency_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
    }.items():
        assert families.get(name) == kind, name
    m = metrics(sim)
    assert metric(m, "vllm:generation_tokens_total", model_name=MODEL, engine="0") > 0
    assert metric(m, "vllm:request_success_total", finished_reason="length") > 0


def test_gauges_move_under_load(sim_factory):
    slow = sim_factory(MODEL, "--max-num-seqs", "4", "--sim-decode-ms", "40", "--sim-prefill-tokens-per-s", "0")
    client = slow.client()
    results: list[int] = []

    def worker(i: int):
        chunks = list(chat(client, f"load {i}", max_tokens=15, stream=True))
        results.append(sum(1 for c in chunks if c.choices and c.choices[0].delta.content))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    peak_running = peak_waiting = peak_kv = 0.0
    deadline = time.time() + 5
    while time.time() < deadline and not (peak_running == 4 and peak_waiting >= 1 and peak_kv > 0):
        m = metrics(slow)
        peak_running = max(peak_running, metric(m, "vllm:num_requests_running"))
        peak_waiting = max(peak_waiting, metric(m, "vllm:num_requests_waiting"))
        peak_kv = max(peak_kv, metric(m, "vllm:kv_cache_usage_perc"))
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert peak_running == 4, "running capped at --max-num-seqs"
    assert peak_waiting >= 1, "the rest wait"
    assert 0 < peak_kv <= 1
    assert results == [15] * 10
    m = metrics(slow)
    assert metric(m, "vllm:num_requests_running") == 0
    assert metric(m, "vllm:generation_tokens_total") == 150
    assert metric(m, "vllm:time_to_first_token_seconds_count") == 10
    assert metric(m, "vllm:request_queue_time_seconds_sum") > 0.1


# --- faults -----------------------------------------------------------------------------


def set_faults(sim: Sim, **faults):
    r = httpx.post(f"{sim.url}/sim/faults", json=faults)
    assert r.status_code == 200, r.text


def test_fault_error_rate(sim_factory):
    s = sim_factory(MODEL, "--sim-zero-latency")
    client = s.client()
    set_faults(s, error_rate=1.0)
    with pytest.raises(openai.InternalServerError) as e:
        chat(client, max_tokens=2)
    assert e.value.status_code == 500
    set_faults(s, error_rate=0.5)
    failures = 0
    for _ in range(60):
        try:
            chat(client, max_tokens=1)
        except openai.InternalServerError:
            failures += 1
    assert 10 <= failures <= 50
    set_faults(s)
    chat(client, max_tokens=1)


def test_fault_cut_mid_stream(sim_factory):
    s = sim_factory(MODEL, "--sim-zero-latency")
    client = s.client()
    set_faults(s, cut_after_tokens=3)
    received = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in chat(client, max_tokens=20, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 3
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        chat(client, max_tokens=20)


def test_fault_stall(sim_factory):
    s = sim_factory(MODEL, "--sim-zero-latency", "--sim-fault-stall-ms", "400")
    client = s.client()
    t0 = time.time()
    chat(client, max_tokens=2)
    assert time.time() - t0 >= 0.38
    set_faults(s, stall_ms=0)
    t0 = time.time()
    chat(client, max_tokens=2)
    assert time.time() - t0 < 0.3


def test_fault_exit(sim_factory):
    s = sim_factory(MODEL, "--sim-zero-latency")
    set_faults(s, exit=True, exit_code=7)
    assert s.process.wait(timeout=5) == 7


def test_cold_start(sim_factory):
    s = sim_factory(MODEL, "--sim-zero-latency", "--sim-load-time-s", "0.5")
    assert httpx.get(f"{s.url}/health").status_code == 503
    deadline = time.time() + 5
    while httpx.get(f"{s.url}/health").status_code != 200:
        assert time.time() < deadline
        time.sleep(0.05)
    chat(s.client(), max_tokens=1)
