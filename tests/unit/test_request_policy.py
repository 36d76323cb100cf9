"""The request policy (ccproxy_litellm.policy): what a client with a valid
token may send. A first-turn /v1/messages body captured from the pinned Claude
Code 2.1.197 (tests/fixtures/claude-code, default settings) must pass."""
import copy
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "roles" / "litellm" / "files"))
from ccproxy_litellm import policy  # noqa: E402

CLAUDE_CODE = json.loads((ROOT / "tests/fixtures/claude-code/messages-request.json").read_text())
SERVED = {"claude-3-5-sonnet", "qwen-fast"}


def served(model):
    return model in SERVED or model.startswith("claude-")


def chat(**extra):
    return dict({"model": "qwen-fast", "messages": [{"role": "user", "content": "hi"}]}, **extra)


def test_claude_codes_own_request_passes_with_its_extras_stripped():
    body = copy.deepcopy(CLAUDE_CODE)
    stripped = policy.check(body, True, served)
    assert set(stripped) == {"context_management", "output_config"}
    for kept in ("model", "messages", "system", "tools", "thinking", "max_tokens", "stream"):
        assert body[kept] == CLAUDE_CODE[kept]
    assert body["metadata"] == {"user_id": CLAUDE_CODE["metadata"]["user_id"]}


@pytest.mark.parametrize("model", ["qwen-fast,qwen-fast", "qwen-fast, gpt-4", "gpt-5", "", None, ["qwen-fast"]])
def test_models_not_served_are_refused(model):
    with pytest.raises(policy.Refused) as caught:
        policy.check(chat(model=model), False, served)
    assert caught.value.field == "model"


@pytest.mark.parametrize("messages", ["hi", [["user", "hi"]], {"role": "user"}, None])
def test_messages_must_be_a_list_of_objects(messages):
    with pytest.raises(policy.Refused) as caught:
        policy.check(chat(messages=messages), True, served)
    assert caught.value.field == "messages"


@pytest.mark.parametrize("field,value", [
    ("num_ctx", 1000000), ("num_gpu", 0), ("keep_alive", 0), ("think", True), ("options", {"num_ctx": 9}),
    ("format", "json"), ("truncate", False), ("shift", False),
    ("num_retries", 50), ("timeout", 1), ("request_timeout", 1), ("model_group_retry_policy", {}),
    ("router_settings_override", {}), ("fastest_response", True), ("user_config", {}), ("cache", {"no-cache": 1}),
    ("cache_key", "k"), ("ttl", 9), ("namespace", "n"), ("api_base", "http://169.254.169.254"),
    ("mock_response", "pwned"), ("tags", ["x"]),
])
@pytest.mark.parametrize("anthropic", [False, True], ids=["openai", "anthropic"])
def test_backend_knobs_and_litellm_controls_are_refused_by_name(field, value, anthropic):
    with pytest.raises(policy.Refused) as caught:
        policy.check(chat(**{field: value}), anthropic, served)
    assert caught.value.field == field and field in str(caught.value)


def test_fallbacks_are_refused_on_openai_and_stripped_on_anthropic():
    with pytest.raises(policy.Refused):
        policy.check(chat(fallbacks=["gpt-4"]), False, served)
    body = chat(fallbacks=["gpt-4"])
    assert policy.check(body, True, served) == ["fallbacks"] and "fallbacks" not in body


def test_unknown_fields_are_stripped_and_litellms_own_left_alone():
    body = chat(speed="fast", diagnostics={}, litellm_call_id="x", proxy_server_request={}, metadata={"a": 1})
    assert sorted(policy.check(body, False, served)) == ["diagnostics", "speed"]
    assert body["litellm_call_id"] == "x" and body["metadata"] == {"a": 1}  # LiteLLM's, on the OpenAI route


def test_anthropic_metadata_keeps_only_user_id():
    body = chat(metadata={"user_id": "u", "tags": ["route-me"], "redis_namespace": "x"})
    policy.check(body, True, served)
    assert body["metadata"] == {"user_id": "u"}


def test_openai_api_fields_pass_untouched():
    body = chat(max_tokens=5, temperature=0.2, tools=[], tool_choice="auto", stream=True, reasoning_effort="low",
                response_format={"type": "json_object"}, stop=["x"], seed=1, user="me")
    before = dict(body)
    assert policy.check(body, False, served) == [] and body == before


def test_controls_litellm_took_out_of_the_body_are_refused_from_its_snapshot():
    body = chat(proxy_server_request={"body": chat(timeout=0.001)})
    with pytest.raises(policy.Refused) as caught:
        policy.check(body, False, served)
    assert caught.value.field == "timeout"


def test_the_session_id_litellm_sets_from_claude_codes_header_is_kept():
    body = chat(litellm_session_id="from-the-header", litellm_trace_id="t")
    assert policy.check(body, True, served) == [] and body["litellm_session_id"] == "from-the-header"


def test_what_litellm_adds_from_claude_codes_headers_is_not_the_clients():
    """drop_params and provider_specific_header come from anthropic-beta; the
    snapshot of the client's body does not have them."""
    body = copy.deepcopy(CLAUDE_CODE)
    snapshot = copy.deepcopy(CLAUDE_CODE)
    body.update(drop_params=True, provider_specific_header={"anthropic-beta": "x"}, proxy_server_request={"body": snapshot})
    policy.check(body, True, served)
    assert body["drop_params"] is True and "provider_specific_header" in body


def test_a_client_that_sends_drop_params_itself_is_refused():
    body = chat(drop_params=False)
    body["proxy_server_request"] = {"body": dict(body)}
    with pytest.raises(policy.Refused):
        policy.check(body, True, served)


def test_the_response_cache_opt_in_passes_and_other_cache_controls_do_not():
    for anthropic in (False, True):
        body = chat(cache={"use-cache": True})
        assert policy.check(body, anthropic, served) == [] and body["cache"] == {"use-cache": True}
        for bad in ({"use-cache": True, "ttl": 9}, {"no-cache": True}, {"use-cache": "yes"}, "on"):
            with pytest.raises(policy.Refused):
                policy.check(chat(cache=bad), anthropic, served)
