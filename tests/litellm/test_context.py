"""A prompt that does not fit the served context is refused with the error
clients understand, and max_tokens is clamped to what is left
(ccproxy_litellm.context, with LiteLLM's own token counter)."""
import json

import pytest

from ccproxy_litellm import context, proxy

WORDS = " ".join(f"word{i}" for i in range(1000))


def test_estimate_counts_system_messages_tool_calls_and_tools():
    anthropic = {
        "system": [{"type": "text", "text": "You are an agent."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "read it"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read",
                                                "input": {"file_path": "/etc/hostname"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": WORDS}]},
        ],
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
    }
    text, messages = context.prompt_text(anthropic)
    for part in ("You are an agent.", "read it", "/etc/hostname", "word999", '"input_schema"'):
        assert part in text
    assert messages == 4
    assert context.estimate(anthropic, proxy.count) > proxy.count(WORDS)


def test_openai_tool_calls_are_counted():
    body = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "Write", "arguments": json.dumps({"content": WORDS})}}]}]}
    assert "word999" in context.prompt_text(body)[0]


def test_too_long_is_refused_with_the_anthropic_text():
    body = {"max_tokens": 32000, "messages": [{"role": "user", "content": WORDS}]}
    with pytest.raises(context.TooLong) as caught:
        context.fit(body, 1000, 100, proxy.count)
    assert str(caught.value) == f"prompt is too long: {caught.value.tokens} tokens > 900 maximum"
    assert caught.value.tokens > 1000


def test_max_tokens_is_clamped_to_what_is_left():
    body = {"max_tokens": 32000, "messages": [{"role": "user", "content": "hello"}]}
    tokens = context.fit(body, 8000, 4096, proxy.count)
    assert body["max_tokens"] == 8000 - tokens


def test_a_small_max_tokens_is_the_reserve():
    """A prompt that leaves 50 tokens fits a request for 20 of them."""
    body = {"max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
    tokens = context.estimate(body, proxy.count)
    context.fit(body, tokens + 50, 4096, proxy.count)
    assert body["max_tokens"] == 20
    with pytest.raises(context.TooLong):
        context.fit(dict(body, max_tokens=100), tokens + 50, 4096, proxy.count)


def test_the_error_body_has_openais_code():
    error = proxy.ContextTooLong(context.TooLong(40000, 28672)).to_dict()
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "prompt is too long: 40000 tokens > 28672 maximum"
