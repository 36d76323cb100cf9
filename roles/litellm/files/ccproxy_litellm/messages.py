"""Ollama chat messages as the pinned Ollama reads them.

LiteLLM 1.108.7 sends a tool result as ``{"role": "tool", "tool_call_id": ...}``.
Ollama 0.12.6 has no ``tool_call_id``: it knows a tool result by ``tool_name``
(api/types.go ``Message.ToolName``), which LiteLLM never sets. 0.12.10 and
later read ``tool_call_id`` too. Both go to Ollama.
"""


def tool_call_names(messages):
    """{tool call id: function name} over the OpenAI-format `messages`."""
    names = {}
    for message in messages:
        if not isinstance(message, dict):
            message = getattr(message, "model_dump", lambda **_: {})(exclude_none=True)
        for call in message.get("tool_calls") or ():
            if not isinstance(call, dict):
                call = getattr(call, "model_dump", lambda **_: {})(exclude_none=True)
            function = call.get("function") or {}
            if call.get("id") and function.get("name"):
                names[call["id"]] = function["name"]
    return names


def name_tool_results(ollama_messages, openai_messages):
    """Set ``tool_name`` on every tool result in `ollama_messages` whose call
    an earlier assistant message in `openai_messages` made. Returns the count."""
    names = tool_call_names(openai_messages)
    named = 0
    for message in ollama_messages:
        if message.get("role") != "tool" or message.get("tool_name"):
            continue
        name = names.get(message.get("tool_call_id"))
        if name:
            message["tool_name"] = name
            named += 1
    return named
