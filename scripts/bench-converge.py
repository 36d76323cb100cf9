#!/usr/bin/env python3
"""Time no-op re-converges of site.yml: wall seconds and changed count per run.

A converged host should re-converge with changed=0, quickly (issue 10: at most
25 s over SSH on the test host). This runs `ansible-playbook site.yml` N times
against an inventory (default: the demo's, over SSH as the unprivileged user
`admin`), prints each run's seconds and changed/ok counts, then the slowest
tasks of the last run (ansible.posix.profile_tasks).

  .venv/bin/python scripts/bench-converge.py [-n 3] [-i inventory/local/hosts.yml] [-- EXTRA ANSIBLE ARGS]

Run `make demo` first: the first run is timed too, so on an unconverged host it
shows the full converge. Exits 1 when a run fails or (with --require-noop) a
run reports changes.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TASK_TIME = re.compile(r"^(.*?)\s-{2,}\s+([0-9.]+)s$", re.M)


def run_once(cmd, env):
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    recaps = RECAP.findall(proc.stdout)
    if proc.returncode != 0 or not recaps:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        return seconds, None, proc.stdout
    totals = {
        "ok": sum(int(r[1]) for r in recaps),
        "changed": sum(int(r[2]) for r in recaps),
        "failed": sum(int(r[4]) + int(r[3]) for r in recaps),
    }
    return seconds, totals, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3)
    parser.add_argument("-i", "--inventory", default="inventory/local/hosts.yml")
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("--top", type=int, default=15, help="slowest tasks to list")
    parser.add_argument("--require-noop", action="store_true", help="exit 1 if a run changed something")
    parser.add_argument("extra", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = str(args.top)
    env["ANSIBLE_NOCOLOR"] = "1"
    state = Path(env.get("CCPROXY_STATE_DIR", ROOT / ".demo"))
    # The venv's ansible-playbook, next to this interpreter, when run as .venv/bin/python.
    venv_playbook = Path(sys.executable).with_name("ansible-playbook")
    playbook_cmd = str(venv_playbook) if venv_playbook.exists() else "ansible-playbook"
    cmd = [playbook_cmd, "-i", args.inventory, args.playbook, *args.extra]
    if "ANSIBLE_VAULT_PASSWORD_FILE" not in env and (state / "vault-password").exists():
        cmd += ["--vault-password-file", str(state / "vault-password")]

    times, status, output = [], 0, ""
    for n in range(1, args.runs + 1):
        seconds, totals, output = run_once(cmd, env)
        if totals is None:
            print(f"run {n}: FAILED after {seconds:.1f} s")
            return 1
        times.append(seconds)
        print(f"run {n}: {seconds:6.1f} s  ok={totals['ok']} changed={totals['changed']}", flush=True)
        if args.require_noop and n > 1 and totals["changed"]:
            status = 1
    if len(times) > 1:
        later = times[1:]
        print(f"re-converge (runs 2..{len(times)}): median {statistics.median(later):.1f} s, max {max(later):.1f} s")
    print(f"\nslowest tasks of run {len(times)}:")
    for name, secs in sorted(TASK_TIME.findall(output), key=lambda t: -float(t[1]))[: args.top]:
        print(f"  {float(secs):6.2f} s  {name.strip()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
