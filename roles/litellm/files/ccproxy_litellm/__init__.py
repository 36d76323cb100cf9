"""ccproxy's code inside LiteLLM: what the gateway does to a request between
LiteLLM's API translation and Ollama, in one package that moves with LiteLLM.

LiteLLM loads it from config.yaml (``litellm_settings.callbacks:
[ccproxy_litellm.proxy.handler]``); the role puts this directory on the
instances' PYTHONPATH. Importing ``ccproxy_litellm.proxy`` installs the
Ollama request shaping (``ollama.CcproxyOllamaChatConfig``).

Modules without a LiteLLM import (``messages``, ``thinking``) hold the rules
and are unit-tested on their own; ``ollama``, ``capabilities`` and ``proxy``
wire them into LiteLLM 1.108.7 (docs/decisions/litellm-package.md says which
extension points and why).
"""
