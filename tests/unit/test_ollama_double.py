"""The Ollama API test double (tests/ollama_double/) against the official client.

The double is started as a subprocess under the target interpreter
(/usr/bin/python3, standard library only) on a free loopback port with a
throw-away OLLAMA_MODELS, and driven with the pinned `ollama` Python client,
whose pydantic response types reject wrongly shaped replies. The packaging
function is checked for the release layout and for reproducibility.
"""
import hashlib
import http.client
import importlib.util
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import types
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ollama = pytest.importorskip("ollama")

ROOT = Path(__file__).resolve().parents[2]
DOUBLE_DIR = ROOT / "tests" / "ollama_double"
SCRIPT = DOUBLE_DIR / "ollama"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
MODEL = "qwen2.5-coder:7b-instruct"
BIG = "qwen2.5-coder:32b-instruct"
REPLY = "[ollama-test-double {model}] You said: {said}"


def _load(name, path):
    """Import a file as a module without leaving __pycache__ behind."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = types.ModuleType(name)
    module.__file__ = str(path)
    source = loader.get_data(str(path)).decode()
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


double = _load("ollama_double_script", SCRIPT)
package = _load("ollama_double_package", DOUBLE_DIR / "package.py")
VERSION = double.VERSION


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Double:
    """One running `ollama serve` of the test double."""

    def __init__(self, models_dir, **extra_env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
        self.env.update(OLLAMA_HOST=f"127.0.0.1:{self.port}", OLLAMA_MODELS=str(models_dir), **extra_env)
        self.proc = subprocess.Popen([PYTHON, "-B", str(SCRIPT), "serve"], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError("test double did not start:\n" + self.proc.communicate()[1])
                time.sleep(0.02)
        self.client = ollama.Client(host=self.url)

    def stop(self):
        """SIGTERM; returns (exit code, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError("test double ignored SIGTERM:\n" + err)
        return self.proc.returncode, err

    def raw(self, method, path, body=None, data=None):
        """(status, headers, body bytes) without the client's validation."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            if body is not None:
                data = json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = Double(tmp_path_factory.mktemp("models"), OLLAMA_MAX_LOADED_MODELS="0")
    d.client.pull(MODEL)
    d.client.pull(BIG)
    yield d
    code, err = d.stop()
    assert code == 0, err


@pytest.fixture
def client(server):
    return server.client


def expected_reply(model, said):
    return REPLY.format(model=model, said=said)


# --------------------------------------------------------------------------- pure functions

@pytest.mark.parametrize("value, expected", [
    (None, ("http", "127.0.0.1", 11434)),
    ("", ("http", "127.0.0.1", 11434)),
    (":9999", ("http", "127.0.0.1", 9999)),
    ("0.0.0.0", ("http", "0.0.0.0", 11434)),
    ("10.1.2.3:8080", ("http", "10.1.2.3", 8080)),
    ("http://example.com", ("http", "example.com", 80)),
    ("https://example.com", ("https", "example.com", 443)),
    ("http://127.0.0.1:5000/", ("http", "127.0.0.1", 5000)),
    ("[::1]:7000", ("http", "::1", 7000)),
])
def test_ollama_host_forms(value, expected):
    assert double.parse_host(value) == expected


@pytest.mark.parametrize("value, seconds", [
    ("5m", 300), ("1h30m", 5400), ("300ms", 0.3), (30, 30), ("45", 45), (0, 0), ("0", 0),
    ("-1", None), (-1, None), ("-1m", None),
])
def test_keep_alive_parsing(value, seconds):
    got = double.parse_keep_alive(value)
    assert got == seconds if seconds is None else math.isclose(got, seconds)


@pytest.mark.parametrize("bad", ["5x", "m", "", "1h-3m"])
def test_keep_alive_rejects_garbage(bad):
    with pytest.raises(ValueError):
        double.parse_keep_alive(bad)


@pytest.mark.parametrize("raw, display", [
    ("qwen2.5-coder:7b-instruct", "qwen2.5-coder:7b-instruct"),
    ("llama3.2", "llama3.2:latest"),
    ("library/llama3.2", "llama3.2:latest"),
    ("registry.ollama.ai/library/llama3.2:1b", "llama3.2:1b"),
    ("someone/model", "someone/model:latest"),
    ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
])
def test_name_normalisation(raw, display):
    assert double.Name(raw).display == display


@pytest.mark.parametrize("bad", ["", "a/b/c/d", "bad name", "x:", ":tag"])
def test_invalid_names(bad):
    with pytest.raises(ValueError):
        double.Name(bad)


@pytest.mark.parametrize("name, size, quant, low, high", [
    ("qwen2.5-coder:7b-instruct", "7.6B", "Q4_K_M", 4.3e9, 5.0e9),
    ("qwen2.5-coder:32b-instruct", "32.8B", "Q4_K_M", 19e9, 21e9),
    ("qwen2.5:0.5b", "494.03M", "Q4_K_M", 0.25e9, 0.45e9),
    ("qwen2.5-coder:7b-instruct-q8_0", "7.6B", "Q8_0", 7.8e9, 8.6e9),
    ("llama3.1:8b", "8.0B", "Q4_K_M", 4.5e9, 5.3e9),
])
def test_synthetic_sizes_are_plausible(name, size, quant, low, high):
    rec = double.synth_model(double.Name(name))
    assert (rec["parameter_size"], rec["quantization_level"]) == (size, quant)
    assert low < rec["size"] < high
    assert rec["digest"] == hashlib.sha256(double.Name(name).display.encode()).hexdigest()


# --------------------------------------------------------------------------- CLI

def test_cli_version_reports_server_and_client():
    free = free_port()  # nothing listens there
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{free}"}
    for flag in ("--version", "-v"):
        out = subprocess.run([PYTHON, "-B", str(SCRIPT), flag], env=env, capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0
        assert out.stdout.splitlines() == ["Warning: could not connect to a running Ollama instance",
                                           f"Warning: client version is {VERSION}"]


def test_cli_version_with_server_running(server):
    out = subprocess.run([PYTHON, "-B", str(SCRIPT), "--version"], env=server.env,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout == f"ollama version is {VERSION}\n"


def test_cli_list_and_unknown_command(server):
    out = subprocess.run([PYTHON, "-B", str(SCRIPT), "list"], env=server.env,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert MODEL in out.stdout
    bad = subprocess.run([PYTHON, "-B", str(SCRIPT), "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown command" in bad.stderr


# --------------------------------------------------------------------------- basic HTTP

def test_root_and_version(server):
    status, headers, body = server.raw("GET", "/")
    assert (status, body) == (200, b"Ollama is running")
    status, headers, body = server.raw("HEAD", "/")
    assert status == 200 and body == b"" and headers["Content-Length"] == "17"
    status, _, body = server.raw("GET", "/api/version")
    assert status == 200 and json.loads(body) == {"version": VERSION}


def test_unknown_path_and_bad_json(server):
    assert server.raw("GET", "/api/nope")[::2] == (404, b"404 page not found")
    assert server.raw("GET", "/api/chat")[0] == 404  # wrong method, like gin
    status, _, body = server.raw("POST", "/api/chat", data=b"{not json")
    assert status == 400 and "error" in json.loads(body)
    status, _, body = server.raw("POST", "/api/show", data=b"")
    assert status == 400 and json.loads(body) == {"error": "missing request body"}
    status, _, body = server.raw("POST", "/api/pull", body={"model": "bad name!"})
    assert status == 400 and json.loads(body)["error"] == "invalid model name"


def test_no_nagle_delay_on_keep_alive_connection(server):
    """With Nagle on, header and body writes cost ~40 ms per response."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    payload = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                          "stream": False}).encode()
    start = time.monotonic()
    for _ in range(25):
        conn.request("POST", "/api/chat", body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["done"] is True
    elapsed = time.monotonic() - start
    conn.close()
    assert elapsed < 0.5, f"25 requests took {elapsed:.3f}s on one connection"


# --------------------------------------------------------------------------- pull / list / show

def test_pull_stream_progress(tmp_path):
    d = Double(tmp_path)
    try:
        events = list(d.client.pull(MODEL, stream=True))
    finally:
        assert d.stop()[0] == 0
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    progress = [e for e in events if e.digest]
    assert progress and all(e.status == f"pulling {e.digest[7:19]}" for e in progress)
    assert all(e.digest.startswith("sha256:") and e.total > 0 and 0 <= e.completed <= e.total
               for e in progress)
    assert any(0 < e.completed < e.total for e in progress), "no intermediate progress"
    totals = {e.digest: e.total for e in progress}
    assert {e.digest for e in progress if e.completed == e.total} == set(totals)


def test_slow_pull_knob_paces_progress_and_a_disconnect_cancels(tmp_path):
    """OLLAMA_TEST_DOUBLE_PULL_BYTES_PER_S: progress at that rate; a client gone = no model."""
    model = "qwen2.5:0.5b"
    rec = double.synth_model(double.Name(model))
    rate = rec["size"]  # the whole model in about one second
    d = Double(tmp_path, OLLAMA_TEST_DOUBLE_PULL_BYTES_PER_S=str(rate))
    try:
        # Hang up after the first progress lines: like real Ollama, the pull is cancelled.
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        conn.request("POST", "/api/pull", body=json.dumps({"model": model}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        first = [json.loads(resp.readline()) for _ in range(3)]
        resp.close()
        conn.close()
        assert first[0] == {"status": "pulling manifest"} and first[2]["completed"] < rate
        time.sleep(1.5)  # longer than the whole pull would have taken
        assert model not in [m.model for m in d.client.list().models]

        start = time.monotonic()
        events = [(time.monotonic() - start, e) for e in d.client.pull(model, stream=True)]
        elapsed = time.monotonic() - start
        assert model in [m.model for m in d.client.list().models]
    finally:
        assert d.stop()[0] == 0
    assert 0.9 < elapsed < 5, elapsed
    assert [e.status for _, e in events[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    weights = "sha256:" + rec["weights_digest"]
    ticks = [(t, e) for t, e in events if e.digest == weights]
    assert len(ticks) >= 6, "expected a progress line about every 0.1 s"
    done = [e.completed for _, e in ticks]
    assert done[0] == 0 and done[-1] == ticks[-1][1].total and done == sorted(done)
    assert all(e.completed <= rate * t * 1.1 + 1 for t, e in ticks), "faster than the set rate"
    assert {e.digest for _, e in events if e.digest} == {layer["digest"] for layer in rec["layers"] + [rec["config"]]}


def test_pull_is_idempotent_and_keeps_modified_at(client):
    before = {m.model: m for m in client.list().models}
    assert client.pull(MODEL).status == "success"
    again = list(client.pull(MODEL, stream=True))
    assert again[-1].status == "success"
    after = {m.model: m for m in client.list().models}
    assert after[MODEL].modified_at == before[MODEL].modified_at
    assert after[MODEL].digest == before[MODEL].digest == hashlib.sha256(MODEL.encode()).hexdigest()


def test_pull_defaults_tag_to_latest(client):
    assert client.pull("all-minilm").status == "success"
    names = [m.model for m in client.list().models]
    assert "all-minilm:latest" in names and "all-minilm" not in names
    assert client.show("all-minilm").capabilities == ["embedding"]


def test_pull_of_a_model_the_registry_lacks(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.pull("nonexistent-model")
    assert e.value.status_code == 500 and "file does not exist" in e.value.error
    with pytest.raises(ollama.ResponseError):
        list(client.pull("nonexistent-model", stream=True))


def test_list_shape(server, client):
    models = {m.model: m for m in client.list().models}
    small, big = models[MODEL], models[BIG]
    assert small.details.parameter_size == "7.6B" and big.details.parameter_size == "32.8B"
    assert small.details.family == "qwen2" and small.details.format == "gguf"
    assert small.details.quantization_level == "Q4_K_M"
    assert 4e9 < small.size < 5.5e9 and 18e9 < big.size < 22e9
    assert small.modified_at.tzinfo is not None
    raw = json.loads(server.raw("GET", "/api/tags")[2])["models"]
    for m in raw:  # keys the client does not model, e.g. "name" used by the ansible role
        assert m["name"] == m["model"]
        assert set(m["details"]) == {"format", "family", "families", "parameter_size",
                                     "quantization_level", "parent_model"}


def test_show_by_model_and_by_name(server, client):
    info = client.show(MODEL)
    assert info.modelinfo["general.architecture"] == "qwen2"
    assert info.modelinfo["qwen2.context_length"] == 32768
    assert "completion" in info.capabilities
    assert info.details.parameter_size == "7.6B"
    assert info.modelfile.startswith('# Modelfile generated by "ollama show"')
    assert "<|im_start|>" in info.template and "tools" in info.template.lower()
    assert 'stop' in info.parameters
    status, _, body = server.raw("POST", "/api/show", body={"name": MODEL})  # LiteLLM's form
    assert status == 200 and json.loads(body)["model_info"] == info.modelinfo


def test_show_unknown_is_404(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.show("no-such-model")
    assert e.value.status_code == 404 and e.value.error == "model 'no-such-model' not found"


# --------------------------------------------------------------------------- chat / generate

def test_chat_non_stream(client):
    msgs = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hello   world"}]
    r = client.chat(model=MODEL, messages=msgs)
    want = expected_reply(MODEL, "hello world")
    assert r.message.role == "assistant" and r.message.content == want
    assert r.done is True and r.done_reason == "stop"
    # ChatML as rendered: <|im_start|>system\nbe terse<|im_end|>\n = 2 + ceil(16 / 4) = 6,
    # the user turn 2 + ceil(19 / 4) = 7, <|im_start|>assistant\n 1 + ceil(10 / 4) = 4
    assert r.eval_count == len(want.split()) and r.prompt_eval_count == 17
    assert r.total_duration >= r.load_duration > 0 and r.eval_duration > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", r.created_at)


def test_chat_stream(client):
    chunks = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "stream me"}],
                              stream=True))
    want = expected_reply(MODEL, "stream me")
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c.message.content for c in chunks) == want
    final = chunks[-1]
    assert final.message.content == "" and final.done_reason == "stop"
    assert final.eval_count == len(chunks) - 1 == len(want.split())


def test_chat_num_predict_and_stop(client):
    long = "word " * 300
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": long}],
                    options={"num_predict": 5})
    assert r.done_reason == "length" and r.eval_count == 5
    assert r.message.content == " ".join(expected_reply(MODEL, "x").split()[:4] + ["word"])
    letters = "abcdefghij" * 50
    full = client.chat(model=MODEL, messages=[{"role": "user", "content": letters}])
    assert full.message.content == expected_reply(MODEL, letters[:200] + "...")  # echo capped
    stopped = client.chat(model=MODEL, messages=[{"role": "user", "content": "a STOP b"}],
                          options={"stop": ["STOP"]})
    assert stopped.message.content == expected_reply(MODEL, "a") + " "


def test_chat_json_formats(client):
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], format="json")
    assert json.loads(r.message.content) == {"ollama_test_double": MODEL, "you_said": "hi"}
    schema = {"type": "object", "properties": {"age": {"type": "integer"},
                                               "ok": {"type": "boolean"}}, "required": ["age", "ok"]}
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], format=schema)
    assert json.loads(r.message.content) == {"age": 0, "ok": False}


def test_chat_unknown_model_is_404(client):
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as e:
            r = client.chat(model="nope:1b", messages=[{"role": "user", "content": "x"}], stream=stream)
            if stream:
                list(r)
        assert e.value.status_code == 404
        assert e.value.error == 'model "nope:1b" not found, try pulling it first'


def test_generate(client):
    r = client.generate(model=MODEL, prompt="why is the sky blue?")
    want = expected_reply(MODEL, "why is the sky blue?")
    assert r.response == want and r.done and r.done_reason == "stop" and r.context
    chunks = list(client.generate(model=MODEL, prompt="why is the sky blue?", stream=True))
    assert "".join(c.response for c in chunks) == want and chunks[-1].done
    assert chunks[-1].eval_count == len(want.split())


def test_ps_load_unload_and_keep_alive(client):
    client.generate(model=BIG, prompt="", keep_alive=0)  # make sure it starts unloaded
    assert BIG not in [m.model for m in client.ps().models]
    client.chat(model=MODEL, messages=[{"role": "user", "content": "load me"}], keep_alive="10m")
    running = {m.model: m for m in client.ps().models}
    assert MODEL in running
    m = running[MODEL]
    now = datetime.now(timezone.utc)
    assert timedelta(minutes=9) < m.expires_at - now <= timedelta(minutes=10)
    assert m.size_vram > 0 and m.size > 4e9
    assert m.details.parameter_size == "7.6B" and m.context_length == 4096

    loaded = client.generate(model=BIG, prompt="", keep_alive=-1)  # the role's preload
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    running = {m.model: m for m in client.ps().models}
    assert running[BIG].expires_at.year > 2200
    assert list(running)[0] == BIG  # sorted by expiry, latest first

    unloaded = client.chat(model=BIG, messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload" and unloaded.message.content == ""
    assert BIG not in [m.model for m in client.ps().models]


def test_max_loaded_models_evicts_least_recently_used(tmp_path):
    d = Double(tmp_path, OLLAMA_MAX_LOADED_MODELS="1", OLLAMA_KEEP_ALIVE="1h")
    try:
        d.client.pull(MODEL)
        d.client.pull(BIG)
        d.client.generate(model=MODEL, prompt="")
        d.client.generate(model=BIG, prompt="")
        assert [m.model for m in d.client.ps().models] == [BIG]
    finally:
        assert d.stop()[0] == 0


def test_embed(client):
    client.pull("all-minilm")
    a = client.embed(model="all-minilm", input=["alpha", "beta"])
    b = client.embed(model="all-minilm", input="alpha")
    assert len(a.embeddings) == 2 and len(a.embeddings[0]) == 384
    assert b.embeddings[0] == a.embeddings[0] and a.embeddings[0] != a.embeddings[1]
    assert math.isclose(sum(v * v for v in a.embeddings[0]), 1.0, rel_tol=1e-9)
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="all-minilm", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 400


# --------------------------------------------------------------------------- create / copy / delete

def test_create_copy_delete(server, client):
    events = list(client.create(model="ccproxy-test", from_=MODEL, system="Be brief.",
                                parameters={"num_ctx": 8192}, stream=True))
    assert events[-1].status == "success" and events[-2].status == "writing manifest"
    assert any(e.status.startswith("using existing layer sha256:") for e in events)
    assert any(e.status.startswith("creating new layer sha256:") for e in events)
    shown = client.show("ccproxy-test")
    assert 'SYSTEM """Be brief."""' in shown.modelfile and "PARAMETER num_ctx 8192" in shown.modelfile
    assert shown.details.parent_model == MODEL

    assert client.copy("ccproxy-test", "ccproxy-copy:v1").status == "success"
    models = {m.model: m for m in client.list().models}
    assert models["ccproxy-copy:v1"].digest == models["ccproxy-test:latest"].digest
    reply = client.chat(model="ccproxy-copy:v1", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == expected_reply("ccproxy-copy:v1", "hi")

    assert client.create(model="ccproxy-nostream", from_=MODEL).status == "success"
    for name in ("ccproxy-test", "ccproxy-copy:v1", "ccproxy-nostream"):
        assert client.delete(name).status == "success"
    left = [m.model for m in client.list().models]
    assert not [n for n in left if n.startswith("ccproxy-")]
    assert not list(Path(server.env["OLLAMA_MODELS"], "manifests").rglob("ccproxy-*"))

    for call in (lambda: client.delete("ccproxy-test"),
                 lambda: client.copy("ccproxy-test", "x"),
                 lambda: client.create(model="y", from_="ccproxy-test")):
        with pytest.raises(ollama.ResponseError) as e:
            call()
        assert e.value.status_code == 404


# --------------------------------------------------------------------------- persistence, signals, delay

def test_registry_survives_restart(tmp_path):
    d = Double(tmp_path)
    try:
        d.client.pull(MODEL)
        d.client.generate(model=MODEL, prompt="")
        first = {m.model: m for m in d.client.list().models}
    finally:
        code, err = d.stop()
    assert code == 0 and "Listening on 127.0.0.1" in err and "server stopped" in err
    manifest = tmp_path / "manifests/registry.ollama.ai/library/qwen2.5-coder/7b-instruct"
    assert json.loads(manifest.read_text())["schemaVersion"] == 2

    d = Double(tmp_path, OLLAMA_TEST_DOUBLE_DELAY_MS="150")
    try:
        start = time.monotonic()
        again = {m.model: m for m in d.client.list().models}
        assert time.monotonic() - start >= 0.15
        assert again == first
        assert d.client.ps().models == []  # nothing stays loaded across a restart
    finally:
        assert d.stop()[0] == 0


def test_port_in_use_fails_fast(server):
    env = dict(server.env)
    out = subprocess.run([PYTHON, "-B", str(SCRIPT), "serve"], env=env, capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 1 and f"listen tcp 127.0.0.1:{server.port}" in out.stderr


# --------------------------------------------------------------------------- packaging

def _sums(out_dir):
    return dict(reversed(line.split("  ", 1)) for line in (out_dir / "sha256sum.txt").read_text().splitlines())


def test_release_archive_layout_and_checksum(tmp_path):
    out = tmp_path / "ollama" / "v0.12.6"
    archive = package.build_release(out, "0.12.6")
    assert archive == out / "ollama-linux-amd64.tgz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (out / "sha256sum.txt").read_text() == f"{digest}  ./ollama-linux-amd64.tgz\n"
    subprocess.run(["sha256sum", "-c", "--quiet", "sha256sum.txt"], cwd=out, check=True)

    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == ["bin/ollama", "lib/ollama", "lib/ollama/README-TEST-DOUBLE.txt"]
        assert members["bin/ollama"].mode == 0o755 and members["lib/ollama"].isdir()
        assert all(m.uid == 0 and m.gid == 0 and m.mtime == package.DEFAULT_EPOCH
                   for m in members.values())
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path / "x", **extra)
    binary = tmp_path / "x" / "bin" / "ollama"
    assert os.access(binary, os.X_OK)
    assert 'VERSION = "0.12.6"' in binary.read_text() and "TEST DOUBLE" in binary.read_text()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{free_port()}"}
    out_v = subprocess.run([str(binary), "--version"], env=env, capture_output=True, text=True, timeout=10)
    assert out_v.returncode == 0 and "client version is 0.12.6" in out_v.stdout


def test_release_archive_is_reproducible_and_checksums_accumulate(tmp_path):
    a = package.build_release(tmp_path / "a", "v0.12.6")
    time.sleep(1.1)  # a wall-clock mtime would now differ
    b = package.build_release(tmp_path / "b", "0.12.6")
    assert a.read_bytes() == b.read_bytes()
    arm = package.build_release(tmp_path / "a", "0.12.6", arch="arm64")
    sums = _sums(tmp_path / "a")
    assert set(sums) == {"./ollama-linux-amd64.tgz", "./ollama-linux-arm64.tgz"}
    assert sums["./ollama-linux-arm64.tgz"] == hashlib.sha256(arm.read_bytes()).hexdigest()
    assert sums["./ollama-linux-amd64.tgz"] == hashlib.sha256(a.read_bytes()).hexdigest()
    again = package.build_release(tmp_path / "a", "0.12.7")  # replaces, does not duplicate
    sums = _sums(tmp_path / "a")
    assert len(sums) == 2 and sums["./ollama-linux-amd64.tgz"] == hashlib.sha256(again.read_bytes()).hexdigest()
    with pytest.raises(ValueError):
        package.build_release(tmp_path / "c", "0.12.6", arch="riscv64")


def test_stamp_version_refuses_a_source_without_the_marker():
    with pytest.raises(ValueError):
        package.stamp_version("print('no version here')\n", "1.0.0")


# --------------------------------------------------------------------------- tools, thinking, record

QWEN3 = "qwen3:8b"
GPTOSS = "gpt-oss:20b"
GEMMA = "gemma3:4b"
OLD, NEW = "0.12.6", "0.20.7"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "weather of a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}
READ = {"type": "function", "function": {
    "name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}
TOOLS = [WEATHER, READ]
AGENT_PROMPT = ("Please do a few things for me.\n"
                'CCPROXY-TOOL get_weather {"city": "Paris", "days": 2}\n'
                "  CCPROXY-TOOL not_offered {\"x\": 1}\n"
                'CCPROXY-TOOL read_file {"path": "/etc/hostname"}\n'
                + "filler text " * 200)


def post(d, path, body):
    """(status, [JSON objects]): one per line of a stream, or the single reply."""
    status, _, data = d.raw("POST", path, body=body)
    return status, [json.loads(line) for line in data.splitlines() if line.strip()]


def reply(d, body, stream):
    """(status, message or error dict, all lines) of /api/chat, streamed or not, merged."""
    status, lines = post(d, "/api/chat", dict(body, stream=stream))
    if status != 200 or "error" in lines[-1]:
        return status, lines[-1], lines
    if not stream:
        assert len(lines) == 1
        return status, lines[0]["message"], lines
    msg = {"role": "assistant", "content": "".join(x["message"]["content"] for x in lines)}
    thinking = "".join(x["message"].get("thinking", "") for x in lines)
    calls = [c for x in lines for c in x["message"].get("tool_calls", [])]
    if thinking:
        msg["thinking"] = thinking
    if calls:
        msg["tool_calls"] = calls
    return status, msg, lines


def read_record(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module", params=[OLD, NEW])
def speaking(request, tmp_path_factory):
    """A double speaking 0.12.6 or 0.20.7, recording to d.record."""
    base = tmp_path_factory.mktemp("speaks")
    record = base / "record.jsonl"
    d = Double(base / "models", OLLAMA_TEST_DOUBLE_SPEAKS=request.param,
               OLLAMA_TEST_DOUBLE_RECORD=str(record))
    d.speaks, d.record = request.param, record
    for m in (MODEL, QWEN3, GPTOSS, GEMMA, "all-minilm"):
        d.client.pull(m)
    yield d
    code, err = d.stop()
    assert code == 0, err
    assert f"speaking the Ollama API of version {request.param}" in err


def test_protocol_version_switch(monkeypatch):
    assert double.version_tuple("0.12.6") == (0, 12, 6)
    assert double.version_tuple("v0.20.7-rc1") == (0, 20, 7)
    assert double.version_tuple("testdouble") is None
    monkeypatch.setattr(double, "VERSION", "0.0.0-testdouble")
    assert double.protocol_version({}) == (0, 12, 6)  # unstamped speaks the Linux pin
    monkeypatch.setattr(double, "VERSION", "0.12.10")  # as package.py stamps it
    assert double.protocol_version({}) == (0, 12, 10)
    assert double.protocol_version({"OLLAMA_TEST_DOUBLE_SPEAKS": "0.12.6"}) == (0, 12, 6)
    with pytest.raises(ValueError, match="OLLAMA_TEST_DOUBLE_SPEAKS"):
        double.protocol_version({"OLLAMA_TEST_DOUBLE_SPEAKS": "latest"})


def test_bad_speaks_or_record_fails_at_startup(tmp_path):
    for env in ({"OLLAMA_TEST_DOUBLE_SPEAKS": "new"},
                {"OLLAMA_TEST_DOUBLE_RECORD": str(tmp_path / "missing-dir" / "r.jsonl")}):
        full = {**{k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")},
                "OLLAMA_HOST": f"127.0.0.1:{free_port()}", "OLLAMA_MODELS": str(tmp_path), **env}
        out = subprocess.run([PYTHON, "-B", str(SCRIPT), "serve"], env=full, capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 1 and f"Error: {next(iter(env))}" in out.stderr


@pytest.mark.parametrize("name, caps", [
    ("qwen2.5-coder:7b-instruct", ["completion", "tools", "insert"]),
    ("qwen3:8b", ["completion", "tools", "thinking"]),
    ("qwen3:30b-a3b-instruct-2507-q4_K_M", ["completion", "tools"]),
    ("qwen3-coder:30b", ["completion", "tools", "insert"]),
    ("deepseek-r1:7b", ["completion", "thinking"]),
    ("gpt-oss:20b", ["completion", "tools", "thinking"]),
    ("qwq:32b", ["completion", "tools"]),
    ("gemma3:4b", ["completion"]),
    ("all-minilm", ["embedding"]),
])
def test_capabilities(name, caps):
    assert double.synth_model(double.Name(name))["capabilities"] == caps


def test_show_reports_thinking(speaking):
    assert "thinking" in speaking.client.show(QWEN3).capabilities
    assert speaking.client.show(MODEL).capabilities == ["completion", "tools", "insert"]


def test_tool_directive_parsing():
    text = ("x\r\nCCPROXY-TOOL a {\"k\": [1, 2]}\r\n  CCPROXY-TOOL b  \n"
            "say CCPROXY-TOOL c {}\nCCPROXY-TOOL d [1]\nCCPROXY-TOOL e {broken\nCCPROXY-TOOL f {}")
    assert double.tool_directives(text) == [("a", {"k": [1, 2]}), ("b", None), ("f", {})]
    assert double.wants_failure("a\n CCPROXY-FAIL-MIDSTREAM \nb")
    assert not double.wants_failure("please CCPROXY-FAIL-MIDSTREAM now")


def _check_call(d, msg, name, args):
    assert msg["content"] == "" and len(msg["tool_calls"]) == 1
    call = msg["tool_calls"][0]
    assert call["function"] == {"index": 0, "name": name, "arguments": args}
    if d.speaks == OLD:
        assert set(call) == {"function"}  # 0.12.6's api.ToolCall has no ID
    else:
        assert set(call) == {"id", "function"} and re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    return call


@pytest.mark.parametrize("stream", [False, True])
def test_agent_loop_with_tool_results(speaking, stream):
    d = speaking
    messages = [{"role": "system", "content": "you are an agent"},
                {"role": "user", "content": "earlier\nCCPROXY-TOOL get_weather {\"city\": \"Rome\"}"},
                {"role": "assistant", "content": "old answer"},
                {"role": "user", "content": AGENT_PROMPT}]
    body = {"model": MODEL, "messages": messages, "tools": TOOLS}
    status, msg, lines = reply(d, body, stream)
    assert status == 200 and lines[-1]["done"] and lines[-1]["done_reason"] == "stop"
    first = _check_call(d, msg, "get_weather", {"city": "Paris", "days": 2})
    if stream:  # the call in one done:false line, then an empty done:true line with counts
        assert [x["done"] for x in lines[-2:]] == [False, True]
        assert "tool_calls" in lines[-2]["message"] and "tool_calls" not in lines[-1]["message"]
        assert lines[-1]["message"]["content"] == "" and lines[-1]["eval_count"] > 0

    def result(call, content):
        out = {"role": "tool", "content": content}
        if d.speaks == OLD:
            out["tool_name"] = call["function"]["name"]
        else:
            out["tool_call_id"] = call["id"]  # no tool_name: the id must be enough
        return out

    messages += [{"role": "assistant", "content": "", "tool_calls": [first]},
                 result(first, "sunny, 24C")]
    status, msg, lines = reply(d, body, stream)
    second = _check_call(d, msg, "read_file", {"path": "/etc/hostname"})  # not_offered skipped

    long = "host-" + "x" * 300
    messages += [{"role": "assistant", "content": "", "tool_calls": [second]}, result(second, long)]
    status, msg, lines = reply(d, body, stream)
    assert status == 200 and "tool_calls" not in msg and lines[-1]["done_reason"] == "stop"
    assert msg["content"] == (f"[ollama-test-double {MODEL}] done after 2 tool calls; "
                              f"last tool result (read_file): {long[:200]}")


@pytest.mark.parametrize("stream", [False, True])
def test_tool_result_identified_as_the_version_can(speaking, stream):
    call = {"id": "call_abcd1234", "function": {"index": 0, "name": "read_file", "arguments": {}}}
    base = [{"role": "user", "content": "CCPROXY-TOOL read_file"},
            {"role": "assistant", "content": "", "tool_calls": [call]}]

    def last_result(tool_msg):
        body = {"model": MODEL, "messages": base + [tool_msg], "tools": TOOLS}
        status, msg, _ = reply(speaking, body, stream)
        assert status == 200
        return msg["content"].split("last tool result ")[1]

    by_id = last_result({"role": "tool", "content": "42", "tool_call_id": "call_abcd1234"})
    assert by_id == ("(anonymous): 42" if speaking.speaks == OLD else "(read_file): 42")
    by_name = last_result({"role": "tool", "content": "42", "tool_name": "get_weather"})
    assert by_name == "(get_weather): 42"
    unmatched = last_result({"role": "tool", "content": "42", "tool_call_id": "call_zzzz0000",
                             "tool_name": "get_weather"})
    assert unmatched == "(get_weather): 42"


def test_tool_call_arguments_from_schema_and_without_tools(speaking):
    messages = [{"role": "user", "content": "CCPROXY-TOOL get_weather"}]
    _, msg, _ = reply(speaking, {"model": MODEL, "messages": messages, "tools": TOOLS}, False)
    _check_call(speaking, msg, "get_weather",
                {"city": "ollama-test-double", "days": 0, "unit": "celsius"})
    # no tools offered: directives are just text
    _, msg, _ = reply(speaking, {"model": MODEL, "messages": messages}, False)
    assert msg["content"] == expected_reply(MODEL, "CCPROXY-TOOL get_weather")
    # only unoffered directives: never called
    messages = [{"role": "user", "content": "CCPROXY-TOOL rm_rf {}"}]
    _, msg, _ = reply(speaking, {"model": MODEL, "messages": messages, "tools": TOOLS}, True)
    assert "tool_calls" not in msg
    assert msg["content"] == f"[ollama-test-double {MODEL}] done after 0 tool calls; no tool result"


def test_tool_calls_through_the_official_client(speaking):
    r = speaking.client.chat(model=MODEL, tools=TOOLS, messages=[
        {"role": "user", "content": 'CCPROXY-TOOL read_file {"path": "a"}'}])
    assert r.message.tool_calls[0].function.name == "read_file"
    assert r.message.tool_calls[0].function.arguments == {"path": "a"}
    assert r.done_reason == "stop" and r.message.content == ""


def test_tool_calls_on_the_done_line(tmp_path):
    d = Double(tmp_path, OLLAMA_TEST_DOUBLE_TOOL_CALLS_ON_DONE="1", OLLAMA_TEST_DOUBLE_SPEAKS=NEW)
    try:
        d.client.pull(MODEL)
        body = {"model": MODEL, "tools": TOOLS, "messages": [
            {"role": "user", "content": "CCPROXY-TOOL read_file {}"}]}
        status, lines = post(d, "/api/chat", body)
        assert status == 200 and len(lines) == 1 and lines[0]["done"] is True
        assert lines[0]["message"]["tool_calls"][0]["function"]["name"] == "read_file"
        assert lines[0]["message"]["tool_calls"][0]["id"].startswith("call_")
        _, lines = post(d, "/api/chat", dict(body, stream=False))
        assert lines[0]["message"]["tool_calls"][0]["function"]["name"] == "read_file"
    finally:
        assert d.stop()[0] == 0


def test_tools_need_the_capability_and_object_arguments(speaking):
    body = {"model": GEMMA, "tools": TOOLS, "messages": [{"role": "user", "content": "hi"}]}
    status, lines = post(speaking, "/api/chat", body)
    assert (status, lines) == (400, [{"error": "registry.ollama.ai/library/gemma3:4b does not support tools"}])
    history = [{"role": "user", "content": "hi"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "read_file", "arguments": '{"path": "a"}'}}]},
               {"role": "tool", "content": "x", "tool_name": "read_file"}]
    status, lines = post(speaking, "/api/chat", {"model": MODEL, "tools": TOOLS, "messages": history})
    assert status == 400 and lines[0]["error"].startswith("json: cannot unmarshal string into Go struct field")


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_models_think_by_default(speaking, stream):
    said = "why is the sky blue?"
    for think in (None, True):
        body = {"model": QWEN3, "messages": [{"role": "user", "content": said}]}
        if think is not None:
            body["think"] = think
        status, msg, lines = reply(speaking, body, stream)
        assert status == 200
        assert msg["thinking"] == f"[ollama-test-double thinking] Considering: {said}"
        assert msg["content"] == expected_reply(QWEN3, said)
        if stream:  # thinking pieces come first, each with an empty content
            first_content = next(i for i, x in enumerate(lines) if x["message"]["content"])
            assert all(x["message"].get("thinking") for x in lines[:first_content])
            assert not any(x["message"].get("thinking") for x in lines[first_content:])
            assert lines[-1]["eval_count"] == len(lines) - 1
    status, msg, _ = reply(speaking, dict(body, think=False), stream)
    assert status == 200 and "thinking" not in msg and msg["content"] == expected_reply(QWEN3, said)


@pytest.mark.parametrize("stream", [False, True])
def test_think_on_a_model_that_cannot(speaking, stream):
    for model in (MODEL, "Qwen2.5-Coder:7b-instruct"):  # named as the request names it
        for think in (True, "high"):
            status, lines = post(speaking, "/api/chat", {
                "model": model, "think": think, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]})
            assert (status, lines) == (400, [{"error": f'"{model}" does not support thinking'}])
    status, msg, _ = reply(speaking, {"model": MODEL, "think": False,
                                      "messages": [{"role": "user", "content": "hi"}]}, stream)
    assert status == 200 and "thinking" not in msg
    status, lines = post(speaking, "/api/chat", {"model": MODEL, "think": "max",
                                                 "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and lines[0]["error"].startswith('invalid think value: "max"')


def test_think_levels(speaking):
    msgs = [{"role": "user", "content": "hi"}]
    status, msg, _ = reply(speaking, {"model": GPTOSS, "think": "low", "messages": msgs}, True)
    assert status == 200 and msg["thinking"].startswith("[ollama-test-double thinking] (think=low)")
    status, msg, _ = reply(speaking, {"model": GPTOSS, "think": False, "messages": msgs}, False)
    assert status == 200 and msg["thinking"]  # gpt-oss cannot switch its trace off
    status, msg, lines = reply(speaking, {"model": QWEN3, "think": "high", "messages": msgs}, False)
    if speaking.speaks == OLD:
        assert (status, msg) == (400, {"error": 'think value "high" is not supported for this model'})
    else:
        assert status == 200 and "(think=high)" in msg["thinking"]


@pytest.mark.parametrize("stream", [False, True])
def test_generate_thinking(speaking, stream):
    status, lines = post(speaking, "/api/generate", {"model": QWEN3, "prompt": "hi", "stream": stream})
    assert status == 200
    assert "".join(x.get("thinking", "") for x in lines) == "[ollama-test-double thinking] Considering: hi"
    assert "".join(x["response"] for x in lines) == expected_reply(QWEN3, "hi")
    status, lines = post(speaking, "/api/generate", {"model": QWEN3, "prompt": "hi", "think": False,
                                                     "stream": stream})
    assert status == 200 and not any("thinking" in x for x in lines)
    status, lines = post(speaking, "/api/generate", {"model": MODEL, "prompt": "hi", "think": True})
    assert (status, lines) == (400, [{"error": f'"{MODEL}" does not support thinking'}])
    r = speaking.client.generate(model=QWEN3, prompt="hi")
    assert r.thinking and r.response == expected_reply(QWEN3, "hi")


@pytest.mark.parametrize("model", [MODEL, QWEN3])
def test_mid_stream_failure(speaking, model):
    body = {"model": model, "tools": TOOLS, "messages": [
        {"role": "user", "content": "long answer please\nCCPROXY-FAIL-MIDSTREAM\nCCPROXY-TOOL read_file"}]}
    status, lines = post(speaking, "/api/chat", body)
    assert status == 200 and len(lines) == 4
    assert all(x["done"] is False for x in lines[:3])
    assert lines[3] == {"error": "an error was encountered while running the model: unexpected EOF"}
    status, lines = post(speaking, "/api/chat", dict(body, stream=False))
    assert (status, lines) == (500, [{"error": lines[0]["error"]}]) and "unexpected EOF" in lines[0]["error"]
    with pytest.raises(ollama.ResponseError, match="unexpected EOF"):
        list(speaking.client.chat(model=model, messages=body["messages"], stream=True))
    status, lines = post(speaking, "/api/generate", {"model": model, "prompt": "CCPROXY-FAIL-MIDSTREAM"})
    assert status == 200 and "error" in lines[-1] and len(lines) == 4


def test_request_record(speaking):
    path = speaking.record
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    before = len(read_record(path))
    tool_msg = {"role": "tool", "content": "ok", "tool_name": "read_file"}
    chat = {"model": MODEL, "stream": False, "options": {"num_ctx": 8192, "temperature": 0.25},
            "messages": [{"role": "user", "content": "hi"}, tool_msg]}
    speaking.raw("POST", "/api/chat", body=chat)
    speaking.raw("POST", "/api/generate", body={"model": QWEN3, "prompt": "x", "think": False})
    speaking.raw("POST", "/api/embed", body={"model": "all-minilm", "input": "x"})
    speaking.raw("POST", "/api/show", body={"model": "nope:1b"})
    speaking.raw("POST", "/api/chat", body={"model": MODEL, "think": True,
                                            "messages": [{"role": "user", "content": "x"}]})
    speaking.raw("GET", "/api/tags")  # not recorded
    speaking.raw("POST", "/api/chat", data=b"{not json")
    got = read_record(path)[before:]
    assert [(g["path"], g["status"]) for g in got] == [
        ("/api/chat", 200), ("/api/generate", 200), ("/api/embed", 200), ("/api/show", 404),
        ("/api/chat", 400), ("/api/chat", 400)]
    assert got[0]["body"] == chat and "think" not in got[0]["body"]
    assert got[0]["body"]["messages"][1] == tool_msg
    assert got[1]["body"]["think"] is False and got[5]["body"] == "{not json"
    assert all(isinstance(g["time"], float) and abs(g["time"] - time.time()) < 60 for g in got)
    assert [g["time"] for g in got] == sorted(g["time"] for g in got)


def test_request_record_is_thread_safe_and_streams_are_recorded(speaking):
    path = speaking.record
    before = len(read_record(path))
    bodies = [{"model": MODEL, "messages": [{"role": "user", "content": f"n{i} " + "y" * 5000}]}
              for i in range(16)]
    statuses = []
    threads = [threading.Thread(target=lambda b=b: statuses.append(speaking.raw("POST", "/api/chat", b)[0]))
               for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(bodies)  # every request answered: a lost one is not the record's fault
    got = read_record(path)[before:]  # every line whole JSON, none lost
    assert sorted(g["body"]["messages"][0]["content"] for g in got) == sorted(
        b["messages"][0]["content"] for b in bodies)
    assert {(g["path"], g["status"]) for g in got} == {("/api/chat", 200)}


# --------------------------------------------------------------------------- text tool calls

def test_text_tool_call_styles_and_env_syntax():
    call = {"function": {"index": 0, "name": "read_file", "arguments": {"path": "a b"}}}
    obj = '{"name": "read_file", "arguments": {"path": "a b"}}'
    assert double.text_tool_call(call, "json") == obj
    assert double.text_tool_call(call, "fenced") == f"```json\n{obj}\n```"
    assert double.text_tool_call(call, "tags") == f"<tool_call>\n{obj}\n</tool_call>"
    prose = double.text_tool_call(call, "prose")
    head, fenced = prose.split("\n\n", 1)
    assert head and "{" not in head and fenced == f"```json\n{obj}\n```"
    rules = double.parse_text_tool_calls(" qwen2.5-coder:7b*=cycle, Qwen2.5-Coder*=TAGS ,")
    assert rules == (("qwen2.5-coder:7b*", "cycle"), ("qwen2.5-coder*", "tags"))
    assert double.text_call_style(rules, "qwen2.5-coder:7b-instruct") == "cycle"  # first match wins
    assert double.text_call_style(rules, "QWEN2.5-coder:32b") == "tags"
    assert double.text_call_style(rules, "qwen3:8b") is None
    for bad in ("qwen*", "qwen*=xml", "=json"):
        with pytest.raises(ValueError, match="OLLAMA_TEST_DOUBLE_TEXT_TOOL_CALLS"):
            double.parse_text_tool_calls(bad)


@pytest.mark.parametrize("stream", [False, True])
def test_text_tool_calls_per_model(tmp_path, stream):
    d = Double(tmp_path, OLLAMA_TEST_DOUBLE_TEXT_TOOL_CALLS="qwen2.5-coder:7b*=cycle,qwen2.5-coder*=tags")
    try:
        for m in (MODEL, BIG, QWEN3):
            d.client.pull(m)
        args = {"path": "/etc/hostname"}
        obj = json.dumps({"name": "read_file", "arguments": args})
        body = {"tools": TOOLS, "think": False,
                "messages": [{"role": "user", "content": "read it\nCCPROXY-TOOL read_file " + json.dumps(args)}]}
        got = []
        for _ in range(5):  # cycle: json, fenced, tags, prose, json again
            status, msg, lines = reply(d, dict(body, model=MODEL), stream)
            assert status == 200 and "tool_calls" not in msg and lines[-1]["done_reason"] == "stop"
            assert not any("tool_calls" in x["message"] for x in lines)
            if stream:  # streamed as word pieces, like any text
                assert len(lines) > 2 and all(x["message"]["content"] for x in lines[:-1])
                assert lines[-1]["eval_count"] == len(lines) - 1
            got.append(msg["content"])
        assert got[0] == obj and got[4] == obj
        assert got[1] == f"```json\n{obj}\n```"
        assert got[2] == f"<tool_call>\n{obj}\n</tool_call>"
        assert got[3].endswith(f"\n\n```json\n{obj}\n```") and not got[3].startswith("```")
        status, msg, _ = reply(d, dict(body, model=BIG), stream)
        assert msg["content"] == f"<tool_call>\n{obj}\n</tool_call>" and "tool_calls" not in msg
        status, msg, _ = reply(d, dict(body, model=QWEN3), stream)  # not listed: a real call
        assert msg["content"] == "" and msg["tool_calls"][0]["function"]["arguments"] == args
    finally:
        assert d.stop()[0] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_json_text_directive_names_no_offered_tool(speaking, stream):
    fake = {"type": "function", "function": {"name": "not_a_tool", "parameters": {"type": "object"}}}
    said = "show the config\nCCPROXY-JSON-TEXT\nCCPROXY-TOOL read_file"
    for tools, name in ((TOOLS, "not_a_tool"), (TOOLS + [fake], "not_a_tool_2"), (None, "not_a_tool")):
        body = {"model": MODEL, "messages": [{"role": "user", "content": said}]}
        if tools:
            body["tools"] = tools
        status, msg, lines = reply(speaking, body, stream)
        assert status == 200 and "tool_calls" not in msg and lines[-1]["done_reason"] == "stop"
        assert msg["content"] == (f"[ollama-test-double {MODEL}] Here is the config: "
                                  f'{{"name": "{name}", "arguments": {{}}}}')
    assert not double.wants_json_text("say CCPROXY-JSON-TEXT please")


# --------------------------------------------------------------------------- context window

def test_token_estimate():
    assert double.count_tokens("") == 0 and double.count_tokens(None) == 0
    assert double.count_tokens("abcd") == 1 and double.count_tokens("abcde") == 2
    assert double.count_tokens("<|im_start|>user\n<|im_end|>") == 2 + 2  # specials are 1 each
    assert double.count_tokens("日本") == 2  # 6 UTF-8 bytes


def test_chat_prompt_keep_as_each_version_does():
    old, new = (0, 12, 6), (0, 20, 7)
    frame = double.count_tokens(double._ASSISTANT_PROMPT)
    # a system message where the 0.12.6 walk stops is lost; >= 0.15.5 keeps it
    roles, costs = ["user", "system", "user"], [5, 30, 10]
    assert double.chat_prompt_keep(roles, costs, 0, 30, True, old) == [2]
    assert double.chat_prompt_keep(roles, costs, 0, 30, True, new) == [1, 2]
    # system messages before the cut are kept, the last message always
    roles, costs = ["system", "user", "assistant", "user"], [10, 100, 100, 10]
    for v in (old, new):
        assert double.chat_prompt_keep(roles, costs, 0, 120 + frame, True, v) == [0, 2, 3]
        assert double.chat_prompt_keep(roles, costs, 0, 5, True, v) == [0, 3]
        assert double.chat_prompt_keep(roles, costs, 0, 5, False, v) == [0, 1, 2, 3]
        assert double.chat_prompt_keep(roles, costs, 0, 10**6, True, v) == [0, 1, 2, 3]
        assert double.chat_prompt_keep(["user"], [10**6], 0, 5, True, v) == [0]
    assert double.context_shifts(1024, 20, 1024, 4) == 1  # 510 freed once
    assert double.context_shifts(100, 20, 1024, 4) == 0
    assert double.runner_keep(5000, 1024, 4, "qwen2") == 4
    assert double.runner_keep(5000, 1024, 4, "llama") == 5  # llamarunner + BOS
    assert double.runner_keep(5000, 1024, -1, "qwen3") == 1023


def _last_record(d):
    return read_record(d.record)[-1]


def _history(d):
    """system, a user turn with a directive, a long assistant turn, a short last user turn."""
    return [{"role": "system", "content": "you are terse"},
            {"role": "user", "content": "CCPROXY-TOOL read_file\n" + "old question " * 40},
            {"role": "assistant", "content": "old answer " * 40},
            {"role": "user", "content": "hello there"}]


@pytest.mark.parametrize("stream", [False, True])
def test_oldest_messages_dropped_to_fit(speaking, stream):
    msgs = _history(speaking)
    roles = [m["role"] for m in msgs]
    costs = [double.message_tokens(m) for m in msgs]
    tools = double.tools_tokens(TOOLS)
    full = double.render_tokens(roles, costs, [0, 1, 2, 3], tools)
    window = double.render_tokens(roles, costs, [0, 2, 3], tools)
    assert full > window + 100
    body = {"model": MODEL, "tools": TOOLS, "messages": msgs}
    status, msg, lines = reply(speaking, dict(body, options={"num_ctx": full}), stream)
    assert "tool_calls" in msg and lines[-1]["prompt_eval_count"] == full  # fits: the model sees the directive
    assert "truncated" not in _last_record(speaking)
    status, msg, lines = reply(speaking, dict(body, options={"num_ctx": window}), stream)
    # the directive's message was dropped: the model answers the last message only
    assert status == 200 and "tool_calls" not in msg and msg["content"] == expected_reply(MODEL, "hello there")
    assert lines[-1]["prompt_eval_count"] == window and lines[-1]["done_reason"] == "stop"
    rec = _last_record(speaking)
    assert rec["status"] == 200 and rec["truncated"] == {
        "dropped_messages": 1, "prompt_tokens": full, "kept_tokens": window, "num_ctx": window}
    assert rec["context_shifts"] == 1  # the window fills num_ctx exactly: the reply shifts it


@pytest.mark.parametrize("stream", [False, True])
def test_runner_keeps_num_keep_and_the_tail(speaking, stream):
    said = "tail words " * 2000  # 22000 bytes, ~5500 tokens: over the default 4096 alone
    msgs = [{"role": "user", "content": said}]
    full = double.render_tokens(["user"], [double.message_tokens(msgs[0])], [0], 0)
    status, msg, lines = reply(speaking, {"model": MODEL, "messages": msgs}, stream)
    assert status == 200 and msg["content"].startswith(f"[ollama-test-double {MODEL}] You said: tail words")
    assert lines[-1]["prompt_eval_count"] == 4096  # OLLAMA_CONTEXT_LENGTH default
    rec = _last_record(speaking)
    assert rec["truncated"] == {"dropped_messages": 0, "prompt_tokens": full, "kept_tokens": 4096,
                                "num_ctx": 4096}
    # the prompt fills the context: generating shifts it, once ((4096 - 4) / 2 freed)
    assert rec["context_shifts"] == 1 and lines[-1]["eval_count"] > 2
    # "shift": false ends the sequence instead: one token, done_reason "length"
    status, msg, lines = reply(speaking, {"model": MODEL, "messages": msgs, "shift": False}, stream)
    assert status == 200 and lines[-1]["done_reason"] == "length" and lines[-1]["eval_count"] == 1
    assert msg["content"] == "[ollama-test-double"
    # generate: the same cut of the rendered prompt
    status, lines = post(speaking, "/api/generate", {"model": MODEL, "prompt": said, "stream": stream,
                                                     "options": {"num_ctx": 1000}})
    assert status == 200 and lines[-1]["prompt_eval_count"] == 1000
    assert _last_record(speaking)["truncated"]["kept_tokens"] == 1000


@pytest.mark.parametrize("stream", [False, True])
def test_num_ctx_clamped_to_the_trained_context(speaking, stream):
    half = "x " * 80000  # 160000 bytes: 40000 tokens
    msgs = [{"role": "user", "content": half}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": half}]
    # chatPrompt measures against the num_ctx asked for (100000: all fits) but the runner
    # is clamped to qwen2's 32768 and cuts the prompt itself
    status, _, lines = reply(speaking, {"model": MODEL, "messages": msgs, "options": {"num_ctx": 100000}}, stream)
    assert status == 200 and lines[-1]["prompt_eval_count"] == 32768
    rec = _last_record(speaking)["truncated"]
    assert rec["num_ctx"] == 32768 and rec["dropped_messages"] == 0 and rec["prompt_tokens"] > 80000
    status, _, lines = reply(speaking, {"model": MODEL, "messages": msgs, "options": {"num_ctx": 32768}}, stream)
    rec = _last_record(speaking)["truncated"]
    assert rec["dropped_messages"] == 2 and rec["kept_tokens"] == 32768 == lines[-1]["prompt_eval_count"]


@pytest.mark.parametrize("stream", [False, True])
def test_truncate_false_is_a_400(speaking, stream):
    msgs = _history(speaking)
    body = {"model": MODEL, "messages": msgs, "truncate": False, "stream": stream, "options": {"num_ctx": 100}}
    status, lines = post(speaking, "/api/chat", body)
    assert (status, lines) == (400, [{"error": "the input length exceeds the context length"}])
    assert _last_record(speaking)["status"] == 400
    status, lines = post(speaking, "/api/generate", {"model": MODEL, "prompt": "y " * 400, "truncate": False,
                                                     "stream": stream, "options": {"num_ctx": 100}})
    assert (status, lines) == (400, [{"error": "the input length exceeds the context length"}])
    status, lines = post(speaking, "/api/chat", dict(body, options={"num_ctx": 8192}))
    assert status == 200 and lines[-1]["done"] and "truncated" not in _last_record(speaking)
