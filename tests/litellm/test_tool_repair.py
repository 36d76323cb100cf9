"""Tool calls qwen2.5-coder writes as text come back structured, streamed and
not, through the real LiteLLM (ccproxy_litellm.ollama), from the Ollama test
double answering in each of qwen2.5-coder's text shapes; an ordinary answer
that contains JSON stays text, and so does everything when the deployment
does not repair."""
import asyncio
import json

import litellm
import pytest

from ccproxy_litellm import ollama

from conftest import Double

ollama.install()

MODEL = "qwen2.5-coder:7b-instruct"
TOOLS = [{"type": "function", "function": {
    "name": "Read", "description": "Read a file",
    "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}]
ASK = 'read it\nCCPROXY-TOOL Read {"file_path": "/etc/hostname"}'


@pytest.fixture(scope="module")
def texting(tmp_path_factory):
    d = Double(tmp_path_factory.mktemp("double"), OLLAMA_TEST_DOUBLE_TEXT_TOOL_CALLS="qwen2.5-coder*=cycle")
    yield d
    d.stop()


async def ask(double, content, stream, repair=True):
    kwargs = dict(model=f"ollama_chat/{MODEL}", api_base=double.url, tools=TOOLS, stream=stream,
                  messages=[{"role": "user", "content": content}],
                  model_info={"ccproxy_tool_repair": repair})
    response = await litellm.acompletion(**kwargs)
    if not stream:
        choice = response.choices[0]
        calls = [{"name": c.function.name, "arguments": json.loads(c.function.arguments)}
                 for c in choice.message.tool_calls or []]
        return choice.message.content or "", calls, choice.finish_reason
    text, calls, finish = "", {}, None
    async for chunk in response:
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
    return text, [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in calls.values()], finish


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_every_text_shape_becomes_a_tool_call(texting, stream):
    """The double cycles json, fenced, tags, prose-then-call: four asks, four calls."""
    for shape in range(4):
        text, calls, finish = asyncio.run(ask(texting, ASK, stream))
        assert calls == [{"name": "Read", "arguments": {"file_path": "/etc/hostname"}}], (shape, text)
        assert finish == "tool_calls"
        assert "{" not in text, (shape, text)  # the call's JSON is not also shown as text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_in_an_ordinary_answer_stays_text(texting, stream):
    text, calls, finish = asyncio.run(ask(texting, ASK + "\nCCPROXY-JSON-TEXT", stream))
    assert calls == [] and finish == "stop"
    assert '{"name": "not_a_tool", "arguments": {}}' in text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_no_repair_where_the_model_map_says_no(texting, stream):
    text, calls, _ = asyncio.run(ask(texting, ASK, stream, repair=False))
    assert calls == [] and '"name": "Read"' in text


def test_a_call_held_as_text_is_kept_when_ollama_parses_the_next_one():
    """Text that was held as a possible call is never lost: when a later line
    carries Ollama's own tool_calls, the held call goes first."""
    it = ollama.RepairingIterator(iter(()), True, False, {"Read": None, "Write": None})
    base = {"model": MODEL, "created_at": "2026-12-08T00:00:00Z"}
    first = it.chunk_parser(dict(base, done=False, message={
        "role": "assistant", "content": '{"name": "Read", "arguments": {"file_path": "/a"}}'}))
    assert not first.choices[0].delta.content  # held
    last = it.chunk_parser(dict(base, done=True, done_reason="stop", prompt_eval_count=1, eval_count=1, message={
        "role": "assistant", "content": "", "tool_calls": [{"function": {"name": "Write", "arguments": {"x": 1}}}]}))
    names = [c.function.name for c in last.choices[0].delta.tool_calls]
    assert names == ["Read", "Write"] and last.choices[0].finish_reason == "tool_calls"
