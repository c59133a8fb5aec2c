"""The APIs beyond chat that clients call, through Tollgate's gateway with the real SDKs: tool calls and structured
output with `openai` (an agent loop of call, result and answer, streamed tool-call deltas put together as the SDK
does, `response_format` with a JSON schema read back into a pydantic model), Anthropic's Messages API with
`anthropic` (streaming and not, tools, its error shapes), and OpenAI's Responses API with `openai`'s
`responses.create`; each with usage records that match what the engine counted."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Iterator, Literal, Optional

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from tollgate_platform import Platform, start_platform

MODEL = "llama-3.1-8b-instruct"
GENEROUS = {"name": "Generous tools", "requests_per_minute": 10000, "tokens_per_minute": 10000000}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    p = start_platform()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def key(platform: Platform) -> tuple[str, str]:
    return platform.subscribe_with_key(MODEL, dict(GENEROUS))


def record_of(platform: Platform, subscription: str, request_id: str, timeout: float = 10.0) -> dict:
    """The usage record of one request, once the batch writer has written it."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [r for r in platform.usage(subscription_id=subscription) if r["request_id"] == request_id]
        if mine or time.monotonic() > deadline:
            assert len(mine) == 1, f"no usage record for {request_id}"
            return mine[0]
        time.sleep(0.1)


def check_weather_args(arguments: str) -> dict:
    args = json.loads(arguments)
    assert set(args) == {"city", "unit", "days"}, args
    assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit") and 1 <= args["days"] <= 7
    return args


def test_an_agent_loop_calls_a_tool_then_answers_with_its_result(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    client = platform.client(secret)
    messages: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=200
    )
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    check_weather_args(call.function.arguments)

    # The tool's result goes back; the model answers in prose.
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 4}'}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=30)
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    # The tool definitions and the earlier call count as prompt tokens.
    assert second.usage.prompt_tokens > first.usage.prompt_tokens

    mine = record_of(platform, sub, raw.headers["x-request-id"])
    assert mine["status"] == 200 and mine["endpoint"] == "chat"
    assert (mine["prompt_tokens"], mine["completion_tokens"]) == (first.usage.prompt_tokens, first.usage.completion_tokens)


def test_a_named_tool_choice_calls_that_tool(platform: Platform, key: tuple[str, str]):
    _, secret = key
    r = platform.client(secret).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Time?"}], tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=50,
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and json.loads(call.function.arguments) == {}
    # A forced call ends with `stop`, as OpenAI's API and vLLM's end it.
    assert r.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as e:
        platform.client(secret).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}}, max_tokens=50,
        )
    assert "nope" in str(e.value)


def test_streamed_tool_call_deltas_add_up_to_the_call(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    before = platform.settled_usage_total(subscription_id=sub)
    stream = platform.client(secret).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Lima, please"}], tools=[WEATHER],
        stream=True, stream_options={"include_usage": True}, max_tokens=200,
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) > 3, "the arguments come in fragments"
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert all(d.id is None and d.function.name is None for d in deltas[1:]), "only the first names the call"
    check_weather_args("".join(d.function.arguments or "" for d in deltas))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == len(deltas)
    records = platform.wait_for_usage(before + 1, subscription_id=sub)
    assert records[0]["streamed"] and records[0]["completion_tokens"] == usage.completion_tokens


def test_the_sdk_stream_helper_puts_the_call_together(platform: Platform, key: tuple[str, str]):
    _, secret = key
    with platform.client(secret).chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Rome"}], tools=[WEATHER], max_tokens=200,
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    check_weather_args(call.function.arguments)


class Guest(BaseModel):
    name: str
    age: int = Field(ge=18, le=99)


class Party(BaseModel):
    title: str
    day: date
    kind: Literal["birthday", "wedding"]
    guests: list[Guest]
    note: Optional[str]


def test_structured_output_parses_into_the_pydantic_model(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    client = platform.client(secret)
    parsed = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Plan a party"}], response_format=Party, max_tokens=500,
    )
    party = parsed.choices[0].message.parsed
    assert isinstance(party, Party), parsed.choices[0].message.content
    assert party.kind in ("birthday", "wedding") and all(18 <= g.age <= 99 for g in party.guests)
    assert parsed.usage.completion_tokens > 5

    # json_object: some JSON object; and a schema cut short by max_tokens ends with `length`.
    obj = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "JSON"}], response_format={"type": "json_object"},
        max_tokens=100)
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    cut = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Plan a party"}], max_tokens=3,
        response_format={"type": "json_schema", "json_schema": {"name": "Party", "schema": Party.model_json_schema()}})
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema"}, max_tokens=10)


# Anthropic's Messages API.

def claude(platform: Platform, key: str, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=platform.url, api_key=key, max_retries=0, **kwargs)


def test_anthropic_messages_with_the_anthropic_sdk(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    raw = claude(platform, secret).messages.with_raw_response.create(
        model=MODEL, max_tokens=20, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}])
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == MODEL, "the engine's served name is put back to the catalog's"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 0 and 0 < msg.usage.output_tokens <= 20
    mine = record_of(platform, sub, raw.headers["x-request-id"])
    assert mine["endpoint"] == "messages", mine
    assert (mine["prompt_tokens"], mine["completion_tokens"]) == (msg.usage.input_tokens, msg.usage.output_tokens)
    # `Authorization: Bearer` works as well as `x-api-key`.
    bearer = claude(platform, None, auth_token=secret).messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert bearer.usage.output_tokens <= 5


def test_anthropic_streams_are_passed_through_and_metered(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    before = platform.settled_usage_total(subscription_id=sub)
    with claude(platform, secret).messages.stream(
        model=MODEL, max_tokens=40, messages=[{"role": "user", "content": "Tell me a story"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and text == final.content[0].text
    assert final.usage.input_tokens > 0 and 0 < final.usage.output_tokens <= 40
    records = platform.wait_for_usage(before + 1, subscription_id=sub)
    newest = records[0]
    assert newest["streamed"] and newest["endpoint"] == "messages" and newest["status"] == 200
    assert (newest["prompt_tokens"], newest["completion_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)


def test_anthropic_tool_use(platform: Platform, key: tuple[str, str]):
    _, secret = key
    tool = {"name": "get_weather", "description": "The weather", "input_schema": WEATHER["function"]["parameters"]}
    msg = claude(platform, secret).messages.create(
        model=MODEL, max_tokens=200, tools=[tool], messages=[{"role": "user", "content": "Weather in Bergen?"}])
    assert msg.stop_reason == "tool_use"
    use = msg.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.id.startswith("toolu_")
    check_weather_args(json.dumps(use.input))
    with claude(platform, secret).messages.stream(
        model=MODEL, max_tokens=200, tools=[tool], tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.stop_reason == "tool_use"
    check_weather_args(json.dumps(final.content[0].input))


def test_anthropic_errors_have_anthropics_shape(platform: Platform, key: tuple[str, str]):
    _, secret = key
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude(platform, "tg-notarealkey00000000000000000000000000000000000").messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as e:
        claude(platform, secret).messages.create(model="bge-m3", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(f"{platform.url}/v1/messages", content=b"{not json",
                   headers={"x-api-key": secret, "content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert r.headers["x-request-id"]


# OpenAI's Responses API.

def test_responses_with_the_openai_sdk(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    client = platform.client(secret)
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="Say hello", instructions="Be brief.", max_output_tokens=16)
    r = raw.parse()
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.model == MODEL
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 16
    mine = record_of(platform, sub, raw.headers["x-request-id"])
    assert mine["endpoint"] == "responses"
    assert (mine["prompt_tokens"], mine["completion_tokens"]) == (r.usage.input_tokens, r.usage.output_tokens)


def test_responses_streams_and_structured_output(platform: Platform, key: tuple[str, str]):
    sub, secret = key
    client = platform.client(secret)
    before = platform.settled_usage_total(subscription_id=sub)
    events = list(client.responses.create(model=MODEL, input="Tell me a story", max_output_tokens=30, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text
    records = platform.wait_for_usage(before + 1, subscription_id=sub)
    assert records[0]["streamed"] and records[0]["endpoint"] == "responses"
    assert (records[0]["prompt_tokens"], records[0]["completion_tokens"]) == (
        final.usage.input_tokens, final.usage.output_tokens)

    parsed = client.responses.parse(model=MODEL, input="Plan a party", text_format=Party, max_output_tokens=500)
    assert isinstance(parsed.output_parsed, Party)

    # A function call, then its output back, then prose.
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    first = client.responses.create(model=MODEL, input="Weather in Oslo?", tools=[tool], tool_choice="required",
                                    max_output_tokens=200)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    check_weather_args(call.arguments)
    second = client.responses.create(model=MODEL, tools=[tool], max_output_tokens=20, input=[
        {"role": "user", "content": "Weather in Oslo?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "4 degrees"}])
    assert second.output[0].type == "message" and second.output_text


# One key, several models.

def test_one_key_for_several_models(platform: Platform, key: tuple[str, str]):
    llama_sub, _ = key
    team = platform.call("GET", f"/subscriptions/{llama_sub}")["team_id"]
    plan = platform.call("POST", "/plans", json={"name": "Multi", "requests_per_minute": 1000})["id"]
    coder = platform.call("POST", "/subscriptions", json={
        "team_id": team, "model_id": "qwen2.5-coder-7b-instruct", "plan_id": plan})["id"]
    both = platform.call("POST", f"/subscriptions/{llama_sub}/keys",
                         json={"name": "two models", "also_subscription_ids": [coder]})
    assert [c["model_id"] for c in both["key"]["also"]] == ["qwen2.5-coder-7b-instruct"]
    client = platform.client(both["secret"])
    assert sorted(m.id for m in client.models.list().data) == [MODEL, "qwen2.5-coder-7b-instruct"]
    assert client.models.retrieve("qwen2.5-coder-7b-instruct").id == "qwen2.5-coder-7b-instruct"

    # Each model's requests run under its own subscription: its limits (the coder plan's headers) and its usage.
    raw = client.chat.completions.with_raw_response.create(
        model="qwen2.5-coder-7b-instruct", messages=[{"role": "user", "content": "Code"}], max_tokens=5)
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    llama = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert llama.headers["x-ratelimit-limit-requests"] == "10000"
    records = platform.wait_for_usage(1, subscription_id=coder)
    assert [r["request_id"] for r in records] == [raw.headers["x-request-id"]]
    assert records[0]["key_id"] == both["key"]["id"] and records[0]["model"] == "qwen2.5-coder-7b-instruct"
    # A model the key does not cover answers as if it did not exist.
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="granite-3.1-2b-base", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=5)

    # Another team's subscription cannot be added; a team-wide key covers a model subscribed after it was made.
    other_team = platform.call("POST", "/teams", json={"name": "Elsewhere"})["id"]
    foreign = platform.call("POST", "/subscriptions", json={
        "team_id": other_team, "model_id": "granite-3.1-2b-base", "plan_id": plan})["id"]
    r = platform.api.post(f"/subscriptions/{llama_sub}/keys", json={"name": "x", "also_subscription_ids": [foreign]})
    assert r.status_code == 400 and "not an active subscription of the team" in r.text, r.text
    wide = platform.call("POST", f"/subscriptions/{llama_sub}/keys", json={"name": "team", "team_wide": True})
    platform.call("POST", "/subscriptions", json={"team_id": team, "model_id": "granite-3.1-2b-base", "plan_id": plan})
    wide_client = platform.client(wide["secret"])
    deadline = time.monotonic() + 10
    while "granite-3.1-2b-base" not in [m.id for m in wide_client.models.list().data]:
        assert time.monotonic() < deadline, "the team-wide key never covered the new subscription"
        time.sleep(0.1)
    c = wide_client.completions.create(model="granite-3.1-2b-base", prompt="Once", max_tokens=3)
    assert c.usage.completion_tokens <= 3
