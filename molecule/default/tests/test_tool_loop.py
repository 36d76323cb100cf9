"""The agent's tool loop through the edge with the real openai and anthropic
SDKs, streamed and not: the model calls a tool, the client sends its result,
the model answers. The Ollama API test double calls the tool a
`CCPROXY-TOOL <name> <json>` line of the prompt names; its request record
(OLLAMA_TEST_DOUBLE_RECORD) shows what reached Ollama: the tool result with
its tool_name (all Ollama 0.12.6 reads), and no `think` for qwen2.5-coder,
which Ollama would answer with 400, even when the client asks for thinking."""
import json
import uuid

import anthropic
import openai
import pytest

RECORD = "/var/lib/ollama/test-double-requests.jsonl"
MODEL = "claude-3-5-sonnet"  # an alias of qwen2.5-coder:7b-instruct
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def oai(gateway):
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.token("demo"), max_retries=0,
                         http_client=openai.DefaultHttpxClient(verify=gateway.ssl_context()))


@pytest.fixture(scope="module")
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.origin, api_key=gateway.token("demo"), max_retries=0,
                               http_client=anthropic.DefaultHttpxClient(verify=gateway.ssl_context()))


def prompt(marker):
    return f"What is the weather in Paris? ({marker})\nCCPROXY-TOOL get_weather {json.dumps({'city': 'Paris'})}"


def reached_ollama(host, marker):
    out = host.check_output(f"grep -F {marker} {RECORD} || true")
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r["body"] for r in records if r["path"] == "/api/chat"]


def check_record(host, marker, turns=2):
    chats = reached_ollama(host, marker)
    assert len(chats) == turns, chats
    assert not [c for c in chats if "think" in c], "think reached a model without the thinking capability"
    tool = [m for m in chats[-1]["messages"] if m["role"] == "tool"]
    assert [m.get("tool_name") for m in tool] == ["get_weather"], tool


# qwen-quality (the 32B) answers tool calls as text in the test double
# (inventory/local): the gateway's repair makes them structured.
MODELS = pytest.mark.parametrize("model", [MODEL, "qwen-quality"], ids=["structured", "text-repaired"])


@MODELS
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_tool_loop(oai, host, stream, model):
    marker = f"oai-{uuid.uuid4().hex[:12]}"
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    messages = [{"role": "user", "content": prompt(marker)}]
    extra = {"reasoning_effort": "high"}  # ignored for a model that cannot think, never a 400
    if stream:
        calls, finish = {}, None
        for chunk in oai.chat.completions.create(model=model, messages=messages, tools=tools, stream=True, **extra):
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        (call,) = calls.values()
    else:
        response = oai.chat.completions.create(model=model, messages=messages, tools=tools, **extra)
        finish = response.choices[0].finish_reason
        (tc,) = response.choices[0].message.tool_calls
        call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    assert finish == "tool_calls"
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"},
    ]
    answer = oai.chat.completions.create(model=model, messages=messages, tools=tools)
    text = answer.choices[0].message.content
    assert "done after 1 tool calls" in text and "(get_weather): sunny, 21 C" in text, text
    check_record(host, marker)


@MODELS
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_anthropic_tool_loop(claude, host, stream, model):
    marker = f"ant-{uuid.uuid4().hex[:12]}"
    tools = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}]
    messages = [{"role": "user", "content": prompt(marker)}]
    thinking = {"type": "enabled", "budget_tokens": 1024}  # as Claude Code asks
    if stream:
        with claude.messages.stream(model=model, max_tokens=2048, messages=messages, tools=tools,
                                    thinking=thinking) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(model=model, max_tokens=2048, messages=messages, tools=tools,
                                         thinking=thinking)
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
    ]
    answer = claude.messages.create(model=model, max_tokens=256, messages=messages, tools=tools)
    text = "".join(b.text for b in answer.content if b.type == "text")
    assert answer.stop_reason == "end_turn"
    assert "done after 1 tool calls" in text and "(get_weather): sunny, 21 C" in text, text
    check_record(host, marker)


LONG = " ".join(f"line {i} of a file the agent read." for i in range(6000))  # about 50K tokens


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_over_long_prompt_is_refused_openai(oai, host, stream):
    """A conversation longer than the served context (32768) is refused before
    Ollama, which would cut it silently, with OpenAI's context_length_exceeded."""
    marker = f"long-{uuid.uuid4().hex[:12]}"
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, stream=stream, messages=[
            {"role": "user", "content": f"{marker} {LONG}"}])
    assert caught.value.code == "context_length_exceeded", caught.value.body
    assert caught.value.message.startswith("Error code: 400") and "prompt is too long" in caught.value.message
    assert not reached_ollama(host, marker)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_over_long_prompt_is_refused_anthropic(claude, host, stream):
    """The same on /v1/messages, in the words Claude Code reacts to."""
    import re

    marker = f"long-{uuid.uuid4().hex[:12]}"
    with pytest.raises(anthropic.BadRequestError) as caught:
        # The SDK streams above about 21K max_tokens; Claude Code asks 32K, streamed.
        kwargs = dict(model=MODEL, max_tokens=32000 if stream else 16000, messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": f"{marker} {LONG}"}])
        if stream:
            with claude.messages.stream(**kwargs) as s:
                s.get_final_message()
        else:
            claude.messages.create(**kwargs)
    error = caught.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: \d+ tokens > \d+ maximum", error["message"]), error
    assert not reached_ollama(host, marker)


def test_max_tokens_is_clamped_to_the_context_left(claude, host):
    """Claude Code asks for 32000 output tokens; Ollama gets what the context leaves."""
    marker = f"clamp-{uuid.uuid4().hex[:12]}"
    with claude.messages.stream(model=MODEL, max_tokens=32000, messages=[{"role": "user", "content": marker}]) as s:
        s.get_final_message()
    (body,) = reached_ollama(host, marker)
    assert 28000 < body["options"]["num_predict"] < 32768
