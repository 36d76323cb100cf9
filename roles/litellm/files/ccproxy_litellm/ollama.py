"""LiteLLM's Ollama chat provider, with the gateway's request and response shaping.

LiteLLM 1.108.7 builds each /api/chat body in ``OllamaChatConfig.transform_request``
and reads Ollama's answer in ``transform_response`` (whole) or its response
iterator (streamed); no hook runs after the body is built or before the
answer is read: its proxy hooks see the client's body (Anthropic or OpenAI)
before translation. ``install()`` replaces ``litellm.OllamaChatConfig``, which
LiteLLM instantiates per request (utils.ProviderConfigManager), with this
subclass; everything else stays LiteLLM's own.

- Requests: tool results get ``tool_name`` (``messages``); ``think`` follows
  the model's capability (``thinking``).
- Answers: a tool call the model wrote as text becomes a structured Ollama
  tool call before LiteLLM reads it (``toolcalls``), where the deployment's
  model_info says ``ccproxy_tool_repair`` (the model map's ``tool_repair``).
  LiteLLM then turns it into OpenAI ``tool_calls`` or Anthropic ``tool_use``
  as it does any call Ollama parsed itself.
"""
import uuid

import httpx
import litellm
from litellm.llms.ollama.chat.transformation import OllamaChatCompletionResponseIterator, OllamaChatConfig

from . import capabilities, messages, thinking, toolcalls


def offered_tools(body, litellm_params):
    """{name: parameters} of the tools an /api/chat body offers, when the
    deployment repairs text tool calls; {} otherwise."""
    info = (litellm_params or {}).get("model_info") or {}
    if not info.get("ccproxy_tool_repair"):
        return {}
    offered = {}
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            offered[function["name"]] = function.get("parameters")
    return offered


def ollama_calls(repair):
    """The calls of a `toolcalls.Repair` as Ollama's message.tool_calls."""
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in repair.calls]


def repair_message(message, offered):
    """Turn a text tool call in Ollama's `message` into tool_calls, in place. True if it did."""
    if not offered or not isinstance(message, dict) or message.get("tool_calls"):
        return False
    repair = toolcalls.parse(message.get("content") or "", offered)
    if repair is None:
        return False
    message["content"] = repair.prose
    message["tool_calls"] = ollama_calls(repair)
    return True


class RepairingIterator(OllamaChatCompletionResponseIterator):
    """LiteLLM's stream reader, with text tool calls held back and repaired.

    Content passes through until a line could start a call; what could be a
    call is held until Ollama's last line, then sent as tool_calls on that
    line (LiteLLM reads calls on any line, and sets finish_reason tool_calls),
    or as the text it was."""

    def __init__(self, streaming_response, sync_stream, json_mode, offered):
        super().__init__(streaming_response=streaming_response, sync_stream=sync_stream, json_mode=json_mode)
        self.gate = toolcalls.StreamGate(offered)
        self.structured = False

    def chunk_parser(self, chunk):
        message = chunk.get("message") if isinstance(chunk, dict) else None
        if isinstance(message, dict) and not self.structured:
            if message.get("tool_calls"):
                self.structured = True  # Ollama parsed a call itself; one held as text goes first
                held, repair = self.gate.finish()
                message["content"] = held + (message.get("content") or "")
                if repair is not None:
                    message["tool_calls"] = ollama_calls(repair) + list(message["tool_calls"])
            else:
                text = self.gate.feed(message.get("content") or "")
                if chunk.get("done") is True:
                    held, repair = self.gate.finish()
                    text += held
                    if repair is not None:
                        message["tool_calls"] = ollama_calls(repair)
                message["content"] = text
        return super().chunk_parser(chunk)


class CcproxyOllamaChatConfig(OllamaChatConfig):
    """OllamaChatConfig whose request bodies the pinned Ollama reads as meant,
    and whose answers carry the tool calls the model wrote as text."""

    _offered = None  # set by transform_request, read by the stream iterator

    @property
    def uses_async_transform_request(self):
        return True  # the capability lookup is async on the async path

    def _shape(self, data, openai_messages, caps, litellm_params):
        messages.name_tool_results(data.get("messages") or [], openai_messages)
        thinking.shape_think(data, caps)
        self._offered = offered_tools(data, litellm_params)
        return data

    def transform_request(self, model, messages, optional_params, litellm_params, headers):
        data = super().transform_request(model, messages, optional_params, litellm_params, headers)
        caps = capabilities.get_sync(litellm_params.get("api_base"), model)
        return self._shape(data, messages, caps, litellm_params)

    async def async_transform_request(self, model, messages, optional_params, litellm_params, headers):
        data = super().transform_request(model, messages, optional_params, litellm_params, headers)
        caps = await capabilities.get(litellm_params.get("api_base"), model)
        return self._shape(data, messages, caps, litellm_params)

    def transform_response(self, model, raw_response, model_response, logging_obj, request_data, messages,
                           optional_params, litellm_params, encoding, api_key=None, json_mode=None):
        offered = offered_tools(request_data, litellm_params)
        if offered:
            try:
                body = raw_response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and repair_message(body.get("message"), offered):
                raw_response = httpx.Response(raw_response.status_code, json=body, request=raw_response.request)
        return super().transform_response(model, raw_response, model_response, logging_obj, request_data, messages,
                                          optional_params, litellm_params, encoding, api_key, json_mode)

    def get_model_response_iterator(self, streaming_response, sync_stream, json_mode=False):
        if not self._offered:
            return super().get_model_response_iterator(streaming_response, sync_stream, json_mode)
        return RepairingIterator(streaming_response, sync_stream, json_mode, self._offered)


def install():
    """Make LiteLLM use CcproxyOllamaChatConfig for ollama_chat/ models (idempotent)."""
    litellm.OllamaChatConfig = CcproxyOllamaChatConfig
