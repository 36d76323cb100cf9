"""What reaches Ollama through the real LiteLLM with ccproxy_litellm installed:
tool results carry tool_name (Ollama 0.12.6 reads nothing else), and `think`
only goes to a model whose /api/show lists the thinking capability."""
import asyncio

import litellm
import pytest

from ccproxy_litellm import capabilities, messages, ollama, thinking

ollama.install()

QWEN = "qwen2.5-coder:7b-instruct"
THINKER = "qwen3:8b"
TOOLS = [{"type": "function", "function": {
    "name": "Read", "description": "Read a file",
    "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}]
LOOP = [
    {"role": "user", "content": "read /etc/hostname"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_01", "type": "function", "function": {"name": "Read", "arguments": '{"file_path": "/etc/hostname"}'}}]},
    {"role": "tool", "tool_call_id": "toolu_01", "content": "gateway"},
]


@pytest.fixture(autouse=True)
def fresh_cache():
    capabilities.clear()
    yield
    capabilities.clear()


def complete(double, model, **kwargs):
    return asyncio.run(litellm.acompletion(
        model=f"ollama_chat/{model}", api_base=double.url, max_tokens=20, **kwargs))


# -- the rules on their own

def test_tool_results_get_the_calls_name():
    ollama_messages = [{"role": "user"}, {"role": "assistant"}, {"role": "tool", "tool_call_id": "toolu_01"},
                       {"role": "tool", "tool_call_id": "unknown"}]
    assert messages.name_tool_results(ollama_messages, LOOP) == 1
    assert ollama_messages[2]["tool_name"] == "Read"
    assert "tool_name" not in ollama_messages[3]


@pytest.mark.parametrize("caps,asked,sent", [
    (None, True, None), (["completion", "tools"], True, None), (["completion", "tools"], False, None),
    (["completion", "thinking"], True, True), (["completion", "thinking"], None, False),
    (["completion", "thinking"], False, False), (["completion", "thinking"], "high", "high"),
])
def test_think_follows_the_capability(caps, asked, sent):
    data = {} if asked is None else {"think": asked}
    assert thinking.shape_think(data, caps) == sent
    assert data.get("think", None) == sent and (sent is not None or "think" not in data)


# -- through LiteLLM, to the test double

def test_tool_result_reaches_ollama_with_its_name(double):
    complete(double, QWEN, messages=LOOP, tools=TOOLS)
    (body,) = double.requests()
    tool = body["messages"][-1]
    assert tool["role"] == "tool"
    assert tool["tool_name"] == "Read"
    assert tool["tool_call_id"] == "toolu_01"  # for Ollama 0.12.10 and later


def test_thinking_is_not_sent_to_a_model_without_the_capability(double):
    response = complete(double, QWEN, messages=[{"role": "user", "content": "hi"}], reasoning_effort="high")
    assert response.choices[0].message.content
    (body,) = double.requests()
    assert "think" not in body


@pytest.mark.parametrize("effort,think", [("high", True), (None, False), ("none", False)])
def test_thinking_model_thinks_only_when_asked(double, effort, think):
    extra = {"reasoning_effort": effort} if effort else {}
    response = complete(double, THINKER, messages=[{"role": "user", "content": "hi"}], **extra)
    (body,) = double.requests()
    assert body["think"] is think
    assert bool(getattr(response.choices[0].message, "reasoning_content", None)) is think


def test_capabilities_come_from_api_show_once(double):
    for _ in range(3):
        complete(double, QWEN, messages=[{"role": "user", "content": "hi"}])
    assert [b.get("model") for b in double.requests("/api/show")].count(QWEN) == 1


def test_unreachable_ollama_means_no_think():
    assert asyncio.run(capabilities.get("http://127.0.0.1:9", QWEN)) is None
    data = {"think": True}
    thinking.shape_think(data, None)
    assert "think" not in data
