"""The macOS artifacts, rendered by the roles themselves (tests/playbooks/render-macos.yml)
and checked against launchd.plist(5), newsyslog.conf(5) and the config validators, with
the launchctl commands each service's run phase would start with; and the Homebrew
version guards of install-Darwin.yml, run by Ansible against stand-in binaries.
No Mac is needed: what only a real Mac can check is listed in the README."""
import json
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/homebrew"
FAKE_SECRETS = ("FAKE-render-only-master-key", "FAKE-render-only-client-token")
SETTINGS = yaml.safe_load((ROOT / "playbooks/group_vars/all/ccproxy.yml").read_text())
# LiteLLM runs as `litellm`, `litellm-2`, ... (ccproxy_litellm_instances).
LITELLM = ("litellm", *(f"litellm-{n}" for n in range(2, int(SETTINGS.get("ccproxy_litellm_instances", 1)) + 1)))
MONITORING = ("prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "grafana")
SERVICES = ("ollama", *LITELLM, "traefik", *MONITORING)

# launchd.plist(5): the keys ccproxy uses and the types launchd expects.
KEY_TYPES = {
    "Label": str, "ProgramArguments": list, "EnvironmentVariables": dict,
    "WorkingDirectory": str, "UserName": str, "RunAtLoad": bool, "KeepAlive": (bool, dict),
    "ThrottleInterval": int, "ExitTimeOut": int, "SoftResourceLimits": dict, "HardResourceLimits": dict,
    "StandardOutPath": str, "StandardErrorPath": str, "StartCalendarInterval": (dict, list),
}
CALENDAR_KEYS = {"Minute", "Hour", "Day", "Weekday", "Month"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, run_playbook):
    out = tmp_path_factory.mktemp("macos")
    run_playbook("tests/playbooks/render-macos.yml", ccproxy_render_root=out)
    return out


# Ollama kept off, LiteLLM running but not at boot, on a Mac where launchd runs every
# job (launchctl print says so) and nothing is disabled yet.
OFF = {
    "ollama_service_enabled": False,
    "ollama_service_state": "stopped",
    "litellm_service_enabled": False,
    "ccproxy_render_launchctl": {
        "print_rc": 0,
        "print_stdout": "system/com.ccproxy.x = {\n\tstate = running\n\tpid = 4711\n}\n",
        "disabled_stdout": "disabled services = {\n}\n",
    },
}


@pytest.fixture(scope="module")
def rendered_off(tmp_path_factory, run_playbook):
    out = tmp_path_factory.mktemp("macos-off")
    settings = out.parent / "macos-off.yml"
    settings.write_text(yaml.safe_dump(OFF))
    run_playbook("tests/playbooks/render-macos.yml", [settings], ccproxy_render_root=out)
    return out


def launchctl_plan(rendered, label):
    return json.loads((rendered / "launchctl-plan" / f"{label}.json").read_text())


def load_plist(rendered, path):
    with open(rendered / path.lstrip("/"), "rb") as fh:
        return plistlib.load(fh)


def daemon(rendered, service):
    return load_plist(rendered, f"/Library/LaunchDaemons/com.ccproxy.{service}.plist")


def all_plists(rendered):
    return sorted(rendered.rglob("*.plist"))


def test_every_service_and_the_rotation_job_have_a_plist(rendered):
    names = {p.name for p in all_plists(rendered)}
    assert names == {f"com.ccproxy.{s}.plist" for s in SERVICES} | {
        "com.ccproxy.rotate-token.plist", "com.ccproxy.ccproxy-watchdog.plist"}


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
    # Homebrew cannot pin Traefik: the pinned release archive's link in /opt.
    assert daemon(rendered, "traefik")["ProgramArguments"][0] == "/opt/traefik/traefik"
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


@pytest.mark.parametrize("service", (*SERVICES, "ccproxy-watchdog"))
def test_newsyslog_entries(rendered, service):
    lines = [l for l in (rendered / f"etc/newsyslog.d/ccproxy-{service}.conf").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines
    for line in lines:
        path, owner, mode, count, size, when, flags = line.split()
        assert path.startswith(f"{PREFIX}/var/log/ccproxy/")
        assert owner == ("root:wheel" if service == "ccproxy-watchdog" else "coder:staff")
        assert mode == "640" and count.isdigit() and size.isdigit() and when == "*"


def test_rendered_traefik_configs_pass_the_validator(rendered):
    checker = ROOT / "roles/traefik/files/check_config.py"
    base = rendered / f"{PREFIX}/etc/ccproxy/traefik".lstrip("/")
    for kind, path in (("static", base / "traefik.yml"), ("dynamic", base / "dynamic/ccproxy.yml"),
                       ("tokens", base / "tokens.json")):
        run = subprocess.run([sys.executable, str(checker), kind, str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    static = yaml.safe_load((base / "traefik.yml").read_text())
    assert static["providers"]["file"]["directory"] == f"{PREFIX}/etc/ccproxy/traefik/dynamic"
    dynamic = yaml.safe_load((base / "dynamic/ccproxy.yml").read_text())
    auth = dynamic["http"]["middlewares"]["token-auth"]["plugin"]["tokenauth"]
    assert auth["tokensFile"] == f"{PREFIX}/etc/ccproxy/traefik/tokens.json"


def test_traefik_on_macos_restarts_in_place_with_a_drain(rendered):
    """launchd restarts Traefik in place: no handover config or job, and
    launchd waits out the drain (traefik_drain_timeout) before it kills."""
    base = rendered / f"{PREFIX}/etc/ccproxy/traefik".lstrip("/")
    static = yaml.safe_load((base / "traefik.yml").read_text())
    assert static["entryPoints"]["websecure"]["transport"]["lifeCycle"]["graceTimeOut"] == "300s"
    assert not (base / "traefik-handover.yml").exists()
    assert not any("handover" in p.name for p in all_plists(rendered))
    assert daemon(rendered, "traefik")["ExitTimeOut"] == 330
    # Jobs that set no stop timeout keep launchd's own.
    assert "ExitTimeOut" not in daemon(rendered, "ollama")


def test_upgrades_on_macos_switch_releases_and_roll_back_except_homebrew_ollama(rendered):
    """What playbooks/upgrade.yml reads on a Mac (each role's tasks_from:
    release): LiteLLM's venvs and Traefik's release archives live side by side
    and switch by a link, so a failed upgrade switches back; Homebrew keeps no
    earlier Ollama, so its failed upgrade says it was not rolled back."""
    plan = json.loads((rendered / "upgrade-plan.json").read_text())
    assert plan["traefik"]["rollback"] is True
    assert plan["traefik"]["link"] == plan["traefik"]["root"] + "/current" == "/opt/traefik/current"
    assert plan["litellm"]["rollback"] is True
    assert plan["litellm"]["link"].startswith(PREFIX) and plan["litellm"]["root"].startswith(PREFIX)
    assert plan["ollama"]["rollback"] is False
    defaults = {c: yaml.safe_load((ROOT / "roles" / c / "defaults" / "main.yml").read_text())[f"{c}_version"]
                for c in plan}
    assert {c: plan[c]["version"] for c in plan} == defaults


def test_rendered_litellm_config_serves_every_alias_and_pattern(rendered):
    config = yaml.safe_load((rendered / f"{PREFIX}/etc/ccproxy/litellm/config.yaml".lstrip("/")).read_text())
    models = yaml.safe_load((ROOT / "playbooks/group_vars/all/ccproxy.yml").read_text())["ccproxy_models"]
    served = {m["model_name"]: m["litellm_params"]["model"] for m in config["model_list"]}
    assert served == {name: f"ollama_chat/{m['name']}"
                      for m in models for name in m["aliases"] + m.get("patterns", [])}
    assert "claude-*" in served  # Claude Code's default names
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert config["litellm_settings"]["callbacks"][0] == "ccproxy_litellm.proxy.handler"
    plist = plistlib.loads((rendered / "Library/LaunchDaemons/com.ccproxy.litellm.plist").read_bytes())
    assert plist["EnvironmentVariables"]["PYTHONPATH"] == f"{PREFIX}/var/ccproxy/litellm/lib"


# --- what launchctl is told ------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_fresh_mac_bootstraps_each_daemon_as_root(rendered, service):
    label = f"com.ccproxy.{service}"
    assert launchctl_plan(rendered, label) == {
        "target": f"system/{label}", "become": True,
        "commands": [["launchctl", "bootstrap", "system", f"/Library/LaunchDaemons/{label}.plist"]],
    }


def test_the_rotation_agent_loads_in_the_operators_gui_domain_without_root(rendered):
    label = "com.ccproxy.rotate-token"
    assert launchctl_plan(rendered, label) == {
        "target": f"gui/501/{label}", "become": False,
        "commands": [["launchctl", "bootstrap", "gui/501", f"/Users/coder/Library/LaunchAgents/{label}.plist"]],
    }


def test_service_state_and_enabled_reach_launchctl(rendered_off):
    assert launchctl_plan(rendered_off, "com.ccproxy.ollama")["commands"] == [
        ["launchctl", "bootout", "system/com.ccproxy.ollama"],
        ["launchctl", "disable", "system/com.ccproxy.ollama"],
    ]
    for name in LITELLM:
        assert launchctl_plan(rendered_off, f"com.ccproxy.{name}")["commands"] == [
            ["launchctl", "disable", f"system/com.ccproxy.{name}"],
        ]
    # Running, enabled, nothing to do.
    assert launchctl_plan(rendered_off, "com.ccproxy.traefik")["commands"] == []
    assert launchctl_plan(rendered_off, "com.ccproxy.rotate-token")["commands"] == []


def test_a_service_kept_off_keeps_its_plist_as_it_is(rendered, rendered_off):
    # Not starting at boot is launchd's override database (launchctl disable), not a plist
    # key: KeepAlive's SuccessfulExit implies RunAtLoad. The plist stays, unchanged.
    for path in all_plists(rendered):
        assert (rendered_off / path.relative_to(rendered)).read_bytes() == path.read_bytes(), path.name
    job = daemon(rendered_off, "ollama")
    assert job["RunAtLoad"] is True and "Disabled" not in job


# --- Version guards: Ollama (Homebrew) and the release role (Traefik) -----------------------
# Homebrew installs its current release. Each guard task is run as the role has it, with
# its binary replaced by a script printing a given `--version` output.

FAKE_BINARY = """#!/bin/sh
printf '%s\n' "$FAKE_VERSION_OUTPUT"
exit "${FAKE_VERSION_RC:-0}"
"""

OLLAMA_CASES = [
    ("ollama version is 0.12.6", 0, True),
    ("ollama version is 0.13.2", 0, True),
    # `ollama --version` with no server running.
    ("Warning: could not connect to a running Ollama instance\nWarning: client version is 0.12.6", 0, True),
    # Same major version (0) and older: the guard before 42f0280 let these through.
    ("ollama version is 0.11.10", 0, False),
    ("ollama version is 0.1.0", 0, False),
    ("ollama version is 0.12.5", 0, False),
    ("", 0, False),
    ("ollama version is 0.12.6", 1, False),
]
TRAEFIK_OUTPUT = """Version:      {}
Codename:     ramequin
Go version:   go1.24.4
Built:        2026-10-01T10:00:00Z
OS/Arch:      darwin/arm64"""
TRAEFIK_CASES = [
    (TRAEFIK_OUTPUT.format("3.7.15"), 0, True),
    (TRAEFIK_OUTPUT.format("v3.7.15"), 0, True),
    (TRAEFIK_OUTPUT.format("3.7.14"), 0, False),
    (TRAEFIK_OUTPUT.format("2.11.30"), 0, False),
    (TRAEFIK_OUTPUT.format("4.0.0"), 0, False),
    # Exactly the pinned release: a newer one is refused too.
    (TRAEFIK_OUTPUT.format("3.8.0"), 0, False),
    (TRAEFIK_OUTPUT.format("3.7.150"), 0, False),
    ("", 0, False),
    (TRAEFIK_OUTPUT.format("3.7.15"), 1, False),
]
GUARDS = {
    # role: (the task file, the guard's register, its vars with the binary as {binary}, cases)
    "ollama": ("roles/ollama/tasks/install-Darwin.yml", "__ollama_version_out",
               {"_ollama_bin": "{binary}", "ollama_version": "0.12.6"}, OLLAMA_CASES),
    # Traefik comes from its release archive on macOS too: role release's check.
    "traefik": ("roles/release/tasks/main.yml", "__release_version",
                {"_release_spec": {"link": "{binary}", "version_args": ["version"], "version": "3.7.15"}},
                TRAEFIK_CASES),
}


def case_values(case):
    return case.values if hasattr(case, "values") else case


@pytest.fixture(scope="module")
def guard_verdicts(tmp_path_factory, run_playbook):
    """{role: [accepted?, ...]} in the order of the role's cases."""
    tmp = tmp_path_factory.mktemp("guards")
    binary = tmp / "fake-binary"
    binary.write_text(FAKE_BINARY)
    binary.chmod(0o755)
    tasks = []
    for role, (task_file, register, guard_vars, cases) in GUARDS.items():
        guard = next(t for t in yaml.safe_load((ROOT / task_file).read_text()) if t.get("register") == register)
        guard_vars = json.loads(json.dumps(guard_vars).replace("{binary}", str(binary)))
        for number, case in enumerate(cases):
            output, rc, _ = case_values(case)
            # Only the check itself: its `when` reads facts of earlier tasks.
            tasks.append({k: v for k, v in guard.items() if k != "when"} | {
                "name": f"{role} case {number}",
                "vars": guard.get("vars", {}) | guard_vars,
                "environment": {"FAKE_VERSION_OUTPUT": output, "FAKE_VERSION_RC": str(rc)},
                "ignore_errors": True,
            })
            tasks.append({"ansible.builtin.set_fact": {"verdicts": f"{{{{ verdicts + [{register} is not failed] }}}}"}})
    tasks.append({"ansible.builtin.copy": {"content": "{{ verdicts | to_json }}", "dest": str(tmp / "verdicts.json"),
                                           "mode": "0644"}})
    playbook = tmp / "guards.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Version guards", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", "verdicts": []},
        "tasks": tasks,
    }], sort_keys=False))
    run_playbook(str(playbook))
    verdicts = iter(json.loads((tmp / "verdicts.json").read_text()))
    return {role: [next(verdicts) for _ in cases] for role, (*_, cases) in GUARDS.items()}


@pytest.mark.parametrize("output, rc, accepted", OLLAMA_CASES)
def test_ollama_guard(guard_verdicts, output, rc, accepted):
    index = [case_values(c)[:2] for c in OLLAMA_CASES].index((output, rc))
    assert guard_verdicts["ollama"][index] is accepted


@pytest.mark.parametrize("output, rc, accepted", TRAEFIK_CASES)
def test_traefik_guard(guard_verdicts, output, rc, accepted):
    index = [case_values(c)[:2] for c in TRAEFIK_CASES].index((output, rc))
    assert guard_verdicts["traefik"][index] is accepted


# --- monitoring and Grafana ------------------------------------------------------------

MONITORING_DIR = f"{PREFIX}/etc/ccproxy/monitoring"


def monitoring_file(rendered, name):
    return rendered / f"{MONITORING_DIR}/{name}".lstrip("/")


def test_every_monitoring_daemon_listens_on_loopback_only(rendered):
    for service in MONITORING:
        args = daemon(rendered, service)["ProgramArguments"]
        listen = [a for a in args if a.startswith("--web.listen-address=")]
        if service == "grafana":
            ini = monitoring_file(rendered, "grafana/grafana.ini").read_text()
            assert "\nhttp_addr = 127.0.0.1\n" in ini
        else:
            assert listen and all(a.split("=", 1)[1].startswith("127.0.0.1:") for a in listen), args
    # A single Alertmanager: no cluster port at all.
    assert "--cluster.listen-address=" in daemon(rendered, "alertmanager")["ProgramArguments"]


def test_the_watchdog_runs_each_minute_as_root_to_restart_daemons(rendered):
    job = daemon(rendered, "ccproxy-watchdog")
    assert job["StartCalendarInterval"] == [{}] and job["RunAtLoad"] is False
    assert "UserName" not in job and "KeepAlive" not in job
    checks = json.loads(monitoring_file(rendered, "watchdog.json").read_text())["checks"]
    assert {c["name"] for c in checks} == {"ollama", *LITELLM, "traefik"}
    for check in checks:
        assert check["restart"] == ["launchctl", "kickstart", "-k", f"system/com.ccproxy.{check['name']}"]


def test_grafanas_secret_stays_in_its_config(rendered):
    ini = monitoring_file(rendered, "grafana/grafana.ini")
    assert 'admin_password = """FAKE-render-only-grafana-password"""' in ini.read_text()
    for path in all_plists(rendered):
        assert "FAKE-render-only-grafana" not in path.read_text()


# Grafana's provisioning format: the fields of its provisioning structs
# (pkg/services/provisioning/datasources/types.go upsertDataSourceFromConfig,
# dashboards/types.go DashboardProviderConfigs), apiVersion 1.
DATASOURCE_FIELDS = {
    "name": str, "type": str, "access": str, "orgId": int, "uid": str, "url": str, "user": str,
    "database": str, "basicAuth": bool, "basicAuthUser": str, "withCredentials": bool,
    "isDefault": bool, "jsonData": dict, "secureJsonData": dict, "version": int, "editable": bool,
}
PROVIDER_FIELDS = {
    "name": str, "type": str, "orgId": int, "folder": str, "folderUid": str, "editable": bool,
    "options": dict, "disableDeletion": bool, "updateIntervalSeconds": int, "allowUiUpdates": bool,
}


def check_fields(entry, fields):
    assert set(entry) <= set(fields), set(entry) - set(fields)
    for key, value in entry.items():
        assert isinstance(value, fields[key]), (key, value)


@pytest.fixture(scope="module")
def provisioning(rendered):
    base = monitoring_file(rendered, "grafana/provisioning")
    return {kind: yaml.safe_load((base / kind / "ccproxy.yaml").read_text()) for kind in ("datasources", "dashboards")}


def test_grafana_datasource_provisioning_format(provisioning):
    config = provisioning["datasources"]
    assert set(config) == {"apiVersion", "datasources"} and config["apiVersion"] == 1
    (source,) = config["datasources"]
    check_fields(source, DATASOURCE_FIELDS)
    assert {"name", "type", "url"} <= set(source)
    assert source["type"] == "prometheus" and source["access"] in ("proxy", "direct")
    assert source["url"] == "http://127.0.0.1:9090" and source["isDefault"] is True


def test_grafana_dashboard_provisioning_format(rendered, provisioning):
    config = provisioning["dashboards"]
    assert set(config) == {"apiVersion", "providers"} and config["apiVersion"] == 1
    (provider,) = config["providers"]
    check_fields(provider, PROVIDER_FIELDS)
    assert provider["type"] == "file" and provider["name"]
    # The provider's path holds the dashboard.
    path = rendered / provider["options"]["path"].lstrip("/")
    assert [p.name for p in path.glob("*.json")] == ["ccproxy.json"]


@pytest.fixture(scope="module")
def dashboard(rendered):
    return json.loads(monitoring_file(rendered, "dashboards/ccproxy.json").read_text())


def test_dashboard_panels_use_the_provisioned_datasource(dashboard, provisioning):
    uid = provisioning["datasources"]["datasources"][0]["uid"]
    assert dashboard["title"] and dashboard["uid"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        assert all(t["datasource"]["uid"] == uid and t["expr"] for t in panel["targets"])


def test_dashboard_queries_parse(dashboard, tmp_path):
    # promtool parses PromQL offline only inside rules: one recording rule per query.
    if not shutil.which("promtool"):
        subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "promtool=prometheus"], check=True)
    rules = [{"record": f"panel{p['id']}:{t['refId']}", "expr": t["expr"].replace("$__rate_interval", "5m")}
             for p in dashboard["panels"] for t in p["targets"]]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
