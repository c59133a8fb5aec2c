"""A model whose engine is still starting (vLLM listens only once its weights are loaded): the gateway answers
503 with Retry-After instead of failing, and the unchanged `openai` client, retrying as it does by default,
gets its answer once the engine is up."""

from __future__ import annotations

import threading
import time
import types

import openai
import pytest

from conftest import start_sim
from tollgate_platform import free_port, start_platform

MODEL = "granite-3.1-2b-base"
SERVED = "ibm-granite/granite-3.1-2b-base"


def test_a_starting_engine_answers_503_with_retry_after_and_the_client_retries_into_an_answer():
    port = free_port()
    # The server is told of an engine that is not listening yet.
    # Held requests are answered at once here (no wait): the client's own retries are what this test is about.
    platform = start_platform(sims={MODEL: [types.SimpleNamespace(url=f"http://127.0.0.1:{port}")]},
                              extra_env={"TOLLGATE_GATEWAY_WAKE_WAIT_MS": "0"})
    engine_box = []
    try:
        _, key = platform.subscribe_with_key(MODEL, {"name": "Starting", "requests_per_minute": 1000})
        # The first probe runs as the server starts; give it time to find nothing there.
        time.sleep(2.5)
        with pytest.raises(openai.APIStatusError) as starting:
            platform.client(key).completions.create(model=MODEL, prompt="hello", max_tokens=4)
        assert starting.value.status_code == 503
        assert starting.value.response.headers["retry-after"] == "5"
        error = starting.value.body.get("error", starting.value.body)
        assert error["code"] == "no_replica"
        assert "is starting" in error["message"]

        # The engine comes up a moment later, while a default client (which retries 503s after Retry-After) waits.
        threading.Timer(1.0, lambda: engine_box.append(start_sim(SERVED, "--sim-zero-latency", port=port))).start()
        patient = openai.OpenAI(base_url=platform.base_url, api_key=key, max_retries=3)
        answer = patient.completions.create(model=MODEL, prompt="hello", max_tokens=4)
        assert answer.model == MODEL
        assert answer.usage.completion_tokens == 4
        statuses = sorted(r["status"] for r in platform.wait_for_usage(3))
        assert statuses.count(200) == 1 and statuses.count(503) >= 2, statuses
    finally:
        platform.stop()
        for engine in engine_box:
            engine.stop()
