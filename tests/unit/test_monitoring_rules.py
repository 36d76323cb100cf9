"""Alert rules of role monitoring: rendered through the role's template with
its defaults, checked by promtool, and unit-tested (firing and not firing)
with `promtool test rules` (tests/unit/monitoring/rules_test.yml)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RENDERED = ROOT / "build" / "monitoring"
TESTS = Path(__file__).parent / "monitoring" / "rules_test.yml"


@pytest.fixture(scope="module")
def rules(run_playbook):
    if not shutil.which("promtool"):
        subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "promtool=prometheus"], check=True)
    run_playbook("tests/playbooks/render-monitoring.yml")
    return RENDERED / "ccproxy-rules.yml"


def test_rules_pass_promtool_check(rules):
    done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_unit_tests(rules):
    shutil.copy(TESTS, RENDERED / TESTS.name)
    done = subprocess.run(["promtool", "test", "rules", TESTS.name], cwd=RENDERED,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing(rules):
    alerts = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"


def test_thresholds_come_from_variables(rules):
    # Every number in an expression that is a threshold is a role variable.
    text = (ROOT / "roles/monitoring/templates/rules.yml.j2").read_text()
    for expr in re.findall(r"> \S+$|< \S+$", text, re.M):
        assert "{{" in expr or expr == "< 0", expr
