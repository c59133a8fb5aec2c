"""A minimal engine served by uvicorn, the HTTP server vLLM's OpenAI-compatible API runs on, so that the gateway's
own HTTP/1.1 client is tested against the server it meets in production (h11 and httptools, chunked streams,
answers larger than one read) and not only against the Rust simulator.

It answers like vLLM in shape: `/v1/completions` and `/v1/chat/completions`, streamed (Server-Sent Events, one
chunk per event) or not, with `usage`; `/metrics` with vLLM's gauges; `/health`. Each completion token is the word
"tok"; `max_tokens` tokens are produced. A prompt containing "BIG" gets a 300 KB answer; "SLOW" spaces events 20 ms
apart and ends its stream 200 ms after [DONE]. Run: `python -m uvicorn uvicorn_engine:app --http h11 --port N`.
"""

from __future__ import annotations

import asyncio
import json
import time


async def read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def send_whole(send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def prompt_text(request: dict) -> str:
    if "messages" in request:
        return " ".join(str(m.get("content", "")) for m in request["messages"])
    return str(request.get("prompt", ""))


async def completion(send, request: dict, chat: bool) -> None:
    prompt = prompt_text(request)
    prompt_tokens = max(1, len(prompt.split()))
    n = int(request.get("max_tokens") or 16)
    word = "tok " * 30_000 if "BIG" in prompt else "tok "
    created, rid = int(time.time()), f"cmpl-{time.monotonic_ns()}"
    kind = "chat.completion" if chat else "text_completion"

    def usage(completion_tokens: int) -> dict:
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    if not request.get("stream"):
        text = word * n
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                  if chat else {"index": 0, "text": text, "finish_reason": "length"})
        body = {"id": rid, "object": kind, "created": created, "model": request["model"], "choices": [choice],
                "usage": usage(n)}
        await send_whole(send, 200, json.dumps(body).encode(), b"application/json")
        return

    options = request.get("stream_options") or {}
    # No content-length: uvicorn frames the stream with chunked transfer encoding, one chunk per body message.
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})

    async def event(payload) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True})

    for i in range(n):
        if "SLOW" in prompt:
            await asyncio.sleep(0.02)
        delta = {"content": word} if chat else None
        choice = ({"index": 0, "delta": delta, "finish_reason": None} if chat
                  else {"index": 0, "text": word, "finish_reason": None})
        chunk = {"id": rid, "object": f"{kind}.chunk" if chat else kind, "created": created,
                 "model": request["model"], "choices": [choice]}
        if options.get("continuous_usage_stats"):
            chunk["usage"] = usage(i + 1)
        await event(chunk)
    if options.get("include_usage"):
        await event({"id": rid, "object": f"{kind}.chunk" if chat else kind, "created": created,
                     "model": request["model"], "choices": [], "usage": usage(n)})
    await event("[DONE]")
    if "SLOW" in prompt:
        # The stream's last bytes come a moment after [DONE], as a busy server's may: a client that hangs up on
        # [DONE] has still had the whole answer.
        await asyncio.sleep(0.2)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


METRICS = b"""# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.1
"""


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path, method = scope["path"], scope["method"]
    if method == "GET" and path == "/metrics":
        await send_whole(send, 200, METRICS, b"text/plain; version=0.0.4; charset=utf-8")
    elif method == "GET" and path == "/health":
        await send_whole(send, 200, b"", b"application/json")
    elif method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
        try:
            request = json.loads(await read_body(receive))
        except ValueError:
            await send_whole(send, 400, b'{"error":{"message":"bad json"}}', b"application/json")
            return
        await completion(send, request, chat=path.endswith("chat/completions"))
    else:
        await send_whole(send, 404, b'{"detail":"Not Found"}', b"application/json")
