"""The converged Debian host (testinfra over the podman connection)."""
import pytest


def test_systemd_is_pid1(host):
    assert host.process.get(pid=1).comm == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend").stdout
    assert state == "running", failed


# LiteLLM runs twice (ccproxy_litellm_instances): litellm on 8081, litellm-2 on 8091.
UNITS = ["ollama", "litellm", "litellm-2", "traefik"]


@pytest.mark.parametrize("unit", UNITS)
def test_service_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


def test_traefik_handover_waits_for_a_restart(host):
    """The second Traefik of a restart (roles/traefik/tasks/restart.yml):
    defined, never started at boot, the same config as the edge's but for its
    internal port; both share the public port (reusePort) and drain on stop."""
    handover = host.service("traefik-handover")
    assert not handover.is_enabled and not handover.is_running
    edge = host.file("/etc/traefik/traefik.yml").content_string
    twin = host.file("/etc/traefik/traefik-handover.yml").content_string
    assert "reusePort: true" in edge and "graceTimeOut: 300s" in edge
    assert twin != edge and twin.replace('"127.0.0.1:8083"', '"127.0.0.1:8082"') == edge
    assert "TimeoutStopSec=330" in host.file("/etc/systemd/system/traefik.service").content_string


@pytest.mark.parametrize("port", [11434, 8081, 8091, 8082])
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
    "path,owner,group,mode",
    [
        # Read by systemd (root) as the unit's EnvironmentFile.
        ("/etc/ccproxy/litellm/litellm.env", "root", "litellm", 0o600),
        # Read by the service itself: root's, readable by its group only.
        ("/etc/traefik/dynamic/ccproxy.yml", "root", "traefik", 0o640),
        ("/etc/traefik/tokens.json", "root", "traefik", 0o640),
        ("/etc/traefik/tls/server.key", "root", "traefik", 0o640),
    ],
)
def test_secret_files(host, path, owner, group, mode):
    f = host.file(path)
    assert f.exists
    assert (f.user, f.group, f.mode) == (owner, group, mode)


@pytest.mark.parametrize("unit,limit", [("traefik", 3.0), ("traefik-handover", 3.0), ("litellm", 3.0), ("litellm-2", 3.0), ("ollama", 5.0)])
def test_unit_hardening(host, unit, limit):
    out = host.run(f"systemd-analyze security {unit} --no-pager").stdout
    exposure = float(out.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert exposure <= limit, out


def test_units_apply_their_sandbox(host):
    """Settings a container might silently not apply: the services really run
    in their own user and mount namespaces, without capabilities."""
    for unit in ("traefik", "litellm", "litellm-2"):
        pid = host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        assert host.run(f"readlink /proc/{pid}/ns/user").stdout != host.run("readlink /proc/1/ns/user").stdout
        assert host.run(f"readlink /proc/{pid}/ns/mnt").stdout != host.run("readlink /proc/1/ns/mnt").stdout
        status = host.file(f"/proc/{pid}/status").content_string
        assert "CapEff:\t0000000000000000" in status
        assert "NoNewPrivs:\t1" in status


def test_no_secret_in_unit_files(host):
    env = host.file("/etc/ccproxy/litellm/litellm.env").content_string
    key = env.split("LITELLM_MASTER_KEY=", 1)[1].strip()
    assert len(key) >= 32
    for unit in UNITS:
        assert key not in host.file(f"/etc/systemd/system/{unit}.service").content_string
    ps = host.run("ps -eo args").stdout
    assert key not in ps


def test_tokens_stored_only_as_hashes(host, gateway):
    """In the token plugin's own file, which the routing file names."""
    token = gateway.token("demo")
    dynamic = host.file("/etc/traefik/dynamic/ccproxy.yml").content_string
    tokens = host.file("/etc/traefik/tokens.json").content_string
    assert token not in dynamic and token not in tokens
    import hashlib
    assert hashlib.sha256(token.encode()).hexdigest() in tokens
    import yaml
    auth = yaml.safe_load(dynamic)["http"]["middlewares"]["token-auth"]["plugin"]["tokenauth"]
    assert auth["tokensFile"] == "/etc/traefik/tokens.json" and "tokens" not in auth


def test_access_log_names_client_never_token(host, gateway, http):
    token = gateway.token("demo")
    r = http.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    log = host.file("/var/log/traefik/access.log").content_string
    assert '"request_X-Ccproxy-Client":"demo"' in log
    assert token not in log


def test_ca_key_stays_on_the_control_node(host, gateway):
    assert not host.file("/etc/traefik/tls/ca.key").exists
    key = gateway.state_dir / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("forged_name", ["DNS:bank.example", "IP:10.0.0.1"])
def test_ca_is_name_constrained(gateway, forged_name, tmp_path):
    """A certificate the CA signs for another DNS name is refused by verifiers
    (cryptography's and OpenSSL's); the gateway's own certificate verifies
    for its names. The constraints hold DNS subtrees only, which Claude Code
    needs (docs/decisions/ca.md): a certificate for another IP address is
    accepted, and this test says so."""
    import ipaddress
    import subprocess
    import datetime
    import ssl as ssl_module

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    ca = x509.load_pem_x509_certificate((gateway.state_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((gateway.state_dir / "ca.key").read_bytes(), None)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert all(isinstance(n, x509.DNSName) for n in constraints.value.permitted_subtrees)
    kind, value = forged_name.split(":", 1)
    san = x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value))

    now = datetime.datetime.now(datetime.timezone.utc)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        # Not a host name: OpenSSL checks a host-name-like CN against DNS subtrees too.
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"forged {value}")]))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        # cryptography's verifier refuses a leaf without one, whatever its names
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    subject = san if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value))
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(subject)
    pem = tmp_path / "forged.pem"
    pem.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    openssl = subprocess.run(["openssl", "verify", "-CAfile", str(gateway.state_dir / "ca.crt"), str(pem)],
                             capture_output=True, text=True)
    if kind == "DNS":
        with pytest.raises(VerificationError, match="name constraints"):
            verifier.verify(forged, [])
        assert openssl.returncode != 0 and "subtree violation" in openssl.stdout + openssl.stderr, openssl
    else:  # IP names are unconstrained (the price of Claude Code's TLS stack)
        verifier.verify(forged, [])
        assert openssl.returncode == 0, openssl

    served = ssl_module.get_server_certificate(("127.0.0.1", int(gateway.origin.rsplit(":", 1)[1])))
    leaf = x509.load_pem_x509_certificate(served.encode())
    PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])


def converge(*args, env=None):
    """site.yml against this scenario's host, as the converge ran it."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    # Molecule forces colour; the tests read the output as plain text.
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **(env or {}))
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args, str(root / "playbooks" / "site.yml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )


def test_check_mode_on_the_converged_host_changes_nothing():
    run = converge("--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    recap = [line for line in run.stdout.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line and "failed=0" in line for line in recap), recap


def test_a_broken_litellm_venv_is_repaired_by_the_next_run(host, http):
    """The venv's state is read from the venv itself: a venv whose interpreter
    is gone is made again by the next converge (install phase only here)."""
    import re
    import time

    venv = "/opt/ccproxy/litellm/venv"
    assert host.run(f"ln -sf /nonexistent/python3 {venv}/bin/python").rc == 0
    assert host.run(f"{venv}/bin/python -c 'import sys'").rc != 0
    run = converge("--tags", "litellm_install")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"Remove a broken venv\]\s*\**\s*\nchanged:", run.stdout), run.stdout[-3000:]
    assert host.run(f"{venv}/bin/python -c 'import litellm'").rc == 0
    # The handler restarted LiteLLM on the new venv: wait for it before the next tests.
    deadline = time.monotonic() + 120
    while http.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "LiteLLM did not come back after the repair"
        time.sleep(1)


def test_fewer_litellm_instances_leave_nothing_behind(host):
    """Lowering ccproxy_litellm_instances stops the instance beyond and deletes its unit
    and log rotation; raising it again brings the instance back."""
    run = converge("--tags", "litellm_run", "-e", "ccproxy_litellm_instances=1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert not host.file("/etc/systemd/system/litellm-2.service").exists
    assert not host.file("/etc/logrotate.d/ccproxy-litellm-2").exists
    assert host.run("systemctl is-active litellm-2").stdout.strip() != "active"
    assert not host.socket("tcp://127.0.0.1:8091").is_listening
    assert host.service("litellm").is_running

    run = converge("--tags", "litellm_configure,litellm_run")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert host.service("litellm-2").is_enabled and host.service("litellm-2").is_running
    assert host.run("curl -sf --max-time 5 http://127.0.0.1:8091/health/liveliness").rc == 0


# Each documented phase tag and the task files of that phase. Tasks tagged
# `always` (platform settings, the site preflight, the vault), each role's
# preflight (tagged with its install and configure phases) and the include
# lines of the role's tasks/main.yml may start with any tag.
_DEFINE = ["roles/service/tasks/main.yml", "roles/service/tasks/systemd.yml", "roles/service/tasks/logs-"]
PHASES = {
    "ollama_install": ["roles/ollama/tasks/install-", "roles/release/"],
    # On one host Ollama stays on loopback: no ingress table of role firewall.
    "ollama_configure": ["roles/ollama/tasks/configure.yml", "roles/firewall/tasks/absent.yml", *_DEFINE],
    "ollama_run": ["roles/service/tasks/run.yml"],
    "ollama_models": ["roles/ollama/tasks/models.yml"],
    # The venvs are pruned with role release's tasks_from: prune.
    "litellm_install": ["roles/litellm/tasks/install.yml", "roles/litellm/tasks/prerequisites-", "roles/release/"],
    # LiteLLM's egress table is role firewall's.
    "litellm_configure": ["roles/litellm/tasks/configure.yml", "roles/service/tasks/files.yml",
                          "roles/firewall/tasks/main.yml", *_DEFINE],
    "litellm_run": ["roles/service/tasks/run.yml"],
    "traefik_install": ["roles/traefik/tasks/install", "roles/release/"],
    "traefik_tls": ["roles/traefik/tasks/tls.yml"],
    "traefik_configure": ["roles/traefik/tasks/configure.yml", "roles/traefik/tasks/routing.yml",
                          "roles/service/tasks/files.yml", *_DEFINE],
    "traefik_run": ["roles/service/tasks/run.yml"],
    # The drop-ins are written before the packages exist (their postinst starts them).
    "monitoring_install": ["roles/monitoring/tasks/install", "roles/release/", *_DEFINE],
    "monitoring_configure": ["roles/monitoring/tasks/configure.yml", "roles/service/tasks/files.yml", *_DEFINE],
    "monitoring_run": ["roles/monitoring/tasks/run.yml", "roles/service/tasks/run.yml"],
}
ANY_PHASE = ("playbooks/", "/tasks/platform.yml", "/tasks/preflight.yml")


@pytest.fixture(scope="module")
def tag_runs(tmp_path_factory):
    """site.yml --check --tags TAG for every phase tag (the host is converged:
    check mode changes nothing), three at a time, each recording the file of
    every task that started (tests/callback/task_paths.py)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    tmp = tmp_path_factory.mktemp("tags")

    def run(tag):
        paths_file = tmp / tag
        result = converge("--check", "--tags", tag, env={
            "CCPROXY_TASK_PATHS_FILE": str(paths_file),
            "ANSIBLE_CALLBACK_PLUGINS": str(root / "tests" / "callback"),
            "ANSIBLE_CALLBACKS_ENABLED": "task_paths"})
        started = paths_file.read_text().split() if paths_file.exists() else []
        return result, [p.split(str(root) + "/", 1)[-1].rsplit(":", 1)[0] for p in started]
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(PHASES, pool.map(run, PHASES)))


@pytest.mark.parametrize("tag", PHASES)
def test_each_phase_tag_runs_its_phase_and_nothing_else(tag, tag_runs):
    run, started = tag_runs[tag]
    assert run.returncode == 0, run.stdout[-3000:]
    role = tag.rsplit("_", 1)[0]
    dispatcher = f"roles/{role}/tasks/main.yml"
    mine = [p for p in started if any(p.startswith(f) for f in PHASES[tag])]
    assert mine, f"{tag} ran none of its phase's tasks: {sorted(set(started))}"
    others = [p for p in started
              if p not in mine and p != dispatcher and not any(a in p for a in ANY_PHASE)]
    assert not others, f"{tag} ran tasks of another phase: {sorted(set(others))}"
