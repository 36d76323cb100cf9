"""The GitHub workflows and the shared action, checked here since they cannot
run on these machines (their schemas are checked by make lint's hooks):
third-party actions pinned to a commit, least privilege, one run per ref,
every Molecule scenario in CI, and every `run:` script clean under shellcheck."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
FILES = WORKFLOWS + ACTIONS
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$")
ON = True  # PyYAML reads the key `on` as True unless quoted


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_third_party_actions_are_pinned_to_a_commit(path):
    for line in path.read_text().splitlines():
        if re.match(r"^\s*(-\s+)?uses:", line) and "uses: ./" not in line:
            assert PINNED.match(line), f"not pinned to a commit SHA with its version in a comment: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_least_privilege_and_one_run_per_ref(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job or set(job["permissions"].values()) <= {"read", "none"}
               for job in workflow["jobs"].values())
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "${{ github.ref }}" in workflow["concurrency"]["group"]


def test_ci_runs_lint_unit_and_every_molecule_scenario():
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    triggers = ci.get("on", ci.get(ON))
    assert {"push", "pull_request"} <= set(triggers)
    runs = " ".join(step.get("run", "") for job in ci["jobs"].values() for step in job["steps"])
    assert "make lint" in runs and "make unit" in runs and "make molecule" in runs
    scenarios = {p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml")}
    assert set(ci["jobs"]["molecule"]["strategy"]["matrix"]["scenario"]) == scenarios


def test_macos_runs_on_a_schedule_too():
    macos = yaml.safe_load((ROOT / ".github/workflows/macos.yml").read_text())
    assert macos.get("on", macos.get(ON))["schedule"]


def run_scripts():
    for path in FILES:
        doc = yaml.safe_load(path.read_text())
        steps = [s for job in doc.get("jobs", {}).values() for s in job.get("steps", [])]
        steps += doc.get("runs", {}).get("steps", [])
        for n, step in enumerate(steps):
            if "run" in step:
                yield pytest.param(step["run"], id=f"{path.name}:{step.get('name', n)}")


@pytest.mark.parametrize("script", list(run_scripts()))
def test_run_scripts_pass_shellcheck(script, tmp_path):
    if not shutil.which("shellcheck"):
        subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "shellcheck"], check=True)
    # Expressions are expanded by GitHub before the shell sees the script.
    body = re.sub(r"\$\{\{.*?\}\}", "EXPR", script, flags=re.S)
    path = tmp_path / "step.sh"
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
    done = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
