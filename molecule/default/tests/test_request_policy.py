"""The request policy through the edge (ccproxy_litellm.policy): a client with
a valid token cannot fan one request out to many completions, nor set
Ollama's options or LiteLLM's controls for everyone. The Ollama test double's
record shows nothing of a refused request reached Ollama."""
import json
import uuid

import pytest

RECORD = "/var/lib/ollama/test-double-requests.jsonl"


def reached_ollama(host, marker):
    out = host.check_output(f"grep -F {marker} {RECORD} || true")
    return [json.loads(line)["body"] for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("field,value", [
    ("model", "qwen-fast,qwen-fast,gpt-4,qwen-fast,qwen-fast"),  # one completion per name in LiteLLM
    ("num_ctx", 1000000), ("num_gpu", 0), ("keep_alive", 0),
    ("num_retries", 50), ("timeout", 0.001), ("router_settings_override", {"num_retries": 50}),
    # (api_base: LiteLLM refuses it itself with 401; mock_response: it strips it, below)
])
def test_refused_with_the_field_named_and_nothing_reaches_ollama(http, gateway, host, route, field, value):
    marker = f"policy-{uuid.uuid4().hex[:12]}"
    body = {"model": "qwen-fast", "max_tokens": 16, "messages": [{"role": "user", "content": marker}], field: value}
    r = http.post(route, json=body, headers={"x-api-key": gateway.token("demo"), "anthropic-version": "2023-06-01"})
    assert r.status_code == 400, r.text
    assert field in r.text and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert reached_ollama(host, marker) == []


def test_claude_code_fields_are_stripped_not_refused(http, gateway, host):
    marker = f"policy-{uuid.uuid4().hex[:12]}"
    r = http.post("/v1/messages", headers={"x-api-key": gateway.token("demo"), "anthropic-version": "2023-06-01"},
                  json={"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": marker}],
                        "context_management": {"edits": []}, "output_config": {"effort": "high"},
                        "speed": "fast", "diagnostics": {}, "fallbacks": ["x"],
                        "metadata": {"user_id": "u", "tags": ["route-me"]}})
    assert r.status_code == 200, r.text
    (body,) = reached_ollama(host, marker)
    assert set(body) <= {"model", "messages", "options", "stream", "tools", "think", "format", "keep_alive"}
    assert "keep_alive" not in body and set(body["options"]) == {"num_predict"}


def test_a_mock_response_has_no_effect(http, gateway):
    """LiteLLM 1.108.7 strips mock_response from a client's body itself: the model answers."""
    r = http.post("/v1/chat/completions", headers={"Authorization": "Bearer " + gateway.token("demo")},
                  json={"model": "qwen-fast", "messages": [{"role": "user", "content": "real?"}],
                        "mock_response": "not from the model"})
    assert r.status_code == 200 and "ollama-test-double" in r.json()["choices"][0]["message"]["content"], r.text
