"""rotate-token.yml under load: zero failed requests, the new token works at
once, the old one until the grace period ends and 401 after it, a second
rotation works, the vault stays encrypted, no token in the playbook output."""
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]
# The grace period runs from the start of the rotation; the run takes about 10 s
# on an idle 2-core machine and longer under the load loop.
GRACE = 45
# Each load thread sends at most this many requests per second: load that
# leaves the machine able to run the rotation itself.
LOAD_RPS = 10


def rotate(gateway, lifted_limits=True):
    """Run rotate-token.yml; lifted_limits keeps the scenario's lifted rate
    limit (the edge is re-rendered with whatever limits the run has)."""
    start = time.monotonic()
    limits = ["-e", f"@{os.environ['CCPROXY_EXTRA_VARS']}"] if lifted_limits else []
    out = subprocess.run(
        [
            "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *limits,
            "-e", f"ccproxy_token_grace_seconds={GRACE}",
            str(ROOT / "playbooks" / "rotate-token.yml"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr, time.monotonic() - start


def status(gateway, token):
    with httpx.Client(verify=gateway.ssl_context(), timeout=10) as c:
        return c.get(gateway.base_url + "/models", headers={"Authorization": f"Bearer {token}"}).status_code


class Load(threading.Thread):
    """Keeps sending requests with one token until stopped; counts outcomes."""

    def __init__(self, gateway, token):
        super().__init__(daemon=True)
        self.gateway, self.token = gateway, token
        self.stop, self.ok, self.failed = threading.Event(), 0, []

    def run(self):
        with httpx.Client(verify=self.gateway.ssl_context(), timeout=30) as c:
            deadline = time.monotonic() + 240  # bounded even if never stopped
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.get(self.gateway.base_url + "/models", headers={"Authorization": f"Bearer {self.token}"})
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                self.stop.wait(1 / LOAD_RPS)


def vault_entries(gateway):
    out = subprocess.run(
        ["ansible-vault", "view", str(gateway.state_dir / "vault.yml")],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    import yaml
    return yaml.safe_load(out)["ccproxy_client_tokens"]


def test_rotation_under_load(gateway, gateway2):
    """Both gateway nodes carry the load; the rotation deploys the new tokens
    to both before it hands them out."""
    old = {c: gateway.token(c) for c in ("demo", "ci-probe")}
    assert all(status(gw, t) == 200 for t in old.values() for gw in (gateway, gateway2))

    loads = ([Load(gateway, old["demo"]) for _ in range(2)] + [Load(gateway2, old["demo"])]
             + [Load(gateway2, old["ci-probe"])])
    for load in loads:
        load.start()
    time.sleep(1)
    output, took = rotate(gateway)
    rotated_at = time.monotonic()
    time.sleep(1)
    for load in loads:
        load.stop.set()
        load.join()
    sent = sum(load.ok + len(load.failed) for load in loads)
    failed = [f for load in loads for f in load.failed]

    new = {c: gateway.token(c) for c in old}
    metrics = {"rotation_seconds": round(took, 1), "requests_sent": sent, "requests_failed": len(failed)}
    (gateway.state_dir / "rotation-metrics.json").write_text(json.dumps(metrics) + "\n")
    print(metrics)

    assert not failed, failed[:10]
    assert sent > 100
    for client in old:
        assert new[client] != old[client]
        for gw in (gateway, gateway2):
            assert status(gw, new[client]) == 200
            assert status(gw, old[client]) == 200, "old token must work during the grace period"
        assert old[client] not in output and new[client] not in output, "token in playbook output"
    assert (gateway.state_dir / "vault.yml").read_text().startswith("$ANSIBLE_VAULT;")
    assert oct((gateway.state_dir / "tokens" / "demo.token").stat().st_mode & 0o777) == "0o600"

    # The grace period ends by itself: no playbook run in between.
    while status(gateway, old["demo"]) == 200:
        assert time.monotonic() - rotated_at < GRACE + 5, "old token still accepted long after its grace period"
        time.sleep(0.5)
    # Not before it was due: the expiry was set near the start of the run.
    assert time.monotonic() - rotated_at >= GRACE - took - 1
    for gw in (gateway, gateway2):
        assert status(gw, old["demo"]) == 401
        assert status(gw, new["demo"]) == 200

    # A second rotation works and prunes the expired entries from the vault.
    output2, _ = rotate(gateway)
    newer = {c: gateway.token(c) for c in old}
    for client in old:
        assert newer[client] not in (old[client], new[client])
        assert status(gateway, newer[client]) == 200
        assert status(gateway, new[client]) == 200
        assert newer[client] not in output2 and new[client] not in output2
    entries = vault_entries(gateway)
    tokens_in_vault = {e["token"] for e in entries}
    assert not tokens_in_vault & set(old.values()), "expired tokens were not pruned"
    assert set(new.values()) | set(newer.values()) == tokens_in_vault


def test_rotated_tokens_only_as_hashes_on_host(host, gateway):
    tokens = host.file("/etc/traefik/tokens.json").content_string
    token = gateway.token("demo")
    assert token not in tokens
    assert token not in host.file("/etc/traefik/dynamic/ccproxy.yml").content_string
    import hashlib
    assert hashlib.sha256(token.encode()).hexdigest() in tokens
    assert token not in host.file("/var/log/traefik/access.log").content_string


# The scheduled rotation runs as the user Ansible connects as (Molecule: the
# unprivileged sudo user `admin`), with its state in that user's home.
SCHEDULE_STATE = "/home/admin/.ccproxy"


def run_schedule(extra=()):
    return subprocess.run(
        [
            "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            "-e", "ccproxy_rotation_controller=" + os.environ["CCPROXY_ROTATION_HOST"],
            "-e", f"rotation_schedule_vault_password_file={SCHEDULE_STATE}/vault-password",
            *extra, str(ROOT / "playbooks" / "schedule-rotation.yml"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_schedule_installs_a_quarterly_timer_and_failures_show(host):
    """The container stands in for a Linux control node with systemd."""
    first = run_schedule()
    assert first.returncode == 0, first.stdout[-3000:]
    again = run_schedule()
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]

    timer = host.service("ccproxy-rotate-token.timer")
    assert timer.is_enabled and timer.is_running
    cal = host.run("systemctl show -p TimersCalendar ccproxy-rotate-token.timer").stdout
    assert "*-01,04,07,10-01 03:00:00" in cal
    nxt = host.run("systemd-analyze calendar --iterations=4 '*-01,04,07,10-01 03:00:00'").stdout
    import re
    months = sorted(set(re.findall(r"(?:Next elapse|Iter\. #\d): \w+ \d{4}-(\d{2})-01 03:00:00", nxt)))
    assert months == ["01", "04", "07", "10"], nxt

    # This control node has no repo nor ansible: a run fails, and it shows.
    run = host.run("systemctl start ccproxy-rotate-token.service")
    assert run.rc != 0
    assert host.run("systemctl is-failed ccproxy-rotate-token.service").stdout.strip() == "failed"
    status = host.file(f"{SCHEDULE_STATE}/rotate-token.prom").content_string
    assert "ccproxy_token_rotation_last_run_success 0" in status
    assert host.file(f"{SCHEDULE_STATE}/rotate-token.log").contains("rotation finished rc=")


class Saturate(threading.Thread):
    """A client at its own rate limit: as fast as it can, with whatever token
    its token file holds at the moment (so it switches when the file does)."""

    def __init__(self, gateway, client):
        super().__init__(daemon=True)
        self.gateway, self.client = gateway, client
        self.stop, self.statuses = threading.Event(), []

    def run(self):
        with httpx.Client(verify=self.gateway.ssl_context(), timeout=30) as c:
            deadline = time.monotonic() + 240
            while not self.stop.is_set() and time.monotonic() < deadline:
                token = self.gateway.token(self.client)
                try:
                    r = c.get(self.gateway.base_url + "/models", headers={"Authorization": f"Bearer {token}"})
                    self.statuses.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.statuses.append(repr(exc))


def test_rotation_never_locks_out_a_client_at_its_rate_limit(gateway):
    """The reviewed lockout: a rotation while the client saturates its own
    rate limit (the default limits, not the scenario's lifted ones). The
    rotation's own check gets 429 too, which proves the new token
    authenticated; the client never sees 401 or 403."""
    old = gateway.token("demo")
    loads = [Saturate(gateway, "demo") for _ in range(2)]
    for load in loads:
        load.start()
    try:
        time.sleep(2)
        _, took = rotate(gateway, lifted_limits=False)
        time.sleep(2)
    finally:
        for load in loads:
            load.stop.set()
            load.join()
    statuses = [s for load in loads for s in load.statuses]
    locked_out = [s for s in statuses if s in (401, 403)]
    print({"rotation_seconds": round(took, 1), "requests": len(statuses),
           "rate_limited": statuses.count(429), "locked_out": len(locked_out)})
    assert statuses.count(429) > 0, "the client never reached its rate limit: the test proves nothing"
    assert not locked_out, locked_out[:10]
    assert not [s for s in statuses if s not in (200, 429)], statuses[:20]
    new = gateway.token("demo")
    assert new != old
    for token in (new, old):
        assert status(gateway, token) in (200, 429), "both tokens must authenticate during the grace period"


def test_overlapping_rotations_wait_for_each_other(gateway):
    """Two rotations at once (the timer's catch-up and a manual run) are
    serialized by the lock: both succeed, each client ends with one working token."""
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: rotate(gateway), range(2)))
    outputs = [out for out, _ in runs]
    waited = [out for out in outputs if re.search(r"RETRYING: \[[^]]*\]: Take the vault lock", out)]
    assert len(waited) == 1, "exactly one of the two runs must have waited for the lock"
    for client in ("demo", "ci-probe"):
        assert status(gateway, gateway.token(client)) == 200
    # Both let go of the lock, as init-secrets.yml (prepare) did before them.
    assert not (gateway.state_dir / "vault.yml.rotation-lock").exists()
    entries = vault_entries(gateway)
    for client in ("demo", "ci-probe"):
        current = [e for e in entries if e["name"] == client and not e.get("expires")]
        assert len(current) == 1, f"{client}: {len(current)} tokens without a deadline"


TEXTFILE = "/var/lib/prometheus/node-exporter"


def rotation_metrics(host):
    out = host.run(f"cat {TEXTFILE}/ccproxy-rotation.prom {TEXTFILE}/ccproxy-rotation-success.prom")
    assert out.rc == 0, out.stderr
    return dict(line.split() for line in out.stdout.splitlines() if line and not line.startswith("#"))


def test_every_rotation_tells_monitoring_how_it_went(host, gateway):
    """rotate-token.yml itself writes its outcome to the monitoring host's textfile
    collector, a failed run included; the last success's time survives a failure.
    Runs last: the failed run is one the settings check refuses, changing nothing."""
    rotate(gateway)
    done = rotation_metrics(host)
    assert done["ccproxy_token_rotation_last_run_success"] == "1"
    assert abs(float(done["ccproxy_token_rotation_last_success_timestamp_seconds"]) - time.time()) < 300

    failed = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "-e", f"@{os.environ['CCPROXY_EXTRA_VARS']}", "-e", "ccproxy_token_grace_seconds=-1",
         str(ROOT / "playbooks" / "rotate-token.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert "The rotation failed at Check the rotation settings" in failed.stdout
    after = rotation_metrics(host)
    assert after["ccproxy_token_rotation_last_run_success"] == "0"
    assert after["ccproxy_token_rotation_last_success_timestamp_seconds"] == \
        done["ccproxy_token_rotation_last_success_timestamp_seconds"]

    # Prometheus has it, and the failing-rotation alert's expression holds.
    query = "ccproxy_token_rotation_last_run_success == 0"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        out = host.run(f"curl -s http://127.0.0.1:9090/api/v1/query --data-urlencode 'query={query}'")
        if json.loads(out.stdout)["data"]["result"]:
            break
        time.sleep(5)
    else:
        raise AssertionError("Prometheus never saw the failed rotation")
    for client in ("demo", "ci-probe"):
        assert status(gateway, gateway.token(client)) == 200
