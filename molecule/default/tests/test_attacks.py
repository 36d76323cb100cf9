"""Hostile requests against the converged gateway: each one must be refused.

Requests go through the published public port, as an attacker's would. Where
"refused" could hide a request that still reached LiteLLM, the test finds the
request's own line in Traefik's access log (by a unique User-Agent) and checks
OriginStatus is 0: the edge answered and nothing was proxied.
"""
import http.client
import json
import socket
import ssl
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ACCESS_LOG = "/var/log/traefik/access.log"


def setting(name):
    """A Traefik setting as the converge used it: the test inventory, else the role default."""
    for source in (ROOT / "inventory/local/group_vars/ccproxy/main.yml", ROOT / "roles/traefik/defaults/main.yml"):
        values = yaml.safe_load(source.read_text())
        if name in values:
            return values[name]
    raise KeyError(name)


def seconds(duration):
    return int(duration[:-1]) * {"s": 1, "m": 60}[duration[-1]]


class Edge:
    """Raw HTTPS requests: no client-side path normalisation, nothing added."""

    def __init__(self, gateway):
        self.gateway = gateway
        split = urlsplit(gateway.origin)
        self.host, self.port = split.hostname, split.port

    def connect(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.gateway.ssl_context(), timeout=timeout)

    def request(self, method, path, token="demo", headers=None, body=None):
        """Send one request; return (status, parsed JSON or text, marker)."""
        marker = f"ccproxy-attack-test/{uuid.uuid4()}"
        sent = {"User-Agent": marker, **(headers or {})}
        if token:
            sent["Authorization"] = "Bearer " + self.gateway.token(token)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        conn = self.connect()
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            data = body.encode() if isinstance(body, str) else body
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw
        return resp.status, payload, marker


@pytest.fixture(scope="module")
def edge(gateway):
    return Edge(gateway)


def log_entry(host, marker, timeout=5):
    """The access-log line of the request sent with User-Agent `marker`."""
    deadline = time.monotonic() + timeout
    while True:
        out = host.run(f"grep -F {marker} {ACCESS_LOG}").stdout.strip().splitlines()
        if out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(out) == 1, f"expected one access-log line for {marker}, got {out}"
    return json.loads(out[0])


def assert_answered_by_edge(host, marker):
    entry = log_entry(host, marker)
    assert entry.get("OriginStatus", 0) == 0, f"request reached an upstream: {entry}"
    assert entry.get("ServiceName", "") in ("", "edge-only@file"), entry
    return entry


# -- 1. management routes never reach LiteLLM ------------------------------------

MANAGEMENT = [
    ("GET", "/v1/model/info"), ("POST", "/v1/model/new"), ("GET", "/model/info"),
    ("GET", "/v1/mcp/sessions"), ("DELETE", "/v1/mcp/sessions/some-session"),
    ("POST", "/v1/mcp/server/oauth/session"), ("GET", "/mcp"), ("POST", "/mcp"),
    ("GET", "/v1/agents"), ("POST", "/a2a/agent"),
    ("POST", "/key/generate"), ("POST", "/v1/key/generate"), ("GET", "/key/info"),
    ("POST", "/user/new"), ("GET", "/global/spend"), ("GET", "/spend/logs"),
    ("GET", "/config/yaml"), ("POST", "/config/update"), ("GET", "/routes"),
    ("GET", "/debug/asyncio-tasks"), ("GET", "/get/config/callbacks"),
    ("GET", "/ui/"), ("GET", "/"), ("GET", "/openapi.json"), ("GET", "/swagger/swagger-ui.css"),
    ("GET", "/metrics"), ("GET", "/health/liveliness"), ("GET", "/health/readiness"),
    ("GET", "/public/model_hub/info"), ("POST", "/utils/token_counter"),
    ("GET", "/v1/files"), ("POST", "/v1/batches"), ("GET", "/v1/fine_tuning/jobs"),
    ("POST", "/v1/assistants"), ("GET", "/v1/vector_stores"), ("POST", "/v1/images/generations"),
    ("POST", "/openai/v1/chat/completions"), ("POST", "/anthropic/v1/messages"),
    ("POST", "/ollama/api/generate"), ("POST", "/engines/gpt-4/chat/completions"),
    ("POST", "/chat/completions"), ("GET", "/v1/responses/resp_123"),
    ("POST", "/v1/responses/input_tokens"),
    # Allowlisted paths with the wrong method.
    ("GET", "/v1/chat/completions"), ("DELETE", "/v1/models/gpt-4"), ("POST", "/v1/models"),
    ("PUT", "/v1/messages"),
]


@pytest.mark.parametrize("method,path", MANAGEMENT, ids=[f"{m} {p}" for m, p in MANAGEMENT])
def test_management_route_is_edge_404(edge, host, method, path):
    status, body, marker = edge.request(method, path, body={} if method in ("POST", "PUT") else None)
    assert status == 404, body
    assert body["error"]["type"] == "not_found_error"
    assert_answered_by_edge(host, marker)


def test_ssrf_sequence_never_reaches_litellm(edge, host):
    """The reviewed SSRF: an MCP OAuth session whose token_url is a loopback
    port, then its token call. Both stop at the edge; Ollama sees nothing."""
    # A canary query string tells this attack's request from the monitoring
    # probes and the watchdog, which ask /api/version all the time.
    canary = f"ccproxy-ssrf-canary={uuid.uuid4().hex}"
    status, body, marker = edge.request("POST", "/v1/mcp/server/oauth/session", body={
        "server_id": "attack", "token_url": f"http://127.0.0.1:11434/api/version?{canary}",
        "client_id": "x", "client_secret": "y",
    })
    assert status == 404, body
    assert_answered_by_edge(host, marker)
    status, body, marker = edge.request("POST", "/v1/mcp/server/oauth/attack/token", body={"code": "x"})
    assert status == 404, body
    assert_answered_by_edge(host, marker)
    time.sleep(1)
    reached = host.run(f"journalctl -u ollama --no-pager -o cat | grep -c '{canary}'").stdout.strip()
    assert reached == "0", "a request reached Ollama's /api/version"


def test_client_supplied_api_base_is_refused(edge):
    """A completion that names its own backend must not be sent there."""
    status, body, _ = edge.request("POST", "/v1/chat/completions", body={
        "model": "gpt-4", "messages": [{"role": "user", "content": "hi"}],
        "api_base": "http://169.254.169.254/latest/meta-data/",
    })
    assert 400 <= status < 500, body
    assert "api_base" in json.dumps(body)


# -- 2. egress restriction on the LiteLLM host -----------------------------------


def connect_as(host, user, address, port):
    script = (
        "import socket,sys\n"
        f"try: socket.create_connection(({address!r}, {port}), timeout=5).close(); print('open')\n"
        "except OSError as e: print(type(e).__name__)\n"
    )
    prefix = f"runuser -u {user} -- " if user != "root" else ""
    return host.run(f"{prefix}python3 -c \"{script}\"").stdout.strip()


def test_litellm_user_cannot_reach_the_lan(host):
    """LiteLLM's user may reach loopback only: the host's own LAN address,
    where Traefik listens and root can connect, is refused to it."""
    lan = host.run("hostname -I").stdout.split()[0]
    assert connect_as(host, "root", lan, 8080) == "open"
    assert connect_as(host, "litellm", lan, 8080) == "ConnectionRefusedError"
    assert connect_as(host, "litellm", "127.0.0.1", 11434) == "open"


def test_litellm_unit_denies_ip_egress(host):
    """The unit's own filter (systemd BPF) is configured too. These test
    containers run on cgroup v1 without BPF, so systemd cannot enforce it here;
    the nftables table above is what the previous test proves."""
    shown = host.run("systemctl show litellm -p IPAddressDeny -p IPAddressAllow").stdout
    settings = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert set(settings["IPAddressDeny"].split()) == {"0.0.0.0/0", "::/0"}
    assert set(settings["IPAddressAllow"].split()) == {"127.0.0.0/8", "::1/128"}


# -- 3. prefix confusion, encoded separators, dot segments -------------------------

ENCODED = [
    ("GET", "/v1beta/models/x:countTokens"),
    ("POST", "/v1beta/models/x:countTokens"),
    ("POST", "/v1%2F..%2Fkey%2Fgenerate"),
    ("POST", "/v1/chat/completions/../../key/generate"),
    ("POST", "/v1/./../key/generate"),
    ("GET", "/v1//model/info"),
    ("GET", "/v1/models/%2e%2e%2fkey%2Finfo"),
    ("GET", "/v1/models/x%2F..%2F..%2Fkey%2Finfo"),
    ("POST", "/v1/chat/completions%2F..%2F..%2Fkey%2Fgenerate"),
    ("POST", "/v1/chat%2Fcompletions"),
    ("GET", "/V1/models"),
    ("GET", "/v1/models/"),
    ("POST", "/v1/chat/completions%3B/../../key/generate"),
    ("GET", "/v1/models%5C..%5Ckey%5Cinfo"),
    ("GET", "/v1/models/gpt-4%00"),
    ("GET", "/v1/models/a%25b"),
]


@pytest.mark.parametrize("method,path", ENCODED, ids=[f"{m} {p}" for m, p in ENCODED])
def test_encoded_and_dotted_paths_stay_outside(edge, host, method, path):
    status, body, marker = edge.request(method, path, body={} if method == "POST" else None)
    assert status in (400, 404), (status, body)
    assert_answered_by_edge(host, marker)


def test_query_string_is_kept(edge):
    """Claude Code sends POST /v1/messages?beta=true."""
    status, body, _ = edge.request("POST", "/v1/messages?beta=true", body={
        "model": "claude-3-5-sonnet", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
    }, headers={"anthropic-version": "2023-06-01"})
    assert status == 200, body
    assert body["type"] == "message"


# -- 4. nobody can spoof the client name -------------------------------------------


@pytest.mark.parametrize("token,path,status", [
    (None, "/v1/models", 401),
    ("wrong", "/v1/models", 401),
    (None, "/v1/model/info", 404),
])
def test_spoofed_client_header_never_logged(edge, host, token, path, status):
    spoof = f"spoofed-{uuid.uuid4().hex[:8]}"
    headers = {"X-Ccproxy-Client": spoof}
    if token == "wrong":
        headers["Authorization"] = "Bearer " + "w" * 64
    got, body, marker = edge.request("GET", path, token=None, headers=headers)
    assert got == status, body
    entry = log_entry(host, marker)
    assert spoof not in json.dumps(entry)


@pytest.mark.parametrize("header", ["X-Ccproxy-Client", "X_Ccproxy_Client"])
def test_authenticated_client_is_named_not_spoofed(edge, host, header):
    spoof = f"spoofed-{uuid.uuid4().hex[:8]}"
    status, body, marker = edge.request("GET", "/v1/models", headers={header: spoof})
    assert status == 200, body
    entry = log_entry(host, marker)
    assert entry["request_X-Ccproxy-Client"] == "demo"
    assert spoof not in json.dumps(entry)


# -- 5. TLS, scanned by sslyze --------------------------------------------------------

AEAD_ECDHE_TLS12 = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


@pytest.fixture(scope="module")
def tls_scan(edge):
    from sslyze import ScanCommand, Scanner, ServerNetworkLocation, ServerScanRequest, ServerScanStatusEnum

    commands = {
        ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
        ScanCommand.ELLIPTIC_CURVES,
    }
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(
        server_location=ServerNetworkLocation(hostname="localhost", port=edge.port, ip_address=edge.host),
        scan_commands=commands,
    )])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    return result.scan_result


def accepted(attempt):
    assert attempt.error_trace is None, attempt.error_trace
    return {s.cipher_suite.name for s in attempt.result.accepted_cipher_suites}


@pytest.mark.parametrize("version", ["ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"])
def test_old_protocols_refused(tls_scan, version):
    assert accepted(getattr(tls_scan, f"{version}_cipher_suites")) == set()


def test_tls12_only_ecdhe_aead(tls_scan):
    suites = accepted(tls_scan.tls_1_2_cipher_suites)
    assert suites, "TLS 1.2 must stay available for older clients"
    assert suites <= AEAD_ECDHE_TLS12, suites - AEAD_ECDHE_TLS12


def test_tls13_offered(tls_scan):
    assert accepted(tls_scan.tls_1_3_cipher_suites)


def test_curves(tls_scan):
    attempt = tls_scan.elliptic_curves
    assert attempt.error_trace is None, attempt.error_trace
    curves = {c.name for c in attempt.result.supported_curves}
    assert "X25519" in curves
    assert curves <= {"X25519", "secp256r1", "prime256v1", "secp384r1"}, curves


# -- 6. resource limits ---------------------------------------------------------------


def test_oversized_chunked_body_is_413(edge, gateway):
    limit = setting("traefik_max_request_body_bytes")
    conn = edge.connect()
    try:
        chunk = b"a" * 65536
        conn.request("POST", "/v1/chat/completions", body=iter([chunk] * (limit // len(chunk) + 2)),
                     headers={"Authorization": "Bearer " + gateway.token("demo"),
                              "Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413
    assert body["error"]["type"] == "request_too_large"


def test_oversized_http2_body_is_413(gateway):
    limit = setting("traefik_max_request_body_bytes")

    def body():  # streamed: an HTTP/2 request without content-length
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536

    with httpx.Client(http2=True, verify=gateway.ssl_context(), timeout=30) as client:
        r = client.post(gateway.base_url + "/chat/completions", content=body(),
                        headers={"Authorization": "Bearer " + gateway.token("demo")})
    assert r.http_version == "HTTP/2"
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"


def test_slow_headers_are_cut_off(edge, gateway):
    """One header byte a second: the connection is closed after the read
    timeout, not held for minutes."""
    limit = seconds(setting("traefik_read_timeout"))
    raw = socket.create_connection((edge.host, edge.port), timeout=limit + 30)
    tls = gateway.ssl_context().wrap_socket(raw, server_hostname="localhost")
    start = time.monotonic()
    tls.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n")
    closed_after = None
    try:
        for byte in b"X-Slow: " + b"a" * (limit + 30):
            tls.sendall(bytes([byte]))
            time.sleep(1)
    except (ssl.SSLError, OSError):
        closed_after = time.monotonic() - start
    finally:
        tls.close()
    assert closed_after is not None, "the slow connection was never closed"
    assert closed_after <= limit + 5, closed_after


def test_in_flight_requests_are_limited_per_client(edge, gateway):
    """A client holding its in-flight allowance gets 429 for one more request;
    another client is unaffected; the first gets through again once done.
    The allowance is held with chunked uploads left unfinished: the edge reads
    a body after the in-flight limit, so these requests count until it ends."""
    amount = setting("traefik_max_in_flight_per_client")
    head, tail = b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]', b"}"

    def start_upload():
        conn = edge.connect()
        conn.putrequest("POST", "/v1/chat/completions")
        for name, value in (("Authorization", "Bearer " + gateway.token("demo")),
                            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")):
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(b"%x\r\n%s\r\n" % (len(head), head))
        return conn

    def finish_upload(conn):
        try:
            conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def status(who):
        return edge.request("GET", "/v1/models", token=who)[0]

    uploads = [start_upload() for _ in range(amount)]
    try:
        time.sleep(1)  # let the edge take every upload in
        assert status("demo") == 429
        assert status("ci-probe") == 200
    finally:
        statuses = [finish_upload(conn) for conn in uploads]
    assert statuses == [200] * amount
    assert status("demo") == 200
