"""The entry point LiteLLM's proxy loads (config.yaml: litellm_settings.callbacks).

Importing it installs the Ollama request shaping (`ollama`); `handler` is the
proxy callback: its pre-call hook runs on /v1/chat/completions and
/v1/messages (the client's body, before routing), applies the request policy
(`policy`) and refuses a prompt that does not fit the served context
(`context`).
"""
import logging

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import ProxyException

from . import context, ollama, policy

ollama.install()

# The output a request keeps room for when it asks for more (max_tokens):
# the deployments' model_info.ccproxy_output_reserve, else this.
DEFAULT_RESERVE = 4096


class ContextTooLong(ProxyException):
    """400, with the text Anthropic's API uses and OpenAI's error code."""

    def __init__(self, exc):
        super().__init__(message=str(exc), type="invalid_request_error", param="messages", code=400)

    def to_dict(self):
        return dict(super().to_dict(), code="context_length_exceeded")


log = logging.getLogger("ccproxy_litellm")

# LiteLLM's call types for the two chat routes: True for the Anthropic body.
CHAT_CALLS = {"acompletion": False, "completion": False, "anthropic_messages": True}


class PolicyRefusal(ProxyException):
    """400 invalid_request_error naming the field."""

    def __init__(self, exc):
        super().__init__(message=str(exc), type="invalid_request_error", param=exc.field, code=400)


def _deployments(model):
    from litellm.proxy import proxy_server

    router = proxy_server.llm_router
    if router is None or not isinstance(model, str):
        return []
    return router.get_model_list(model_name=model) or router.pattern_router.route(model) or []


def served(model):
    """(context, reserve) of the deployments serving `model`, or None when they do not say."""
    infos = [d.get("model_info") or {} for d in _deployments(model)]
    contexts = [i["max_input_tokens"] for i in infos if isinstance(i.get("max_input_tokens"), int)]
    if not contexts:
        return None
    reserves = [i["ccproxy_output_reserve"] for i in infos if isinstance(i.get("ccproxy_output_reserve"), int)]
    return min(contexts), min(reserves, default=DEFAULT_RESERVE)


def count(text):
    return litellm.token_counter(text=text)


class CcproxyHandler(CustomLogger):
    """ccproxy's proxy callback."""

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        call = getattr(call_type, "value", call_type)
        if call not in CHAT_CALLS:
            return data
        try:
            stripped = policy.check(data, CHAT_CALLS[call], lambda model: bool(_deployments(model)))
        except policy.Refused as exc:
            raise PolicyRefusal(exc) from None
        if stripped:
            log.info("ccproxy request policy: stripped %s", ", ".join(sorted(stripped)))
        limits = served(data.get("model"))
        if limits:
            try:
                context.fit(data, limits[0], limits[1], count)
            except context.TooLong as exc:
                raise ContextTooLong(exc) from None
        return data


handler = CcproxyHandler()
