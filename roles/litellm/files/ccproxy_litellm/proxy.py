"""The entry point LiteLLM's proxy loads (config.yaml: litellm_settings.callbacks).

Importing it installs the Ollama request shaping; `handler` is the proxy
callback (a CustomLogger) where request policy hooks go.
"""
from litellm.integrations.custom_logger import CustomLogger

from . import ollama

ollama.install()


class CcproxyHandler(CustomLogger):
    """ccproxy's proxy callback."""


handler = CcproxyHandler()
