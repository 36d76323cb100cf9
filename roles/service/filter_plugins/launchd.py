"""What role `service` tells launchctl, decided in one place (tasks/run.yml runs it).

service_launchd_job: `launchctl print <domain>/<label>` (stdout, rc) as
  {loaded, running, state, pid}. Exit 0 means loaded; 113 ("Could not find
  service") means not loaded. Only the top level of the output is read.
service_launchd_disabled: `launchctl print-disabled <domain>` for one label:
  True (disabled), False (enabled) or None (not in the override database, so
  enabled). macOS 13 and later print `"label" => disabled|enabled`, macOS 12
  and earlier `"label" => true|false` (true = disabled).
service_launchd_plan: the launchctl argv lists that bring a job from what
  launchd reports to the wanted state (started, stopped or restarted) and boot
  setting (enabled). Nothing when it is there already.

launchctl(1): a disabled service "cannot be loaded in the specified domain
until it is once again enabled. This state persists across boots", so enable
comes before bootstrap, and disable (not a plist key: launchd.plist(5) says
KeepAlive's SuccessfulExit implies RunAtLoad) is what keeps a job from
starting at boot or login. disable leaves a loaded job running and its plist
installed; bootout stops it for now only.
"""
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

NOT_FOUND_RC = 113
# launchd is starting it (again) by itself: "spawn scheduled" is a KeepAlive
# restart waiting out ThrottleInterval, like systemd's "activating".
RUNNING_STATES = ("running", "spawn scheduled")
STATES = ("started", "stopped", "restarted")
DISABLED_LINE = re.compile(r'^\s*"(?P<label>[^"]+)"\s*=>\s*(?P<value>[A-Za-z]+)\s*$')
DISABLED_VALUES = {"disabled": True, "true": True, "enabled": False, "false": False}
DOMAIN = re.compile(r"^(system|(gui|user)/[0-9]+)$")


def launchd_job(stdout, rc=0):
    """{loaded, running, state, pid} from `launchctl print <service-target>`."""
    if int(rc) != 0:
        return {"loaded": False, "running": False, "state": None, "pid": None}
    top, depth = {}, 0
    for line in str(stdout or "").splitlines():
        text = line.strip()
        if depth == 1 and " = " in text:
            key, _, value = text.partition(" = ")
            top.setdefault(key.strip(), value.strip())
        depth += text.count("{") - text.count("}")
    state = top.get("state")
    pid = int(top["pid"]) if top.get("pid", "").isdigit() else None
    return {"loaded": True, "running": state in RUNNING_STATES or pid is not None, "state": state, "pid": pid}


def launchd_disabled(stdout, label):
    """True, False or None (not listed) for `label` in `launchctl print-disabled <domain>`."""
    for line in str(stdout or "").splitlines():
        match = DISABLED_LINE.match(line)
        if match and match.group("label") == label:
            value = match.group("value").lower()
            if value not in DISABLED_VALUES:
                raise AnsibleFilterError(f"launchctl print-disabled: {label} => {value} is not enabled or disabled")
            return DISABLED_VALUES[value]
    return None


def launchd_plan(job, disabled=None, state="started", enabled=True, domain="system", label="", plist="",
                 scheduled=False, reload=False):
    """The launchctl argv lists, in order, that take `job` (launchd_job) to `state` and `enabled`.

    started:   loaded (bootstrap; bootout first when the plist changed, `reload`)
               and running (kickstart when loaded but stopped; a scheduled job
               only waits for its calendar, so loaded is enough).
    restarted: as started, then kickstart -k unless it was just loaded.
    stopped:   not loaded (bootout); the plist stays installed.
    enabled:   not disabled in the override database (enable), else disabled
               (disable, after any bootstrap, which a disabled job refuses).
    """
    if state not in STATES:
        raise AnsibleFilterError(f"launchd: state {state!r} is not one of {', '.join(STATES)}")
    if not DOMAIN.match(str(domain)) or not label or (state != "stopped" and not plist):
        raise AnsibleFilterError(
            f"launchd: need a domain (system, gui/<uid>), a label and a plist, got {domain!r} {label!r} {plist!r}")
    enabled, scheduled, reload = boolean(enabled), boolean(scheduled), boolean(reload)
    target = f"{domain}/{label}"
    loaded, running = bool(job.get("loaded")), bool(job.get("running"))
    plan = []
    if state == "stopped":
        if loaded:
            plan.append(["launchctl", "bootout", target])
    else:
        load = not loaded or reload
        if load and loaded:
            plan.append(["launchctl", "bootout", target])
        if disabled and (enabled or load):
            plan.append(["launchctl", "enable", target])
            disabled = False
        if load:
            plan.append(["launchctl", "bootstrap", str(domain), str(plist)])
        elif not scheduled and state == "restarted":
            plan.append(["launchctl", "kickstart", "-k", target])
        elif not scheduled and not running:
            plan.append(["launchctl", "kickstart", target])
    if enabled and disabled:
        plan.append(["launchctl", "enable", target])
    elif not enabled and not disabled:
        plan.append(["launchctl", "disable", target])
    return plan


class FilterModule:
    def filters(self):
        return {
            "service_launchd_job": launchd_job,
            "service_launchd_disabled": launchd_disabled,
            "service_launchd_plan": launchd_plan,
        }
