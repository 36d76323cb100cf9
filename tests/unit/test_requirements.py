"""requirements.yml and the collections bundled in the venv must never drift.

Galaxy is unreachable here, so the collections come from the pinned `ansible`
package. These tests prove, offline, that the bundle satisfies every range in
requirements.yml, and that every collection the repository's YAML names is listed.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
# Namespaces that ship with ansible-core itself and need no requirement.
BUILTIN = {"ansible.builtin", "ansible.legacy"}
SCANNED = ["playbooks", "roles", "molecule", "inventory", "site.yml"]


def installed_collections():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "list", "--format", "json"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    found = {}
    for path_entries in json.loads(out).values():
        for name, info in path_entries.items():
            found.setdefault(name, info["version"])
    return found


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda r: r["name"])
def test_bundle_satisfies_requirement(req):
    installed = installed_collections()
    assert req["name"] in installed, f"{req['name']} is not installed in the venv"
    spec = SpecifierSet(req["version"])
    assert Version(installed[req["name"]]) in spec, (
        f"{req['name']} {installed[req['name']]} does not satisfy {req['version']}"
    )


def test_every_used_collection_is_required():
    fqcn = re.compile(r"\b([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*\b")
    required = {r["name"] for r in REQUIREMENTS}
    known = installed_collections()
    used = set()
    for top in SCANNED:
        base = ROOT / top
        files = [base] if base.is_file() else list(base.rglob("*.yml"))
        for f in files:
            for m in fqcn.finditer(f.read_text()):
                if m.group(1) in known:
                    used.add(m.group(1))
    missing = used - required - BUILTIN
    assert not missing, f"collections used but not in requirements.yml: {sorted(missing)}"
