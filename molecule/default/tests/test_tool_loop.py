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


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_tool_loop(oai, host, stream):
    marker = f"oai-{uuid.uuid4().hex[:12]}"
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    messages = [{"role": "user", "content": prompt(marker)}]
    extra = {"reasoning_effort": "high"}  # ignored for a model that cannot think, never a 400
    if stream:
        calls, finish = {}, None
        for chunk in oai.chat.completions.create(model=MODEL, messages=messages, tools=tools, stream=True, **extra):
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
        response = oai.chat.completions.create(model=MODEL, messages=messages, tools=tools, **extra)
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
    answer = oai.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    text = answer.choices[0].message.content
    assert "done after 1 tool calls" in text and "(get_weather): sunny, 21 C" in text, text
    check_record(host, marker)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_anthropic_tool_loop(claude, host, stream):
    marker = f"ant-{uuid.uuid4().hex[:12]}"
    tools = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}]
    messages = [{"role": "user", "content": prompt(marker)}]
    thinking = {"type": "enabled", "budget_tokens": 1024}  # as Claude Code asks
    if stream:
        with claude.messages.stream(model=MODEL, max_tokens=2048, messages=messages, tools=tools,
                                    thinking=thinking) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(model=MODEL, max_tokens=2048, messages=messages, tools=tools,
                                         thinking=thinking)
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
    ]
    answer = claude.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=tools)
    text = "".join(b.text for b in answer.content if b.type == "text")
    assert answer.stop_reason == "end_turn"
    assert "done after 1 tool calls" in text and "(get_weather): sunny, 21 C" in text, text
    check_record(host, marker)
