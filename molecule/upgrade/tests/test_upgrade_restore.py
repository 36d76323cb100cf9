"""backup.yml and restore.yml: the archive is private and holds what the host
alone has (not the models), old archives are pruned, and after the host is
destroyed and built again from the image (Molecule's own destroy, create and
prepare), restore.yml gives back the same endpoint: the same server
certificate (site.yml alone would issue a new one), the same CA and the same
client tokens. Runs last: the host it leaves is a restored one."""
import os
import ssl
import stat
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[3]


def playbook(name, *args):
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args, str(ROOT / "playbooks" / name)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


def molecule(action):
    """A Molecule step on this scenario's host, as `make molecule` runs them."""
    run = subprocess.run(["molecule", action, "-s", os.environ["MOLECULE_SCENARIO_NAME"]],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (action, run.stdout[-3000:] + run.stderr[-3000:])


def served_certificate(gateway):
    origin = urlparse(gateway.origin)
    return ssl.get_server_certificate((origin.hostname, origin.port))


def test_backup_then_restore_onto_a_rebuilt_host_gives_back_the_same_endpoint(host, gateway):
    backups = gateway.state_dir / "backups"
    for _ in range(3):
        run = playbook("backup.yml", "-e", "ccproxy_backup_keep=2")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    archives = sorted(backups.rglob("*.tar.gz"))
    assert len(archives) == 2, archives
    assert stat.S_IMODE(archives[-1].parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(a.stat().st_mode) == 0o600 for a in archives)
    with tarfile.open(archives[-1]) as tar:
        names = set(tar.getnames())
    for member in ("etc/traefik/tls/server.key", "etc/traefik/tls/server.crt", "etc/ccproxy/litellm/litellm.env",
                   "etc/prometheus/alertmanager.yml", "var/lib/prometheus/alertmanager/silences"):
        assert member in names, member
    assert any(n.startswith("var/lib/ollama/models/manifests/") for n in names)
    assert not any("/blobs/" in n for n in names), "models do not belong in the backup"
    assert not any(n.endswith(("ca.key", "vault.yml")) for n in names), "the CA key and the vault stay with the operator"

    before = served_certificate(gateway)
    ca = (gateway.state_dir / "ca.crt").read_bytes()
    # A new host: the container destroyed, and another one made from the image.
    for action in ("destroy", "create", "prepare"):
        molecule(action)
    assert not host.file("/etc/traefik").exists and not host.file("/opt/ccproxy").exists
    run = playbook("restore.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert served_certificate(gateway) == before
    # The CA stayed with the operator and was not replaced: clients that
    # trust it (gateway.ssl_context() reads this file) verify the gateway.
    assert (gateway.state_dir / "ca.crt").read_bytes() == ca
    with httpx.Client(verify=gateway.ssl_context(), timeout=30) as client:
        for name in ("demo", "ci-probe"):
            reply = client.get(gateway.base_url + "/models", headers={"Authorization": f"Bearer {gateway.token(name)}"})
            assert reply.status_code == 200, (name, reply.status_code)
