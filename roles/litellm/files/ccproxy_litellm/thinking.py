"""Whether Ollama is asked to think.

LiteLLM 1.108.7 turns Anthropic's ``thinking`` (enabled or adaptive) and
OpenAI's ``reasoning_effort`` into ``"think": true`` on /api/chat, and a
disabled one into ``"think": false``. Ollama answers 400 "does not support
thinking" to ``think: true`` for a model without the ``thinking``
capability (qwen2.5-coder among them), and a model with it thinks when
``think`` is unset. So:

- a model without the capability never gets ``think``: the request is
  served without thinking, as an API that ignores the hint would;
- a model with it gets what the client asked for, and ``think: false`` when
  the client asked for nothing (the Anthropic API's meaning of no ``thinking``).

`capabilities` is the model's list from Ollama's /api/show, or None when it
could not be read: then ``think`` is left out, which can never fail.
"""


def shape_think(data, capabilities):
    """Set or remove ``think`` in the /api/chat body `data`. Returns its value (None: absent)."""
    if capabilities is None or "thinking" not in capabilities:
        data.pop("think", None)
        return None
    data.setdefault("think", False)
    return data["think"]
