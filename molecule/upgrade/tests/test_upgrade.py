"""playbooks/upgrade.yml on this scenario's converged host, which runs the
older releases the test mirror serves (host_vars/, tests/mirror/releases.yml):

1. upgrade to the pinned releases while openai-SDK clients send chat
   completions, LiteLLM first, then Traefik (not one failed request, even
   without retries), then Ollama (none for clients with the SDK's default
   retries; the window without retries is printed);
2. upgrade each of Traefik, Ollama and LiteLLM to a deliberately broken
   release (tests/mirror/build_mirror.py): the play fails with a message that
   names the component, the version and the failed check, and the previous
   release is back and serving (the broken Traefik never served: not one
   request failed); the release kept for the rollback survives pruning.

The releases live side by side: /opt/<component>/<version> switched in by
/opt/<component>/current, and LiteLLM's venvs/<version> by its venv link."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from gateway.load import ChatLoad

ROOT = Path(__file__).resolve().parents[3]
RELEASES = yaml.safe_load((ROOT / "tests" / "mirror" / "releases.yml").read_text())
PINNED = {c: yaml.safe_load((ROOT / "roles" / c / "defaults" / "main.yml").read_text())[f"{c}_version"]
          for c in ("ollama", "traefik", "litellm")}
MODEL = "qwen-fast"
# Where each component's releases live, and the link that switches them.
LAYOUT = {
    "ollama": ("/opt/ollama", "/opt/ollama/current"),
    "traefik": ("/opt/traefik", "/opt/traefik/current"),
    "litellm": ("/opt/ccproxy/litellm/venvs", "/opt/ccproxy/litellm/venv"),
}
BROKEN = {
    "ollama": PINNED["ollama"] + RELEASES["broken_suffix"],
    "traefik": PINNED["traefik"] + RELEASES["broken_suffix"],
    "litellm": f"{PINNED['litellm']}+{RELEASES['broken_suffix'].lstrip('-')}",
}
# The broken LiteLLM comes with its own hash lock, and pip needs its directory.
# As JSON: key=value extra vars would split the pip arguments at the spaces.
BROKEN_ARGS = {
    "litellm": ["-e", json.dumps({
        "litellm_requirements_file": f"{ROOT}/.cache/mirror/litellm/requirements-{BROKEN['litellm']}.txt",
        "litellm_pip_extra_args": "--no-index --find-links {{ ccproxy_test_mirror_url }}/wheels/"
                                  " --find-links {{ ccproxy_test_mirror_url }}/litellm/",
        # It never answers: fail its restart sooner than production's 120 s.
        "litellm_start_timeout": 45,
    })],
}
# The check each broken release fails: it started, and then did not serve.
FAILED_CHECK = {
    # The new release never takes over: the running one keeps serving.
    "traefik": "Check the new Traefik served beside the running one",
    "ollama": "Preload models so the first request does not pay the load",
    "litellm": "Wait until it is alive, litellm",
}


def upgrade(*extra):
    """upgrade.yml with every component at its pin, unless `extra` says
    otherwise (the scenario's inventory pins the older releases)."""
    pins = [f"-e{c}_version={PINNED[c]}" for c in RELEASES["older"]]
    extra = (*pins, *extra)  # later -e wins
    start = time.monotonic()
    out = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "-e", f"@{os.environ['CCPROXY_EXTRA_VARS']}", *extra,
         str(ROOT / "playbooks" / "upgrade.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    return out, time.monotonic() - start


def running(host, component):
    return os.path.basename(host.check_output(f"readlink -f {LAYOUT[component][1]}"))


def releases(host, component):
    root = LAYOUT[component][0]
    return set(host.check_output(f"find {root} -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'").split())


def test_the_scenario_runs_the_older_releases(host):
    for component, version in RELEASES["older"].items():
        assert running(host, component) == version, component


def under_load(gateway, *extra):
    """upgrade(*extra) while two openai-SDK clients send chat completions:
    one with the SDK's default retries, one with none (every failed attempt
    counts). Returns the run and both loads."""
    sdk = ChatLoad(gateway, gateway.token("demo"), MODEL, max_retries=2)
    raw = ChatLoad(gateway, gateway.token("ci-probe"), MODEL, max_retries=0)
    sdk.start(), raw.start()
    time.sleep(2)
    try:
        out, seconds = upgrade(*extra)
    finally:
        sdk.finish(), raw.finish()
    print(f"upgrade {extra or 'to the pins'} took {seconds:.0f} s; SDK default retries: {sdk.summary()}; "
          f"no retries: {raw.summary()}")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    # The clients were served before, during and after the upgrade.
    assert sdk.ok > 0 and raw.ok > 0
    return out, sdk, raw


def upgraded(host, out, component):
    older, version = RELEASES["older"][component], PINNED[component]
    assert f"{component}: {older} -> {version}" in out.stdout
    assert running(host, component) == version
    # Side by side: the release it came from stays, for a rollback.
    assert {older, version} <= releases(host, component)


def test_litellm_upgrades_under_load_without_a_failed_request(host, gateway):
    # Traefik and Ollama stay at the older releases for now.
    older = [f"-e{c}_version={RELEASES['older'][c]}" for c in ("traefik", "ollama")]
    out, sdk, raw = under_load(gateway, *older)
    upgraded(host, out, "litellm")
    # Its instances restart one at a time behind Traefik's health-checked
    # load balancer: not one attempt fails, retries or not.
    assert not sdk.failed and not raw.failed, (sdk.summary(), raw.failed[:5])


def test_traefik_upgrades_under_load_without_a_failed_request(host, gateway):
    out, sdk, raw = under_load(gateway, f"-eollama_version={RELEASES['older']['ollama']}")
    upgraded(host, out, "traefik")
    # The new Traefik serves beside the old one on the same port (reusePort)
    # while the old one drains and restarts, then drains itself and stops:
    # not one attempt fails, retries or not.
    assert not sdk.failed and not raw.failed, (sdk.summary(), raw.failed[:5])
    assert "Restart the running Traefik while the new one serves" in out.stdout
    assert host.run("systemctl is-active traefik-handover").stdout.strip() == "inactive"


def test_ollama_upgrades_under_load(host, gateway):
    out, sdk, raw = under_load(gateway)
    upgraded(host, out, "ollama")
    # It restarts in place, and LiteLLM retries on the one model host with a
    # backoff (litellm_num_retries) that spans the restart: not one attempt
    # fails, retries or not.
    assert not sdk.failed and not raw.failed, (sdk.summary(), raw.failed[:5])
    # Ollama's new release started keeping every blob (OLLAMA_NOPRUNE, from a
    # drop-in that is gone again), beside a copy of the manifests it started with.
    assert not host.file("/etc/systemd/system/ollama.service.d/upgrade-noprune.conf").exists
    environ = subprocess.run(
        ["podman", "exec", "--privileged", host.backend.name, "sh", "-c",
         "tr '\\0' '\\n' < /proc/$(systemctl show --property=MainPID --value ollama)/environ"],
        capture_output=True, text=True, check=True).stdout.split()
    assert "OLLAMA_NOPRUNE=1" in environ
    assert host.run("diff -r /var/lib/ollama/models/manifests /var/lib/ollama/manifests-before-upgrade").rc == 0


@pytest.mark.parametrize("component", ["traefik", "ollama", "litellm"])
def test_a_broken_release_is_rolled_back(host, gateway, component):
    broken = BROKEN[component]
    # A broken Traefik never takes a request: clients see nothing of it.
    load = ChatLoad(gateway, gateway.token("ci-probe"), MODEL, max_retries=0)
    if component == "traefik":
        load.start()
    # Keep two releases: pruning must spare the one the rollback needs.
    try:
        out, _ = upgrade(f"-e{component}_version={broken}", "-eccproxy_releases_keep=2",
                         *BROKEN_ARGS.get(component, []))
    finally:
        if component == "traefik":
            load.finish()
            print(f"broken Traefik release, no retries: {load.summary()}")
    if component == "traefik":
        assert load.ok > 0 and not load.failed, (load.summary(), load.failed[:5])
    assert out.returncode != 0, out.stdout[-3000:]
    text = " ".join((out.stdout + out.stderr).split())
    assert (f"Upgrade of {component} on {host.backend.hostname} from {PINNED[component]} to {broken} "
            f'failed the check "{FAILED_CHECK[component]}"') in text, text[-3000:]
    assert f"Rolled back to {component} {PINNED[component]}, which passed its health checks" in text
    assert running(host, component) == PINNED[component]
    assert releases(host, component) == {PINNED[component], broken}
    # Serving again, for a real client.
    load = ChatLoad(gateway, gateway.token("demo"), MODEL, max_retries=0)
    load.start()
    time.sleep(3)
    load.finish()
    assert load.ok > 0 and not load.failed, load.summary()


def test_check_mode_shows_an_upgrade_and_changes_nothing(host):
    older = RELEASES["older"]["traefik"]  # pruned by now: it would be downloaded again
    before = {c: running(host, c) for c in LAYOUT}
    out, _ = upgrade("--check", "--diff", f"-etraefik_version={older}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"traefik: {PINNED['traefik']} -> {older}" in out.stdout
    assert "Would download " in out.stdout and f"traefik_v{older}_linux_amd64.tar.gz" in out.stdout
    assert {c: running(host, c) for c in LAYOUT} == before
    assert older not in releases(host, "traefik")
