"""Role `service` renders the shapes coming roles need (tests/playbooks/render-service-examples.yml):
a drop-in amending a package's unit, a second instance of a service, a timed job, a
service kept off, a per-user agent, on systemd and launchd, with the launchctl commands
each would start with on a fresh Mac. The gateway's own units are converged for real by
Molecule; what launchctl is told in every case is tests/unit/test_launchd_plan.py."""
import configparser
import json
import plistlib

import pytest

UNITS = "etc/systemd/system"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, run_playbook):
    out = tmp_path_factory.mktemp("services")
    run_playbook("tests/playbooks/render-service-examples.yml", render_root=out)
    return out


def unit(path):
    """A systemd unit file as {section: [(key, value), ...]} (keys repeat)."""
    sections, current = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def values(section, key):
    return [v for k, v in section if k == key]


def test_drop_in_amends_the_package_unit(rendered):
    path = rendered / "Linux" / UNITS / "prometheus.service.d/ccproxy.conf"
    service = unit(path)["Service"]
    # The package's ExecStart is cleared before ours, as systemd requires.
    assert values(service, "ExecStart") == ["", "/usr/bin/prometheus --web.listen-address=127.0.0.1:9090"]
    assert values(service, "MemoryDenyWriteExecute") == ["false"]
    assert values(service, "ProtectSystem") == ["strict"]
    assert values(service, "IPAddressDeny") == ["any"]
    assert values(service, "IPAddressAllow") == ["localhost"]
    assert "Install" not in unit(path), "a drop-in keeps the package's [Install]"
    assert not (rendered / "Linux" / UNITS / "prometheus.service").exists()


def test_a_named_drop_in_sets_only_what_it_is_given(rendered):
    """playbooks/upgrade.yml's OLLAMA_NOPRUNE drop-in beside the unit: no
    command, no sandbox of its own (the unit has one)."""
    path = rendered / "Linux" / UNITS / "ollama.service.d/upgrade-noprune.conf"
    service = unit(path)["Service"]
    assert values(service, "Environment") == ['"OLLAMA_NOPRUNE=1"']
    assert not values(service, "ExecStart") and not values(service, "ProtectSystem")
    assert not (rendered / "Linux" / UNITS / "ollama.service").exists()


def test_second_instance_is_a_unit_of_its_own(rendered):
    sections = unit(rendered / "Linux" / UNITS / "litellm-2.service")
    service = sections["Service"]
    assert values(service, "ExecStart") == ["/opt/ccproxy/litellm/venv/bin/litellm --port 8091"]
    assert values(service, "StandardOutput") == ["append:/var/log/ccproxy/litellm/litellm-2.log"]
    assert values(service, "SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert values(sections["Install"], "WantedBy") == ["multi-user.target"]
    rotate = (rendered / "Linux/etc/logrotate.d/ccproxy-litellm-2").read_text()
    assert "/var/log/ccproxy/litellm/litellm-2.log {" in rotate and "copytruncate" in rotate
    job = plistlib.loads((rendered / "Darwin/Library/LaunchDaemons/com.ccproxy.litellm-2.plist").read_bytes())
    assert job["Label"] == "com.ccproxy.litellm-2"
    assert job["KeepAlive"] == {"Crashed": True, "SuccessfulExit": False}


def test_timed_job_gets_a_timer_and_a_calendar(rendered):
    service = unit(rendered / "Linux" / UNITS / "watchdog.service")
    assert values(service["Service"], "Type") == ["oneshot"]
    assert "Restart" not in dict(service["Service"])
    assert "Install" not in service, "the timer is what gets enabled"
    timer = unit(rendered / "Linux" / UNITS / "watchdog.timer")
    assert values(timer["Timer"], "OnCalendar") == ["*:0/5"]
    assert values(timer["Install"], "WantedBy") == ["timers.target"]
    job = plistlib.loads((rendered / "Darwin/Library/LaunchDaemons/com.ccproxy.watchdog.plist").read_bytes())
    assert job["StartCalendarInterval"] == [{"Minute": 0}, {"Minute": 30}]
    assert job["RunAtLoad"] is False and "KeepAlive" not in job


def test_units_parse_as_ini(rendered):
    for path in (rendered / "Linux" / UNITS).rglob("*"):
        if path.is_file():
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.optionxform = str
            parser.read_string(path.read_text())


def plan(rendered, label):
    return json.loads((rendered / "Darwin/launchctl-plan" / f"{label}.json").read_text())


def test_a_service_kept_off_is_installed_but_neither_started_nor_enabled(rendered):
    # launchd: the plist is what it would be for a running service; `launchctl disable`
    # (the override database, which outlasts reboots) keeps it from starting at boot.
    job = plistlib.loads((rendered / "Darwin/Library/LaunchDaemons/com.ccproxy.batch.plist").read_bytes())
    assert job["RunAtLoad"] is True and job["KeepAlive"] == {"Crashed": True, "SuccessfulExit": False}
    assert "Disabled" not in job
    assert plan(rendered, "com.ccproxy.batch") == {
        "target": "system/com.ccproxy.batch", "become": True,
        "commands": [["launchctl", "disable", "system/com.ccproxy.batch"]],
    }
    # systemd: the same unit; `systemctl disable` is what keeps it off.
    sections = unit(rendered / "Linux" / UNITS / "batch.service")
    assert values(sections["Install"], "WantedBy") == ["multi-user.target"]


def test_an_agent_runs_in_the_users_gui_domain_without_root(rendered):
    path = rendered / "Darwin/Users/coder/Library/LaunchAgents/com.ccproxy.helper.plist"
    job = plistlib.loads(path.read_bytes())
    assert job["Label"] == "com.ccproxy.helper" and "UserName" not in job
    # Running now, not at the next login: loaded first, since a disabled job cannot be.
    assert plan(rendered, "com.ccproxy.helper") == {
        "target": "gui/501/com.ccproxy.helper", "become": False,
        "commands": [
            ["launchctl", "bootstrap", "gui/501", "/Users/coder/Library/LaunchAgents/com.ccproxy.helper.plist"],
            ["launchctl", "disable", "gui/501/com.ccproxy.helper"],
        ],
    }


@pytest.mark.parametrize("name", ["litellm-2", "watchdog"])
def test_a_fresh_mac_bootstraps_started_daemons(rendered, name):
    label = f"com.ccproxy.{name}"
    assert plan(rendered, label)["commands"] == [
        ["launchctl", "bootstrap", "system", f"/Library/LaunchDaemons/{label}.plist"]]


def test_every_launchd_example_has_a_plan_and_systemd_none(rendered):
    plists = {p.name.removesuffix(".plist") for p in (rendered / "Darwin").rglob("*.plist")}
    plans = {p.name.removesuffix(".json") for p in (rendered / "Darwin/launchctl-plan").iterdir()}
    assert plans == plists
    assert not (rendered / "Linux/launchctl-plan").exists()
