"""The converged Debian host (testinfra over the podman connection)."""
import pytest


def test_systemd_is_pid1(host):
    assert host.process.get(pid=1).comm == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend").stdout
    assert state == "running", failed


@pytest.mark.parametrize("unit", ["ollama", "litellm", "traefik"])
def test_service_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("port", [11434, 8081, 8082])
def test_internal_ports_on_loopback_only(host, port):
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    listening = host.socket.get_listening_sockets()
    exposed = [s for s in listening if s.endswith(f":{port}") and "127.0.0.1" not in s]
    assert not exposed, exposed


def test_public_port_speaks_tls(host):
    out = host.run(
        "python3 -c \"import socket, ssl; c = ssl.create_default_context(cafile='/etc/traefik/tls/ca.crt');"
        " s = c.wrap_socket(socket.create_connection(('127.0.0.1', 8080)), server_hostname='localhost');"
        " print(s.version())\""
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize(
    "path,owner",
    [
        ("/etc/ccproxy/litellm/litellm.env", "root"),
        ("/etc/traefik/dynamic/ccproxy.yml", "traefik"),
        ("/etc/traefik/tls/server.key", "traefik"),
        ("/etc/traefik/tls/ca.key", "root"),
    ],
)
def test_secret_files_are_0600(host, path, owner):
    f = host.file(path)
    assert f.exists
    assert f.mode == 0o600
    assert f.user == owner


def test_no_secret_in_unit_files(host):
    env = host.file("/etc/ccproxy/litellm/litellm.env").content_string
    key = env.split("LITELLM_MASTER_KEY=", 1)[1].strip()
    assert len(key) >= 32
    for unit in ("ollama", "litellm", "traefik"):
        assert key not in host.file(f"/etc/systemd/system/{unit}.service").content_string
    ps = host.run("ps -eo args").stdout
    assert key not in ps


def test_tokens_stored_only_as_hashes(host, gateway):
    token = gateway.token("demo")
    dynamic = host.file("/etc/traefik/dynamic/ccproxy.yml").content_string
    assert token not in dynamic
    import hashlib
    assert hashlib.sha256(token.encode()).hexdigest() in dynamic


def test_access_log_names_client_never_token(host, gateway, http):
    token = gateway.token("demo")
    r = http.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    log = host.file("/var/log/traefik/access.log").content_string
    assert '"request_X-Ccproxy-Client":"demo"' in log
    assert token not in log
