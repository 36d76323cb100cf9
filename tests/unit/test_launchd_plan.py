"""What role `service` tells launchctl (roles/service/filter_plugins/launchd.py, run by
tasks/run.yml and mirrored for restarts by tasks/restart.yml).

No Mac here: the parsers are checked against launchctl's real output formats, the
decision table case by case and exhaustively against a model of launchd, and the
role's tasks against a stand-in `launchctl` that keeps state, refuses what launchd
refuses and records every call (and whether it ran with become)."""
import importlib.util
import itertools
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("service_launchd", ROOT / "roles/service/filter_plugins/launchd.py")
launchd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launchd)

LABEL = "com.ccproxy.ollama"
PLIST = f"/Library/LaunchDaemons/{LABEL}.plist"
TARGET = f"system/{LABEL}"

# `launchctl print system/<label>` of a running KeepAlive daemon (macOS 14/15 layout;
# the top-level keys are one tab in, nested blocks deeper).
PRINT_RUNNING = f"""system/{LABEL} = {{
\tactive count = 1
\tpath = {PLIST}
\ttype = LaunchDaemon
\tstate = running

\tprogram = /opt/homebrew/bin/ollama
\targuments = {{
\t\t/opt/homebrew/bin/ollama
\t\tserve
\t}}

\tworking directory = /Users/coder/.ollama

\tstdout path = /opt/homebrew/var/log/ccproxy/ollama.log
\tstderr path = /opt/homebrew/var/log/ccproxy/ollama.log
\tdefault environment = {{
\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin
\t}}

\tenvironment = {{
\t\tOLLAMA_HOST => 127.0.0.1:11434
\t\tXPC_SERVICE_NAME => {LABEL}
\t}}

\tdomain = system
\tusername = coder
\tminimum runtime = 10
\texit timeout = 5
\truns = 1
\tpid = 4711
\timmediate reason = speculative
\tforks = 0
\texecs = 1
\tinitialized = 1
\ttrampolined = 1
\tstarted suspended = 0
\tproxy started suspended = 0
\tlast exit code = (never exited)

\tresource coalition = {{
\t\tID = 1022
\t}}

\tspawn type = daemon (3)
\tjetsam priority = 40
\tprobabilistic guard malloc policy = {{
\t\tactivation rate = 1/1000
\t\tsample rate = 1/0
\t}}

\tproperties = keepalive | runatload | inferred program
}}
"""
# The same job after it exited 0: KeepAlive {SuccessfulExit: false} leaves it down.
PRINT_EXITED = (PRINT_RUNNING.replace("state = running", "state = not running")
                .replace("\tpid = 4711\n", "").replace("last exit code = (never exited)", "last exit code = 0"))
# Crashed, restart pending until ThrottleInterval has passed.
PRINT_SPAWN_SCHEDULED = (PRINT_RUNNING.replace("state = running", "state = spawn scheduled")
                         .replace("\tpid = 4711\n", "").replace("last exit code = (never exited)", "last exit code = 1"))
# A calendar job between runs: loaded, not running, an event trigger armed.
PRINT_CALENDAR_AGENT = """gui/501/com.ccproxy.rotate-token = {
\tactive count = 0
\tpath = /Users/coder/Library/LaunchAgents/com.ccproxy.rotate-token.plist
\ttype = LaunchAgent
\tstate = not running

\tprogram = /Users/coder/.ccproxy/rotate-token.sh
\tdomain = gui/501 [100005]
\truns = 0
\tlast exit code = (never exited)

\tevent triggers = {
\t\tcom.ccproxy.rotate-token.268435458 => {
\t\t\tkeepalive = 0
\t\t\tservice = com.ccproxy.rotate-token
\t\t\tstream = com.apple.launchd.calendarinterval
\t\t\tmonitor = 0
\t\t\tdescriptor = {
\t\t\t\t"Month" => 1
\t\t\t\t"Day" => 1
\t\t\t}
\t\t}
\t}

\tproperties = inferred program
}
"""

# `launchctl print-disabled system`, macOS 13 (Ventura) and later.
DISABLED_MODERN = f"""disabled services = {{
\t"com.apple.ftp-proxy" => disabled
\t"{LABEL}" => disabled
\t"com.ccproxy.litellm" => enabled
\t"com.openssh.sshd" => disabled
}}
"""
# The same on macOS 12 (Monterey) and earlier: true means disabled.
DISABLED_LEGACY = f"""disabled services = {{
\t"com.apple.ftp-proxy" => true
\t"{LABEL}" => true
\t"com.ccproxy.litellm" => false
\t"com.openssh.sshd" => true
}}
"""
# `launchctl print-disabled gui/501` also lists login item associations (quoted values).
DISABLED_GUI = """disabled services = {
\t"com.docker.helper" => enabled
\t"com.ccproxy.rotate-token" => disabled
}
login item associations = {
\t"version.com.docker.helper" => "64133"
\t"com.docker.helper" => "com.docker.docker"
}
"""


# --- parsing -------------------------------------------------------------------------


def test_print_of_a_running_job():
    assert launchd.launchd_job(PRINT_RUNNING, 0) == {"loaded": True, "running": True, "state": "running", "pid": 4711}


def test_print_of_a_job_that_exited():
    assert launchd.launchd_job(PRINT_EXITED, 0) == {"loaded": True, "running": False, "state": "not running", "pid": None}


def test_spawn_scheduled_counts_as_running():
    # launchd restarts it after ThrottleInterval by itself; a kickstart would only race it.
    job = launchd.launchd_job(PRINT_SPAWN_SCHEDULED, 0)
    assert job["loaded"] and job["running"] and job["state"] == "spawn scheduled"


def test_print_of_a_calendar_agent_reads_the_top_level_only():
    job = launchd.launchd_job(PRINT_CALENDAR_AGENT, 0)
    assert job == {"loaded": True, "running": False, "state": "not running", "pid": None}


def test_nested_blocks_are_not_the_jobs_keys():
    text = "system/x = {\n\tstate = not running\n\tsomething = {\n\t\tstate = running\n\t\tpid = 7\n\t}\n}\n"
    assert launchd.launchd_job(text, 0)["running"] is False


@pytest.mark.parametrize("rc", [113, "113"])
def test_print_of_a_job_launchd_does_not_have(rc):
    # stdout is empty; stderr says 'Could not find service "..." in domain for system'.
    assert launchd.launchd_job("", rc) == {"loaded": False, "running": False, "state": None, "pid": None}


@pytest.mark.parametrize("output, label, expected", [
    (DISABLED_MODERN, LABEL, True),
    (DISABLED_MODERN, "com.ccproxy.litellm", False),
    (DISABLED_MODERN, "com.ccproxy.traefik", None),
    (DISABLED_LEGACY, LABEL, True),
    (DISABLED_LEGACY, "com.ccproxy.litellm", False),
    (DISABLED_LEGACY, "com.ccproxy.traefik", None),
    (DISABLED_GUI, "com.ccproxy.rotate-token", True),
    (DISABLED_GUI, "com.docker.helper", False),
    ("disabled services = {\n}\n", LABEL, None),
])
def test_print_disabled_both_formats(output, label, expected):
    assert launchd.launchd_disabled(output, label) is expected


def test_a_label_is_matched_whole():
    assert launchd.launchd_disabled('\t"com.ccproxy.ollama-2" => disabled\n', LABEL) is None


def test_an_unknown_override_value_is_an_error():
    with pytest.raises(AnsibleFilterError):
        launchd.launchd_disabled(f'\t"{LABEL}" => maybe\n', LABEL)


# --- the decision table ----------------------------------------------------------------

NOT_LOADED = launchd.launchd_job("", 113)
RUNNING = launchd.launchd_job(PRINT_RUNNING, 0)
EXITED = launchd.launchd_job(PRINT_EXITED, 0)
SPAWN = launchd.launchd_job(PRINT_SPAWN_SCHEDULED, 0)

BOOTOUT = ["launchctl", "bootout", TARGET]
BOOTSTRAP = ["launchctl", "bootstrap", "system", PLIST]
ENABLE = ["launchctl", "enable", TARGET]
DISABLE = ["launchctl", "disable", TARGET]
KICKSTART = ["launchctl", "kickstart", TARGET]
RESTART = ["launchctl", "kickstart", "-k", TARGET]

# (state, enabled, job, disabled override, scheduled, plist changed) -> commands
TABLE = [
    # started, enabled at boot
    ("started", True, NOT_LOADED, None, False, False, [BOOTSTRAP]),
    ("started", True, NOT_LOADED, True, False, False, [ENABLE, BOOTSTRAP]),
    ("started", True, RUNNING, None, False, False, []),
    ("started", True, RUNNING, False, False, False, []),
    ("started", True, RUNNING, True, False, False, [ENABLE]),
    ("started", True, SPAWN, None, False, False, []),
    ("started", True, EXITED, None, False, False, [KICKSTART]),
    ("started", True, RUNNING, None, False, True, [BOOTOUT, BOOTSTRAP]),
    ("started", True, RUNNING, True, False, True, [BOOTOUT, ENABLE, BOOTSTRAP]),
    ("started", True, NOT_LOADED, None, False, True, [BOOTSTRAP]),
    # started now, not at boot: a disabled job cannot be bootstrapped, so enable, load, disable
    ("started", False, NOT_LOADED, None, False, False, [BOOTSTRAP, DISABLE]),
    ("started", False, NOT_LOADED, True, False, False, [ENABLE, BOOTSTRAP, DISABLE]),
    ("started", False, RUNNING, None, False, False, [DISABLE]),
    ("started", False, RUNNING, True, False, False, []),
    ("started", False, EXITED, True, False, False, [KICKSTART]),
    ("started", False, RUNNING, True, False, True, [BOOTOUT, ENABLE, BOOTSTRAP, DISABLE]),
    # stopped: booted out, plist kept; the override follows `enabled`
    ("stopped", True, NOT_LOADED, None, False, False, []),
    ("stopped", True, NOT_LOADED, True, False, False, [ENABLE]),
    ("stopped", True, RUNNING, None, False, False, [BOOTOUT]),
    ("stopped", True, RUNNING, None, False, True, [BOOTOUT]),
    ("stopped", False, NOT_LOADED, None, False, False, [DISABLE]),
    ("stopped", False, NOT_LOADED, False, False, False, [DISABLE]),
    ("stopped", False, NOT_LOADED, True, False, False, []),
    ("stopped", False, RUNNING, None, False, False, [BOOTOUT, DISABLE]),
    ("stopped", False, EXITED, True, False, False, [BOOTOUT]),
    # restarted (the handler): kickstart -k, unless it was just loaded
    ("restarted", True, RUNNING, None, False, False, [RESTART]),
    ("restarted", True, EXITED, None, False, False, [RESTART]),
    ("restarted", True, NOT_LOADED, None, False, False, [BOOTSTRAP]),
    ("restarted", True, RUNNING, None, False, True, [BOOTOUT, BOOTSTRAP]),
    ("restarted", False, RUNNING, True, False, False, [RESTART]),
    # a scheduled job: loaded is enough; kickstart would run it off its calendar
    ("started", True, EXITED, None, True, False, []),
    ("started", True, NOT_LOADED, None, True, False, [BOOTSTRAP]),
    ("started", True, EXITED, None, True, True, [BOOTOUT, BOOTSTRAP]),
    ("restarted", True, EXITED, None, True, False, []),
    ("stopped", False, EXITED, None, True, False, [BOOTOUT, DISABLE]),
]


def plan(state, enabled, job, disabled, scheduled=False, reload=False, domain="system", label=LABEL, plist=PLIST):
    return launchd.launchd_plan(job, disabled=disabled, state=state, enabled=enabled, domain=domain, label=label,
                                plist=plist, scheduled=scheduled, reload=reload)


@pytest.mark.parametrize("state, enabled, job, disabled, scheduled, reload, expected", TABLE)
def test_decision_table(state, enabled, job, disabled, scheduled, reload, expected):
    assert plan(state, enabled, job, disabled, scheduled, reload) == expected


def test_agents_use_their_gui_domain():
    label, plist = "com.ccproxy.rotate-token", "/Users/coder/Library/LaunchAgents/com.ccproxy.rotate-token.plist"
    assert plan("started", False, NOT_LOADED, True, scheduled=True, domain="gui/501", label=label, plist=plist) == [
        ["launchctl", "enable", f"gui/501/{label}"],
        ["launchctl", "bootstrap", "gui/501", plist],
        ["launchctl", "disable", f"gui/501/{label}"],
    ]


@pytest.mark.parametrize("enabled", ["false", "False", "no", 0])
def test_enabled_as_ansible_passes_it(enabled):
    # -e ollama_service_enabled=false arrives as a string.
    assert plan("started", enabled, RUNNING, None) == [DISABLE]


@pytest.mark.parametrize("kwargs", [
    {"state": "reloaded"}, {"state": "running"}, {"domain": "gui/"}, {"domain": "login/1"}, {"label": ""},
])
def test_bad_input_is_refused(kwargs):
    args = {"state": "started", "enabled": True, "job": RUNNING, "disabled": None} | kwargs
    with pytest.raises(AnsibleFilterError):
        plan(**args)


# --- the decision table against a model of launchd -----------------------------------------


class Launchd:
    """One job as launchd keeps it; refuses what launchctl(1) says it refuses."""

    def __init__(self, loaded, running, disabled, scheduled):
        self.loaded, self.running, self.disabled, self.scheduled = loaded, running, disabled, scheduled

    def run(self, argv):
        verb = argv[1]
        if verb == "bootout":
            assert self.loaded, "bootout of a job that is not loaded"
            self.loaded = self.running = False
        elif verb == "bootstrap":
            assert not self.loaded, "bootstrap of a loaded job (Bootstrap failed: 5 or 37)"
            assert not self.disabled, "bootstrap of a disabled job (Bootstrap failed: 5)"
            self.loaded, self.running = True, not self.scheduled  # RunAtLoad / KeepAlive
        elif verb == "kickstart":
            assert self.loaded, "kickstart of a job that is not loaded (113)"
            self.running = True
        elif verb in ("enable", "disable"):
            self.disabled = verb == "disable"
        else:
            raise AssertionError(argv)

    def job(self):
        if not self.loaded:
            return NOT_LOADED
        return RUNNING if self.running else EXITED


STATES = ["started", "stopped", "restarted"]
JOBS = [NOT_LOADED, RUNNING, EXITED]
OVERRIDES = [None, False, True]


@pytest.mark.parametrize("state, enabled, job, disabled, scheduled, reload",
                         list(itertools.product(STATES, [True, False], JOBS, OVERRIDES, [False, True], [False, True])))
def test_every_plan_is_accepted_by_launchd_reaches_its_goal_and_is_then_empty(state, enabled, job, disabled,
                                                                               scheduled, reload):
    model = Launchd(job["loaded"], job["running"], bool(disabled), scheduled)
    commands = plan(state, enabled, job, disabled, scheduled, reload)
    for argv in commands:
        model.run(argv)
    want_up = state != "stopped"
    assert model.loaded is want_up
    # A scheduled job runs when its calendar says (maybe now); the others run when up.
    assert model.running is want_up or (scheduled and want_up)
    assert model.disabled is (not enabled), "the override database decides boot and login"
    # Converged: the next run (no plist change) has nothing to do.
    again = "started" if state == "restarted" else state
    assert plan(again, enabled, model.job(), model.disabled, scheduled) == []
    # Nothing to do and no plist change means no command (a restart is always one).
    if state != "restarted" and not reload and job["loaded"] is want_up and \
            (not want_up or scheduled or job["running"]) and bool(disabled) is (not enabled):
        assert commands == []


# --- the role's tasks against a stand-in launchctl ---------------------------------------------

FAKE_LAUNCHCTL = r"""#!@PYTHON@
# launchctl for tests: one scenario's state in $FAKE_LAUNCHCTL_STATE, each call
# appended to $FAKE_LAUNCHCTL_CALLS with whether it ran through (stand-in) su.
import json
import os
import sys

STATE, CALLS = os.environ["FAKE_LAUNCHCTL_STATE"], os.environ["FAKE_LAUNCHCTL_CALLS"]
args = sys.argv[1:]
with open(STATE) as fh:
    state = json.load(fh)
with open(CALLS, "a") as fh:
    if args[0] == "__mark":
        fh.write(json.dumps({"mark": args[1]}) + "\n")
        sys.exit(0)
    fh.write(json.dumps({"argv": args, "became": os.environ.get("CCPROXY_TEST_BECAME") == "1"}) + "\n")


def done(rc=0, out="", err=""):
    with open(STATE, "w") as fh:
        json.dump(state, fh)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(rc)


jobs, disabled = state["jobs"], state["disabled"]
verb, target = args[0], args[-1]
domain, _, label = target.rpartition("/")
if verb == "print":
    if target not in jobs:
        done(113, err=f'Bad request.\nCould not find service "{label}" in domain for {domain}\n')
    running = jobs[target]["running"]
    lines = [f"{target} = {{", f"\tactive count = {int(running)}",
             f"\tstate = {'running' if running else 'not running'}", "", "\targuments = {", "\t\tx", "\t}"]
    lines += ["\tpid = 4242"] if running else ["\tlast exit code = 0"]
    done(0, "\n".join(lines + ["}", ""]))
if verb == "print-disabled":
    rows = [f'\t"{name}" => {"disabled" if off else "enabled"}' for name, off in disabled.get(target, {}).items()]
    done(0, "\n".join(["disabled services = {"] + rows + ["}", ""]))
if verb == "bootout":
    if target not in jobs:
        done(3, err="Boot-out failed: 3: No such process\n")
    del jobs[target]
    done()
if verb == "bootstrap":
    domain, label = args[1], os.path.basename(args[2]).removesuffix(".plist")
    target = f"{domain}/{label}"
    if state["bootstrap_failures"] or target in jobs or disabled.get(domain, {}).get(label):
        state["bootstrap_failures"] = max(state["bootstrap_failures"] - 1, 0)
        done(5, err="Bootstrap failed: 5: Input/output error\n")
    jobs[target] = {"running": not state["scheduled"]}
    done()
if verb in ("enable", "disable"):
    disabled.setdefault(domain, {})[label] = verb == "disable"
    done()
if verb == "kickstart":
    if target not in jobs:
        done(113, err=f'Could not find service "{label}" in domain for {domain}\n')
    jobs[target]["running"] = True
    done()
done(64, err=f"Unrecognized subcommand: {verb}\n")
"""

# su as the become method: marks what runs "as root" and runs it (no root needed here).
FAKE_SU = """#!/bin/sh
for arg; do last=$arg; done
CCPROXY_TEST_BECAME=1 exec /bin/sh -c "$last"
"""

# The glue, not the table (that is above): parsing, order against a launchctl that
# refuses what launchd refuses, retry, become, check mode, idempotence, restart.
# name: (spec keys, the job before (None: not loaded), its override before, bootstrap failures,
#        plist changed, what the first run tells launchctl)
SCENARIOS = {
    "fresh": ({}, None, None, 0, False, [["bootstrap", "system", "/Library/LaunchDaemons/com.t.fresh.plist"]]),
    "stop": ({"enabled": False, "state": "stopped"}, {"running": True}, None, 0, False,
             [["bootout", "system/com.t.stop"], ["disable", "system/com.t.stop"]]),
    "upnotatboot": ({"enabled": False}, None, True, 0, False,
                    [["enable", "system/com.t.upnotatboot"],
                     ["bootstrap", "system", "/Library/LaunchDaemons/com.t.upnotatboot.plist"],
                     ["disable", "system/com.t.upnotatboot"]]),
    "exited": ({}, {"running": False}, None, 0, False, [["kickstart", "system/com.t.exited"]]),
    # "Bootstrap failed: 5" right after the bootout of a changed plist: tried again.
    "race": ({}, {"running": True}, None, 1, True,
             [["bootout", "system/com.t.race"],
              ["bootstrap", "system", "/Library/LaunchDaemons/com.t.race.plist"],
              ["bootstrap", "system", "/Library/LaunchDaemons/com.t.race.plist"]]),
    "agent": ({"launchd_kind": "agent"}, None, None, 0, False,
              [["bootstrap", "gui/501", "/Users/coder/Library/LaunchAgents/com.t.agent.plist"]]),
    "timer": ({"launchd_kind": "agent", "schedule": {"on_calendar": "daily", "launchd_intervals": [{"Hour": 3}]}},
              {"running": False}, None, 0, False, []),
}


def target(name):
    return f"{'gui/501' if SCENARIOS[name][0].get('launchd_kind') == 'agent' else 'system'}/com.t.{name}"


@pytest.fixture(scope="module")
def launchctl_runs(tmp_path_factory, run_playbook):
    """Per scenario (one host each, in parallel): check mode, a first and a second run of
    tasks_from: run, then the restart handler's path. Returns {name: ({pass: calls}, end state)}."""
    tmp = tmp_path_factory.mktemp("launchctl")
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "launchctl").write_text(FAKE_LAUNCHCTL.replace("@PYTHON@", sys.executable))
    (tmp / "su").write_text(FAKE_SU)
    for path in (bindir / "launchctl", tmp / "su"):
        path.chmod(0o755)
    hosts = []
    for name, (spec, job, override, failures, reload, _) in SCENARIOS.items():
        domain = target(name).rpartition("/")[0]
        (tmp / f"{name}.json").write_text(json.dumps({
            "jobs": {target(name): job} if job else {},
            "disabled": {domain: {f"com.t.{name}": override}} if override is not None else {},
            "bootstrap_failures": failures, "scheduled": "schedule" in spec}))
        hosts.append({"name": name, "reload": [f"com.t.{name}"] if reload else [],
                      "spec": {"name": name, "description": name, "command": ["/usr/bin/true"],
                               "log_file": f"/tmp/{name}.log", "launchd_label_prefix": "com.t", **spec}})

    def mark(name):
        return {"name": f"Mark {name}", "ansible.builtin.command": f"launchctl __mark {name}", "changed_when": False}

    def run(name, **extra):
        return {"name": name, "ansible.builtin.include_role": {"name": "service", "tasks_from": "run", **extra},
                "vars": {"service_spec": "{{ spec }}"}}

    pending = {"name": "A changed plist is pending", "ansible.builtin.set_fact": {"__service_launchd_reload": "{{ reload }}"}}
    plays = [
        {"name": "One host per scenario", "hosts": "localhost", "gather_facts": False, "tasks": [{
            "ansible.builtin.add_host": {"name": "{{ item.name }}", "groups": "scenarios",
                                        "spec": "{{ item.spec }}", "reload": "{{ item.reload }}"},
            "loop": hosts, "loop_control": {"label": "{{ item.name }}"}}]},
        {"name": "tasks_from: run and restart.yml against a stand-in launchctl",
         "hosts": "scenarios", "connection": "local", "gather_facts": False,
         "environment": {"PATH": f"{bindir}:{os.environ['PATH']}",
                         "FAKE_LAUNCHCTL_STATE": f"{tmp}/{{{{ inventory_hostname }}}}.json",
                         "FAKE_LAUNCHCTL_CALLS": f"{tmp}/{{{{ inventory_hostname }}}}.jsonl"},
         "vars": {
             "ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "ansible_become_method": "ansible.builtin.su", "ansible_become_exe": str(tmp / "su"),
             "ansible_facts": {"system": "Darwin", "os_family": "Darwin", "distribution": "MacOSX",
                               "service_mgr": "launchd", "architecture": "arm64", "user_id": "coder",
                               "user_uid": 501, "user_dir": "/Users/coder"},
         },
         "tasks": [
             mark("check"), pending, run("Check mode", apply={"check_mode": True}),
             mark("first"), pending, run("First run"),
             mark("second"), run("Second run"),
             mark("restart"),
             {"name": "The restart handler's path",
              "ansible.builtin.include_tasks": str(ROOT / "roles/service/tasks/restart.yml"),
              "vars": {"service_spec": "{{ spec }}"}},
         ]},
    ]
    playbook = tmp / "playbook.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    with pytest.MonkeyPatch.context() as env:
        # The play runs as root here already; become must still go through the stand-in su.
        env.setenv("ANSIBLE_BECOME_ALLOW_SAME_USER", "true")
        env.setenv("ANSIBLE_PIPELINING", "true")
        env.setenv("ANSIBLE_FORKS", str(len(SCENARIOS)))
        run_playbook(str(playbook))
    runs = {}
    for name in SCENARIOS:
        passes, current = {}, None
        for line in (tmp / f"{name}.jsonl").read_text().splitlines():
            entry = json.loads(line)
            if "mark" in entry:
                current = passes.setdefault(entry["mark"], [])
            else:
                current.append(entry)
        runs[name] = passes, json.loads((tmp / f"{name}.json").read_text())
    return runs


def changes(entries):
    return [e["argv"] for e in entries if e["argv"][0] not in ("print", "print-disabled")]


@pytest.mark.parametrize("name", SCENARIOS)
def test_check_mode_only_reads(launchctl_runs, name):
    passes, _ = launchctl_runs[name]
    assert [e["argv"][0] for e in passes["check"]] == ["print", "print-disabled"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_first_run_tells_launchctl(launchctl_runs, name):
    passes, _ = launchctl_runs[name]
    assert changes(passes["first"]) == SCENARIOS[name][5]


@pytest.mark.parametrize("name", SCENARIOS)
def test_second_run_changes_nothing(launchctl_runs, name):
    passes, _ = launchctl_runs[name]
    assert [e["argv"][0] for e in passes["second"]] == ["print", "print-disabled"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_end_state(launchctl_runs, name):
    _, state = launchctl_runs[name]
    spec = SCENARIOS[name][0]
    domain, _, label = target(name).rpartition("/")
    up = spec.get("state", "started") == "started"
    assert (target(name) in state["jobs"]) is up
    if up:
        assert state["jobs"][target(name)]["running"] is ("schedule" not in spec)
    assert bool(state["disabled"].get(domain, {}).get(label)) is (spec.get("enabled") is False)


@pytest.mark.parametrize("name", SCENARIOS)
def test_restart_path_kickstarts_a_loaded_job(launchctl_runs, name):
    passes, _ = launchctl_runs[name]
    spec = SCENARIOS[name][0]
    restarts = spec.get("state", "started") == "started" and "schedule" not in spec
    assert changes(passes.get("restart", [])) == ([["kickstart", "-k", target(name)]] if restarts else [])


@pytest.mark.parametrize("name", SCENARIOS)
def test_daemons_use_become_and_agents_do_not(launchctl_runs, name):
    passes, _ = launchctl_runs[name]
    agent = SCENARIOS[name][0].get("launchd_kind") == "agent"
    calls = [entry for entries in passes.values() for entry in entries]
    assert calls and all(entry["became"] is not agent for entry in calls)
