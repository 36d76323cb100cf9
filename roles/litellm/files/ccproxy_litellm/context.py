"""Prompts longer than the served context get the error clients understand.

Ollama 0.12.6 never says a prompt is too long: it drops the oldest messages
until the prompt fits (server/prompt.go), cuts the start of a prompt that
still does not fit, and shifts the context while it generates. An agent then
works on a conversation it no longer has, and nobody is told. Claude Code
and the SDKs react to an error they know:

- Anthropic: 400 invalid_request_error "prompt is too long: N tokens > M maximum"
  (Claude Code then compacts, or asks the user to run /compact);
- OpenAI: 400 with code "context_length_exceeded".

So a request whose estimated prompt, plus the output it reserves, does not fit
the served context is refused before Ollama is called, and `max_tokens` is
clamped to what is left (Claude Code asks for 32K and more, which Ollama
would otherwise meet by shifting the context).

The estimate (`estimate`) counts the text Ollama's template renders, the
system prompt, every message's text, tool calls and tool results, and the
tool definitions as JSON, with a counter passed in (LiteLLM's tiktoken
cl100k_base in the proxy; Qwen's own tokenizer cannot be had here), plus 4
tokens a message for the template's role markers. It is an estimate:
docs/agents.md says how far off it can be.
"""
import json

PER_MESSAGE = 4  # <|im_start|>role\n ... <|im_end|>\n


def _text(content):
    """The text of a message's content: a string, or Anthropic/OpenAI blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict):
                parts.append(str(block))
            elif block.get("type") in ("text", "input_text", "output_text"):
                parts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                parts.append(str(block.get("name") or "") + json.dumps(block.get("input") or {}))
            elif block.get("type") == "tool_result":
                parts.append(_text(block.get("content")))
            elif block.get("type") in ("thinking", "redacted_thinking"):
                parts.append(str(block.get("thinking") or ""))
            # images: Ollama gives them their own tokens; not counted here
        return "\n".join(parts)
    return json.dumps(content)


def prompt_text(body):
    """(text, messages): what the model reads of a chat request, Anthropic or OpenAI."""
    parts = [_text(body.get("system"))]
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    for message in messages:
        if not isinstance(message, dict):
            continue
        parts.append(_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts.append(str(function.get("name") or "") + str(function.get("arguments") or ""))
    tools = body.get("tools")
    if tools:
        parts.append(json.dumps(tools))
    return "\n".join(p for p in parts if p), len(messages) + (1 if body.get("system") else 0)


def estimate(body, count):
    """Estimated prompt tokens of `body`; `count(text) -> int` is the tokenizer."""
    text, messages = prompt_text(body)
    return count(text) + PER_MESSAGE * messages


class TooLong(Exception):
    def __init__(self, tokens, maximum):
        super().__init__(f"prompt is too long: {tokens} tokens > {maximum} maximum")
        self.tokens, self.maximum = tokens, maximum


def fit(body, context, reserve, count):
    """Refuse (TooLong) or clamp `body` in place to the served `context`.

    `reserve` is the output a request keeps room for at least: its own
    max_tokens when smaller. Returns the estimate.
    """
    tokens = estimate(body, count)
    keys = [k for k in ("max_tokens", "max_completion_tokens") if isinstance(body.get(k), int)]
    asked = min((body[k] for k in keys), default=None)
    needed = min(reserve, asked) if asked else reserve
    if tokens + needed > context:
        raise TooLong(tokens, context - needed)
    for key in keys:
        body[key] = min(body[key], context - tokens)
    return tokens
