"""Role monitoring on the converged host: loopback-only listeners, every
scrape target up, an alert that travels to a webhook and resolves, the
watchdog restarting a hung service, and the rotation-overdue alert.

The intervals are the short ones of inventory/local/group_vars (scrape and
evaluate every 5 s, backends down for 10 s, watchdog every 10 s)."""
import json
import shlex
import time

import pytest

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
WEBHOOK_LOG = "/run/ccproxy-test-webhook.jsonl"
WEBHOOK_SERVER = f"""
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open('{WEBHOOK_LOG}', 'ab') as f:
            f.write(body.replace(b'\\n', b' ') + b'\\n')
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(('127.0.0.1', 18999), H).serve_forever()
"""


def get_json(host, url):
    out = host.run(f"curl -sf --max-time 10 '{url}'")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(what, check, timeout=180, step=3):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def firing(host, alertname):
    alerts = get_json(host, f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


@pytest.mark.parametrize("unit", [
    "prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-blackbox-exporter",
])
def test_monitoring_services_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


def test_watchdog_timer_active(host):
    assert host.service("ccproxy-watchdog.timer").is_enabled
    assert host.run("systemctl is-active ccproxy-watchdog.timer").stdout.strip() == "active"


@pytest.mark.parametrize("port", [9090, 9093, 9100, 9115, 9081])
def test_monitoring_ports_on_loopback_only(host, port):
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    exposed = [s for s in host.socket.get_listening_sockets()
               if s.endswith(f":{port}") and "127.0.0.1" not in s]
    assert not exposed, exposed


def test_no_alertmanager_cluster_port(host):
    listening = host.socket.get_listening_sockets()
    assert not [s for s in listening if s.endswith(":9094")], listening
    assert not [s for s in host.socket.get_listening_sockets() if s.startswith("udp://") and s.endswith(":9094")]


def test_alertmanager_config_is_not_world_readable(host):
    config = host.file("/etc/prometheus/alertmanager.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)


def test_no_recommended_packages(host):
    assert not host.package("prometheus-node-exporter-collectors").is_installed


def test_every_target_up(host):
    def all_up():
        targets = get_json(host, f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        down = {t["labels"]["job"]: t["lastError"] for t in targets if t["health"] != "up"}
        return len(targets) >= 8 and not down
    wait_for("every scrape target up", all_up, timeout=60)
    jobs = {t["labels"]["job"] for t in get_json(host, f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]}
    assert {"traefik", "litellm", "node", "probe_public", "probe_ollama", "alertmanager"} <= jobs


def test_probes_succeed(host):
    result = get_json(host, f"{PROMETHEUS}/api/v1/query?query=probe_success")["data"]["result"]
    assert {r["metric"]["job"]: r["value"][1] for r in result} == {"probe_public": "1", "probe_ollama": "1"}
    expiry = get_json(host, f"{PROMETHEUS}/api/v1/query?query=probe_ssl_earliest_cert_expiry")["data"]["result"]
    assert float(expiry[0]["value"][1]) > time.time() + 14 * 86400


def test_no_alert_fires_on_a_healthy_host(host):
    alerts = get_json(host, f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]
    assert [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"] == []


@pytest.fixture()
def webhook(host):
    host.run(f"rm -f {WEBHOOK_LOG}; systemctl stop ccproxy-test-webhook 2>/dev/null; "
             "systemctl reset-failed ccproxy-test-webhook 2>/dev/null")
    started = host.run(f"systemd-run --unit ccproxy-test-webhook python3 -c \"{WEBHOOK_SERVER}\"")
    assert started.rc == 0, started.stderr

    def received():
        out = host.run(f"cat {WEBHOOK_LOG} 2>/dev/null")
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    yield received
    host.run("systemctl stop ccproxy-test-webhook")


def test_litellm_down_alert_reaches_the_webhook_and_resolves(host, webhook):
    def notified(status):
        return [a for n in webhook() for a in n["alerts"]
                if a["labels"]["alertname"] == "CcproxyLiteLLMDown" and a["status"] == status]
    try:
        assert host.run("systemctl stop litellm").rc == 0
        alert = wait_for("CcproxyLiteLLMDown at the webhook", lambda: notified("firing"))[0]
        assert alert["labels"]["severity"] == "critical"
    finally:
        host.run("systemctl start litellm")
    wait_for("CcproxyLiteLLMDown resolved at the webhook", lambda: notified("resolved"))


def test_watchdog_restarts_a_hung_service(host):
    def restarts():
        out = host.run(f"grep '^ccproxy_watchdog_restarts_total{{service=\"ollama\"}}' {TEXTFILE_DIR}/ccproxy_watchdog.prom")
        return int(out.stdout.split()[-1]) if out.rc == 0 else 0
    before = restarts()
    pid = host.run("systemctl show -p MainPID --value ollama").stdout.strip()
    assert pid != "0"
    try:
        # Alive to systemd, answering nobody.
        assert host.run(f"kill -STOP {pid}").rc == 0
        wait_for("the watchdog's restart of ollama", lambda: restarts() > before, timeout=120)
    finally:
        host.run(f"kill -CONT {pid}")
    wait_for("ollama answering again", lambda: host.run("curl -sf --max-time 2 127.0.0.1:11434/api/version").rc == 0)
    assert host.run("systemctl show -p MainPID --value ollama").stdout.strip() != pid
    log = host.run("journalctl -u ccproxy-watchdog --since -5min --no-pager").stdout
    assert "ollama: not answering" in log


def test_rotation_overdue_alert_fires_from_a_stale_status_file(host):
    """The files rotate-token.yml writes, as a run 200 days ago would have left them."""
    stale = int(time.time()) - 200 * 86400
    files = {
        "ccproxy-rotation.prom": (f"ccproxy_token_rotation_last_run_success 1\n"
                                  f"ccproxy_token_rotation_last_run_timestamp_seconds {stale}\n"),
        "ccproxy-rotation-success.prom": f"ccproxy_token_rotation_last_success_timestamp_seconds {stale}\n",
    }
    try:
        for name, status in files.items():
            path = f"{TEXTFILE_DIR}/{name}"
            host.run(f"printf '%s' '{status}' > {path}.tmp && mv {path}.tmp {path}")
        wait_for("CcproxyTokenRotationOverdue firing", lambda: firing(host, "CcproxyTokenRotationOverdue"), timeout=60)
        assert not firing(host, "CcproxyTokenRotationFailing")
    finally:
        host.run(f"rm -f {TEXTFILE_DIR}/ccproxy-rotation.prom {TEXTFILE_DIR}/ccproxy-rotation-success.prom")


# --- the Grafana dashboard -----------------------------------------------------------

DASHBOARD = "/etc/prometheus/dashboards/ccproxy.json"


@pytest.fixture(scope="module")
def traffic(gateway):
    """Requests of every kind the dashboard shows, from the real openai SDK: plain and
    streamed completions as client `demo`, one that tries to pass for another client,
    and one with a wrong token (an error at the edge)."""
    import openai

    def client(token, **headers):
        return openai.OpenAI(base_url=gateway.base_url, api_key=token, max_retries=0,
                             default_headers=headers,
                             http_client=openai.DefaultHttpxClient(verify=gateway.ssl_context()))
    demo = client(gateway.token("demo"))
    for _ in range(3):
        demo.chat.completions.create(model="ollama/qwen-fast", max_tokens=16,
                                     messages=[{"role": "user", "content": "dashboard"}])
        stream = demo.chat.completions.create(model="ollama/qwen-fast", max_tokens=16, stream=True,
                                              messages=[{"role": "user", "content": "dashboard"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    spoof = client(gateway.token("demo"), **{"X-Litellm-End-User-Id": "intruder",
                                             "X-Litellm-Customer-Id": "intruder"})
    spoof.chat.completions.create(model="ollama/qwen-fast", max_tokens=16, user="intruder",
                                  messages=[{"role": "user", "content": "who am I"}])
    with pytest.raises(openai.AuthenticationError):  # the edge's 401 for an unknown token
        client("not-a-token-" + "x" * 40).models.list()
    return time.time()


def query(host, expr):
    out = host.run(f"curl -s --max-time 10 {PROMETHEUS}/api/v1/query --data-urlencode {shlex.quote('query=' + expr)}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def panel_queries(host):
    dashboard = json.loads(host.file(DASHBOARD).content_string)
    return [(p["title"], t["expr"].replace("$__rate_interval", "5m"))
            for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_is_installed_for_import(host):
    dashboard = host.file(DASHBOARD)
    assert dashboard.mode == 0o644
    assert len(panel_queries(host)) >= 15


def test_every_dashboard_query_answers_after_traffic(host, traffic):
    """Each panel's query runs against this Prometheus: none may error or come back empty."""
    def answers():
        empty = []
        for title, expr in panel_queries(host):
            reply = query(host, expr)
            assert reply["status"] == "success", (title, expr, reply)
            if not reply["data"]["result"]:
                empty.append((title, expr))
        return empty or True
    deadline = time.monotonic() + 90
    while (empty := answers()) is not True and time.monotonic() < deadline:
        time.sleep(5)
    assert empty is True, f"queries with no result after traffic: {empty}"


def test_per_client_traffic_carries_the_edges_client_name(host, traffic):
    expr = "sum by (end_user) (litellm_proxy_total_requests_metric_total)"
    clients = wait_for("requests counted per client",
                       lambda: {r["metric"].get("end_user") for r in query(host, expr)["data"]["result"]} or None,
                       timeout=60)
    assert "demo" in clients
    # A client cannot name itself: LiteLLM's own end-user headers and `user` are overruled.
    assert "intruder" not in clients
