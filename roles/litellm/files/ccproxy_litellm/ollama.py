"""LiteLLM's Ollama chat provider, with the gateway's request shaping.

LiteLLM 1.108.7 builds each /api/chat body in ``OllamaChatConfig.transform_request``
and has no hook after it: its proxy hooks see the client's body (Anthropic or
OpenAI) before translation. ``install()`` replaces ``litellm.OllamaChatConfig``,
which LiteLLM instantiates per request (utils.ProviderConfigManager), with this
subclass; everything else stays LiteLLM's own.
"""
import litellm
from litellm.llms.ollama.chat.transformation import OllamaChatConfig

from . import capabilities, messages, thinking


class CcproxyOllamaChatConfig(OllamaChatConfig):
    """OllamaChatConfig whose request bodies the pinned Ollama reads as meant."""

    @property
    def uses_async_transform_request(self):
        return True  # the capability lookup is async on the async path

    def _shape(self, data, openai_messages, caps):
        messages.name_tool_results(data.get("messages") or [], openai_messages)
        thinking.shape_think(data, caps)
        return data

    def transform_request(self, model, messages, optional_params, litellm_params, headers):
        data = super().transform_request(model, messages, optional_params, litellm_params, headers)
        caps = capabilities.get_sync(litellm_params.get("api_base"), model)
        return self._shape(data, messages, caps)

    async def async_transform_request(self, model, messages, optional_params, litellm_params, headers):
        data = super().transform_request(model, messages, optional_params, litellm_params, headers)
        caps = await capabilities.get(litellm_params.get("api_base"), model)
        return self._shape(data, messages, caps)


def install():
    """Make LiteLLM use CcproxyOllamaChatConfig for ollama_chat/ models (idempotent)."""
    litellm.OllamaChatConfig = CcproxyOllamaChatConfig
