"""End to end through Traefik with the real openai and anthropic SDKs, TLS
verified against the generated CA. With the Ollama API test double as the
backend (the default), answers name the Ollama model that served them, so each
alias is checked to reach the model the model list maps it to. With a real
Ollama (CCPROXY_BACKEND=ollama, the macOS workflow) answers are only checked
to be non-empty."""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MODELS_FILE = ROOT / os.environ.get("CCPROXY_MODELS_FILE", "playbooks/group_vars/all/ccproxy.yml")
MODELS = yaml.safe_load(MODELS_FILE.read_text())["ccproxy_models"]
ALIASES = [(alias, m["name"]) for m in MODELS for alias in m["aliases"]]
TEST_DOUBLE = os.environ.get("CCPROXY_BACKEND", "test-double") == "test-double"


def answered_by(text, model, prompt=None):
    """The test double echoes the model and the prompt; a real model just answers."""
    if not TEST_DOUBLE:
        return bool(text.strip())
    return model in text and (prompt is None or prompt in text)


@pytest.fixture(scope="module")
def oai(gateway):
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key=gateway.token("demo"),
        http_client=openai.DefaultHttpxClient(verify=gateway.ssl_context()),
        max_retries=0,
    )


@pytest.fixture(scope="module")
def claude(gateway):
    # The Anthropic SDK sends its key in x-api-key and appends /v1/messages itself.
    return anthropic.Anthropic(
        base_url=gateway.origin,
        api_key=gateway.token("demo"),
        http_client=anthropic.DefaultHttpxClient(verify=gateway.ssl_context()),
        max_retries=0,
    )


def test_models_lists_every_alias(oai):
    served = {m.id for m in oai.models.list().data}
    assert {alias for alias, _ in ALIASES} <= served


@pytest.mark.parametrize("alias", [alias for alias, _ in ALIASES])
def test_model_retrieve(oai, alias):
    """models.retrieve sends ollama/qwen-fast as /v1/models/ollama%2Fqwen-fast."""
    assert oai.models.retrieve(alias).id == alias


def test_model_retrieve_unknown_is_404(oai):
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


@pytest.mark.parametrize("alias,model", ALIASES)
def test_chat_completion_reaches_mapped_model(oai, alias, model):
    resp = oai.chat.completions.create(
        model=alias, max_tokens=32, messages=[{"role": "user", "content": "ping from openai"}]
    )
    text = resp.choices[0].message.content
    assert answered_by(text, model, "ping from openai"), text
    assert resp.usage.completion_tokens > 0


@pytest.mark.parametrize("alias,model", ALIASES)
def test_chat_completion_streams(oai, alias, model):
    stream = oai.chat.completions.create(
        model=alias, max_tokens=32, stream=True,
        messages=[{"role": "user", "content": "stream please"}],
    )
    chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([c for c in chunks if c]) > 1, chunks
    assert answered_by("".join(chunks), model)


def test_stream_is_not_buffered_by_the_edge(oai):
    """The double sends a word every 20 ms: chunks must arrive spread out."""
    import time
    stamps = []
    stream = oai.chat.completions.create(
        model=ALIASES[0][0], max_tokens=40, stream=True,
        messages=[{"role": "user", "content": "one two three four five six seven eight nine ten"}],
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
    assert len(stamps) >= 8
    assert stamps[-1] - stamps[0] > 0.1, "all chunks arrived at once: the response was buffered"


@pytest.mark.parametrize("alias,model", ALIASES[:1] + ALIASES[-1:])
def test_anthropic_messages(claude, alias, model):
    msg = claude.messages.create(
        model=alias, max_tokens=32, messages=[{"role": "user", "content": "hello from anthropic"}]
    )
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert answered_by(text, model), text
    assert msg.role == "assistant"


def test_anthropic_messages_stream(claude):
    alias, model = ALIASES[0]
    with claude.messages.stream(
        model=alias, max_tokens=32, messages=[{"role": "user", "content": "stream from anthropic"}]
    ) as stream:
        pieces = list(stream.text_stream)
    assert len(pieces) > 1
    assert answered_by("".join(pieces), model)


def test_health_needs_no_token(http):
    r = http.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "healthy"


def test_missing_token_is_401_json(http):
    r = http.get("/v1/models")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["message"]
    assert r.headers["www-authenticate"].lower().startswith("bearer")


def test_wrong_token_is_401_authentication_error(http, gateway):
    """As Anthropic's and OpenAI's APIs answer an invalid key: clients take it as
    "get a new key" (Claude Code runs its apiKeyHelper again)."""
    r = http.get("/v1/models", headers={"Authorization": "Bearer " + "x" * 64})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.json()["error"]["message"]


def test_sdk_sees_auth_errors(gateway):
    bad = openai.OpenAI(
        base_url=gateway.base_url, api_key="not-a-valid-token",
        http_client=openai.DefaultHttpxClient(verify=gateway.ssl_context()), max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_bearer_scheme_is_case_insensitive(http, gateway):
    r = http.get("/v1/models", headers={"Authorization": "bearer " + gateway.token("demo")})
    assert r.status_code == 200


def test_oversized_body_is_413(http, gateway):
    body = b'{"model":"gpt-4","messages":[{"role":"user","content":"' + b"a" * (2 * 1024 * 1024) + b'"}]}'
    r = http.post(
        "/v1/chat/completions", content=body,
        headers={"Authorization": "Bearer " + gateway.token("demo"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_security_headers(http, gateway):
    r = http.get("/v1/models", headers={"Authorization": "Bearer " + gateway.token("demo")})
    assert "max-age=" in r.headers["strict-transport-security"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_plain_http_never_serves_the_api(gateway):
    plain = gateway.origin.replace("https://", "http://") + "/v1/models"
    try:
        r = httpx.get(plain, headers={"Authorization": "Bearer " + gateway.token("demo")}, timeout=10)
    except httpx.HTTPError:
        return  # refused outright: fine
    assert r.status_code != 200


def test_rate_limit_is_per_token_with_retry_after(gateway):
    """Exhaust the ci-probe client's bucket; demo's stays usable. Fewer
    parallel requests than the in-flight limit, so the 429s are the rate
    limiter's."""
    probe = gateway.token("ci-probe")
    with httpx.Client(base_url=gateway.origin, verify=gateway.ssl_context(), timeout=30) as c:
        def call(_):
            return c.get("/v1/models", headers={"Authorization": "Bearer " + probe})
        with ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(call, range(200)))
        limited = [r for r in responses if r.status_code == 429]
        assert limited, [r.status_code for r in responses][:20]
        assert int(limited[0].headers["retry-after"]) >= 0
        ok = c.get("/v1/models", headers={"Authorization": "Bearer " + gateway.token("demo")})
        assert ok.status_code == 200
