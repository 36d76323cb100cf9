"""The macOS artifacts, rendered by the roles themselves (tests/playbooks/render-macos.yml)
and checked against launchd.plist(5), newsyslog.conf(5) and the config validators.
No Mac is needed: what only a real Mac can check is listed in the README."""
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/homebrew"
FAKE_SECRETS = ("FAKE-render-only-master-key", "FAKE-render-only-client-token")
SERVICES = ("ollama", "litellm", "traefik")

# launchd.plist(5): the keys ccproxy uses and the types launchd expects.
KEY_TYPES = {
    "Label": str, "ProgramArguments": list, "EnvironmentVariables": dict,
    "WorkingDirectory": str, "UserName": str, "RunAtLoad": bool, "KeepAlive": (bool, dict),
    "ThrottleInterval": int, "SoftResourceLimits": dict, "HardResourceLimits": dict,
    "StandardOutPath": str, "StandardErrorPath": str, "StartCalendarInterval": (dict, list),
}
CALENDAR_KEYS = {"Minute", "Hour", "Day", "Weekday", "Month"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, run_playbook):
    out = tmp_path_factory.mktemp("macos")
    run_playbook("tests/playbooks/render-macos.yml", ccproxy_render_root=out)
    return out


def load_plist(rendered, path):
    with open(rendered / path.lstrip("/"), "rb") as fh:
        return plistlib.load(fh)


def daemon(rendered, service):
    return load_plist(rendered, f"/Library/LaunchDaemons/com.ccproxy.{service}.plist")


def all_plists(rendered):
    return sorted(rendered.rglob("*.plist"))


def test_every_service_and_the_rotation_job_have_a_plist(rendered):
    names = {p.name for p in all_plists(rendered)}
    assert names == {f"com.ccproxy.{s}.plist" for s in SERVICES} | {"com.ccproxy.rotate-token.plist"}


@pytest.mark.parametrize("service", SERVICES)
def test_daemon_keys_and_types_follow_launchd_plist_5(rendered, service):
    job = daemon(rendered, service)
    assert set(job) <= set(KEY_TYPES), set(job) - set(KEY_TYPES)
    for key, value in job.items():
        assert isinstance(value, KEY_TYPES[key]), (key, type(value))
    assert job["Label"] == f"com.ccproxy.{service}"
    assert all(isinstance(a, str) for a in job["ProgramArguments"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in job.get("EnvironmentVariables", {}).items())
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] == {"Crashed": True, "SuccessfulExit": False}
    assert job["ThrottleInterval"] == 10
    for limits in ("SoftResourceLimits", "HardResourceLimits"):
        assert job[limits]["NumberOfFiles"] >= 1024
    assert job["UserName"] == "coder"
    assert job["StandardOutPath"].startswith(f"{PREFIX}/var/log/ccproxy/")
    assert job["StandardErrorPath"].startswith(f"{PREFIX}/var/log/ccproxy/")


def test_programs_come_from_homebrew_and_the_venv(rendered):
    assert daemon(rendered, "ollama")["ProgramArguments"] == [f"{PREFIX}/bin/ollama", "serve"]
    assert daemon(rendered, "traefik")["ProgramArguments"][0] == f"{PREFIX}/bin/traefik"
    args = daemon(rendered, "litellm")["ProgramArguments"]
    assert f"{PREFIX}/var/ccproxy/litellm/venv/bin/litellm" in args
    assert f"{PREFIX}/etc/ccproxy/litellm/litellm.env" in args
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert daemon(rendered, "traefik")["WorkingDirectory"] == f"{PREFIX}/var/ccproxy/traefik"


def test_ollama_environment_binds_loopback(rendered):
    env = daemon(rendered, "ollama")["EnvironmentVariables"]
    assert env["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert {"OLLAMA_KEEP_ALIVE", "OLLAMA_MODELS", "OLLAMA_FLASH_ATTENTION"} <= set(env)


def test_no_secret_in_any_plist(rendered):
    for path in all_plists(rendered):
        text = path.read_text()
        for secret in FAKE_SECRETS:
            assert secret not in text, f"{secret} in {path}"
        assert "MASTER_KEY" not in text


def test_secret_only_in_the_0600_env_file(rendered):
    env_file = rendered / f"{PREFIX}/etc/ccproxy/litellm/litellm.env".lstrip("/")
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert FAKE_SECRETS[0] in env_file.read_text()


def test_rotation_job_is_quarterly_and_not_kept_alive(rendered):
    job = load_plist(rendered, "/Users/coder/Library/LaunchAgents/com.ccproxy.rotate-token.plist")
    assert set(job) <= set(KEY_TYPES)
    assert "KeepAlive" not in job and job["RunAtLoad"] is False
    intervals = job["StartCalendarInterval"]
    assert all(set(i) <= CALENDAR_KEYS and all(isinstance(v, int) for v in i.values()) for i in intervals)
    assert sorted(i["Month"] for i in intervals) == [1, 4, 7, 10]


@pytest.mark.parametrize("service", SERVICES)
def test_newsyslog_entries(rendered, service):
    lines = [l for l in (rendered / f"etc/newsyslog.d/ccproxy-{service}.conf").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines
    for line in lines:
        path, owner, mode, count, size, when, flags = line.split()
        assert path.startswith(f"{PREFIX}/var/log/ccproxy/")
        assert owner == "coder:staff"
        assert mode == "640" and count.isdigit() and size.isdigit() and when == "*"


def test_rendered_traefik_configs_pass_the_validator(rendered):
    checker = ROOT / "roles/traefik/files/check_config.py"
    base = rendered / f"{PREFIX}/etc/ccproxy/traefik".lstrip("/")
    for kind, path in (("static", base / "traefik.yml"), ("dynamic", base / "dynamic/ccproxy.yml")):
        run = subprocess.run([sys.executable, str(checker), kind, str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    static = yaml.safe_load((base / "traefik.yml").read_text())
    assert static["providers"]["file"]["directory"] == f"{PREFIX}/etc/ccproxy/traefik/dynamic"


def test_rendered_litellm_config_serves_every_alias(rendered):
    config = yaml.safe_load((rendered / f"{PREFIX}/etc/ccproxy/litellm/config.yaml".lstrip("/")).read_text())
    models = yaml.safe_load((ROOT / "playbooks/group_vars/all/ccproxy.yml").read_text())["ccproxy_models"]
    assert {m["model_name"] for m in config["model_list"]} == {a for m in models for a in m["aliases"]}
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
