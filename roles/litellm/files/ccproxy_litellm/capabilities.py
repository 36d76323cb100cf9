"""A model's capabilities, read from Ollama's /api/show and kept for a while.

Keyed by (Ollama base URL, model): a model tag means the same weights on
every host, but a host may not have pulled it yet. An answer is kept
`TTL_SECONDS`; a failure is kept `RETRY_SECONDS`, so a host that is down
costs one short wait now and then, not one per request.
"""
import threading
import time

import httpx

TTL_SECONDS = 600
RETRY_SECONDS = 15
TIMEOUT_SECONDS = 5

_cache = {}
_lock = threading.Lock()


def _base(api_base):
    base = (api_base or "http://127.0.0.1:11434").rstrip("/")
    for suffix in ("/api/chat", "/api/generate", "/api/show"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def _cached(key, now):
    with _lock:
        entry = _cache.get(key)
    if entry and entry[0] > now:
        return True, entry[1]
    return False, None


def _store(key, value, now):
    with _lock:
        _cache[key] = (now + (TTL_SECONDS if value is not None else RETRY_SECONDS), value)
    return value


def _parse(response):
    if response.status_code != 200:
        return None
    body = response.json()
    caps = body.get("capabilities") if isinstance(body, dict) else None
    return list(caps) if isinstance(caps, list) else None


async def get(api_base, model, client=None):
    """The capabilities of `model` at `api_base`, or None if Ollama did not say."""
    key, now = (_base(api_base), model), time.monotonic()
    hit, value = _cached(key, now)
    if hit:
        return value
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as own:
                response = await own.post(f"{key[0]}/api/show", json={"model": model})
        else:
            response = await client.post(f"{key[0]}/api/show", json={"model": model}, timeout=TIMEOUT_SECONDS)
        value = _parse(response)
    except (httpx.HTTPError, ValueError):
        value = None
    return _store(key, value, now)


def get_sync(api_base, model):
    """The same for LiteLLM's synchronous path (litellm.completion)."""
    key, now = (_base(api_base), model), time.monotonic()
    hit, value = _cached(key, now)
    if hit:
        return value
    try:
        value = _parse(httpx.post(f"{key[0]}/api/show", json={"model": model}, timeout=TIMEOUT_SECONDS))
    except (httpx.HTTPError, ValueError):
        value = None
    return _store(key, value, now)


def clear():
    with _lock:
        _cache.clear()
