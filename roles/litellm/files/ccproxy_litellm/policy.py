"""The request policy: what a client with a valid token may put in a body.

Clients are semi-trusted (docs/security.md): tokens go to many agents and
sometimes to contractors. LiteLLM 1.108.7 honours much more than the OpenAI
and Anthropic APIs in a request body:

- `"model": "a,b,c"` runs one completion per name (route_llm_request.py);
- Ollama options (`num_ctx`, `num_gpu`, `keep_alive`, ...) go to Ollama as
  they are: one client could load a huge context, force the CPU or unload
  the model for everyone;
- its own controls (`num_retries`, `timeout`, `fallbacks`, cache keys,
  `api_base`, `mock_response`, ...) override the gateway's settings.

`check` runs in the proxy's pre-call hook on /v1/chat/completions and
/v1/messages, on the client's body, before LiteLLM routes anything:

- **Rejected** with a 400 that names the field: a `model` that the gateway
  does not serve (a comma list never is), `messages` that is not a list of
  objects, Ollama options and LiteLLM controls (`REJECTED`).
- **Stripped** (and named in the log): any other field the route's API does
  not define (`OPENAI_CHAT`, `ANTHROPIC`). Claude Code sends
  `context_management`, `output_config`, `speed`, `diagnostics` and, on the
  Anthropic route, `fallbacks`: they are stripped, never rejected.
- `metadata` on the Anthropic route is reduced to its `user_id`.

LiteLLM adds keys of its own before the hook runs (`LITELLM_ADDED`); those
are not the client's and are left alone.
"""
import re

# Keys LiteLLM's proxy adds to the body before the pre-call hook, seen in
# 1.108.7 with Claude Code's own requests: litellm_session_id from its
# X-Claude-Code-Session-Id header, drop_params and provider_specific_header
# from its anthropic-beta header.
LITELLM_ADDED = frozenset({"litellm_call_id", "litellm_logging_obj", "proxy_server_request", "secret_fields",
                           "litellm_metadata", "litellm_session_id", "litellm_trace_id", "drop_params",
                           "provider_specific_header"})
# Of those, what its snapshot of the client's body (proxy_server_request.body) has too.
SNAPSHOT_ADDED = frozenset({"litellm_metadata", "litellm_session_id", "litellm_trace_id"})

# What the OpenAI chat completions API defines.
OPENAI_CHAT = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream",
    "stream_options", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "user", "tools", "tool_choice", "parallel_tool_calls", "response_format", "seed", "reasoning_effort",
    "functions", "function_call", "service_tier", "store", "modalities", "prediction", "audio", "verbosity",
    "web_search_options", "safety_identifier", "prompt_cache_key",
})
# What the Anthropic Messages API defines.
# (LiteLLM sets `user` itself from the edge's client header, for its metrics.)
ANTHROPIC = frozenset({
    "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier", "user",
})
# The response cache's one per-request switch (README, "Response caching"):
# {"cache": {"use-cache": true}}; every other cache control is refused.
CACHE_OPT_IN = "use-cache"

_OLLAMA_OPTION = re.compile(
    r"^(num_\w+|keep_alive|think|truncate|shift|options|format|raw|template|context|images|"
    r"mirostat\w*|repeat_\w+|penalize_newline|tfs_z|typical_p|min_p|use_mmap|use_mlock|numa|low_vram|main_gpu|"
    r"vocab_only|f16_kv|logits_all|embedding_only)$")
_LITELLM_CONTROL = frozenset({
    "num_retries", "max_retries", "timeout", "request_timeout", "stream_timeout", "model_group_retry_policy",
    "retry_policy", "router_settings_override", "context_window_fallbacks", "content_policy_fallbacks",
    "fastest_response", "user_config", "cache", "caching", "cache_key", "ttl", "namespace", "no-cache",
    "no-store", "api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "mock_response",
    "mock_tool_calls", "mock_testing_fallbacks", "mock_timeout", "tags", "deployment_id", "model_list",
    "specific_deployment", "disable_fallbacks", "guardrails", "weight", "input_cost_per_token",
    "output_cost_per_token", "max_budget", "budget_duration", "drop_params", "additional_drop_params",
    "allowed_openai_params", "extra_headers", "extra_body", "litellm_params", "headers",
})


class Refused(ValueError):
    """A 400 for the client, naming the field."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def rejected(key, anthropic, value=None):
    """Why a client key is refused, or None."""
    if key == "cache" and isinstance(value, dict) and set(value) == {CACHE_OPT_IN} \
            and isinstance(value[CACHE_OPT_IN], bool):
        return None
    if key in _LITELLM_CONTROL:
        return "a LiteLLM control; the gateway sets these for every client"
    if _OLLAMA_OPTION.match(key):
        return "an Ollama option; the gateway sets these for every client"
    if key == "fallbacks" and not anthropic:
        return "a LiteLLM control; the gateway sets these for every client"
    return None


def check(data, anthropic, served):
    """Refuse (`Refused`) or clean `data` in place. `served(model) -> bool`.

    Returns the names of the stripped fields."""
    model = data.get("model")
    if not isinstance(model, str) or "," in model or not served(model):
        raise Refused("model", f"{model!r} is not a model this gateway serves")
    messages = data.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Refused("messages", "must be a list of message objects")
    allowed = ANTHROPIC if anthropic else OPENAI_CHAT
    # What the client sent: LiteLLM's snapshot of the body (it takes some
    # controls, timeout among them, out of the body before the hook runs, and
    # adds keys of its own to it), else the body itself.
    snapshot = (data.get("proxy_server_request") or {}).get("body")
    sent, added = (snapshot, SNAPSHOT_ADDED) if isinstance(snapshot, dict) else (data, LITELLM_ADDED)
    for key in sent:
        reason = rejected(key, anthropic, sent[key]) if key not in added else None
        if reason:
            raise Refused(key, f"not accepted: {reason}")
    stripped = []
    for key in [k for k in data if k not in LITELLM_ADDED]:
        if key == "metadata" and not anthropic:
            continue  # on the OpenAI route, LiteLLM's own request metadata
        if key not in allowed and not (key == "cache" and rejected(key, anthropic, data[key]) is None):
            data.pop(key)
            stripped.append(key)
    if anthropic and "metadata" in data:
        user = data["metadata"].get("user_id") if isinstance(data["metadata"], dict) else None
        data["metadata"] = {"user_id": user} if isinstance(user, str) else {}
    return stripped
