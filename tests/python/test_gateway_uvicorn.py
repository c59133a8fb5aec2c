"""The gateway's HTTP/1.1 client against uvicorn, the server vLLM runs its API on, with both of uvicorn's HTTP
parsers (h11, and httptools as `vllm serve` uses through uvicorn[standard]), and over TLS (`vllm serve
--ssl-certfile`, an engine at an https:// URL whose certificate comes from a private CA, given to Tollgate as
`TOLLGATE_GATEWAY_ENGINE_CA_FILE`): whole answers, answers larger than one read, chunked streams with and without
usage, streams whose events arrive apart, and reused connections. The unchanged `openai` client is the caller;
usage records must carry the engine's own token counts."""

from __future__ import annotations

import ssl
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tollgate_platform import free_port, start_platform, wait_until_up

MODEL = "granite-3.1-2b-base"
HERE = Path(__file__).resolve().parent
TLS = HERE.parent / "fixtures" / "tls"


@pytest.fixture(params=["h11", "httptools", "httptools over TLS"])
def platform_on_uvicorn(request):
    port = free_port()
    tls = request.param.endswith("over TLS")
    engine = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "uvicorn_engine:app", "--http", request.param.split()[0],
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         *(["--ssl-certfile", str(TLS / "engine.pem"), "--ssl-keyfile", str(TLS / "engine.key")] if tls else [])],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(TLS / "ca.pem")) if tls else True
    assert wait_until_up(f"{url}/health", engine, 15, verify=trust), \
        "uvicorn did not start"
    env = {"TOLLGATE_GATEWAY_ENGINE_CA_FILE": str(TLS / "ca.pem")} if tls else {}
    platform = start_platform(sims={MODEL: [types.SimpleNamespace(url=url)]}, extra_env=env)
    try:
        yield platform
    finally:
        platform.stop()
        engine.kill()
        engine.wait(timeout=10)


def test_every_answer_shape_from_uvicorn_passes_through_exactly(platform_on_uvicorn):
    platform = platform_on_uvicorn
    _, key = platform.subscribe_with_key(MODEL, {"name": "Uvicorn", "requests_per_minute": 1000})
    client = platform.client(key)

    # Whole answers, several in a row on the pooled connection.
    for _ in range(3):
        answer = client.completions.create(model=MODEL, prompt="one two three", max_tokens=5)
        assert answer.choices[0].text == "tok " * 5
        assert answer.model == MODEL
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 5)

    # An answer of about 600 KB: many reads, one body.
    big = client.completions.create(model=MODEL, prompt="BIG", max_tokens=5)
    assert big.choices[0].text == "tok " * 30_000 * 5

    # A chunked stream, usage asked for: every event, then the usage chunk.
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}],
                                            max_tokens=7, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok " * 7
    assert chunks[-1].usage.completion_tokens == 7 and not chunks[-1].choices

    # A stream whose events come 20 ms apart (each in its own read), usage not asked for: none reaches the client.
    # Its engine ends the stream 200 ms after [DONE]; the client, done at [DONE], hangs up first: still a finished
    # request, not one the client cut (checked with the usage records below).
    slow = list(client.completions.create(model=MODEL, prompt="SLOW", max_tokens=6, stream=True))
    assert "".join(c.choices[0].text for c in slow) == "tok " * 6
    assert all(c.usage is None for c in slow)

    # A stream the client leaves early: the engine's connection is dropped, and the next request still works.
    with client.completions.create(model=MODEL, prompt="SLOW", max_tokens=50, stream=True) as cut:
        next(iter(cut))
    assert client.completions.create(model=MODEL, prompt="x", max_tokens=2).choices[0].text == "tok tok "

    records = platform.wait_for_usage(8)
    assert len(records) == 8, records
    cut_records = [r for r in records if r["client_disconnected"]]
    assert len(cut_records) == 1 and cut_records[0]["completion_tokens"] < 50, [
        (r["request_id"], r["streamed"], r["completion_tokens"]) for r in cut_records]
    whole = [r for r in records if not r["client_disconnected"]]
    assert all(r["status"] == 200 for r in whole), whole
    by_tokens = sorted((r["prompt_tokens"], r["completion_tokens"], r["streamed"]) for r in whole)
    # The engine's own counts, streams included (the gateway asked uvicorn's engine for usage on every stream).
    assert (2, 7, True) in by_tokens and (1, 6, True) in by_tokens and (1, 5, False) in by_tokens
    assert by_tokens.count((3, 5, False)) == 3
