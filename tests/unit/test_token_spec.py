"""The one definition of a valid token entry (roles/traefik/files/token_spec.py),
against the cases the Go plugin is tested with too."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "roles" / "traefik" / "files"
sys.path.insert(0, str(FILES))
import token_spec  # noqa: E402

CASES = json.loads((FILES / "plugins-local/src/github.com/ccproxy/tokenauth/testdata/expires.json").read_text())
TOKEN = "t" * 43
SHA = "a" * 64


@pytest.mark.parametrize("value", CASES["valid"])
def test_valid_expires(value):
    assert token_spec.entry_problems({"name": "a", "token": TOKEN, "expires": value}) == []


@pytest.mark.parametrize("value", CASES["invalid"])
def test_invalid_expires(value):
    problems = token_spec.entry_problems({"name": "a", "token": TOKEN, "expires": value})
    assert len(problems) == 1 and "expires" in problems[0]


def test_offsets_compare_as_instants():
    assert token_spec.parse_expires("2027-01-31T02:00:00+02:00") == token_spec.parse_expires("2027-01-31T00:00:00Z")


@pytest.mark.parametrize("entry,fragment", [
    ({"name": "", "token": TOKEN}, "name"),
    ({"name": "-a", "token": TOKEN}, "name"),
    ({"name": "a b", "token": TOKEN}, "name"),
    ({"name": "a", "token": "short"}, "at least 32"),
    ({"name": "a"}, "at least 32"),
    ({"name": "a", "token": TOKEN, "expire": ""}, "unknown keys"),
    ("a", "mapping"),
])
def test_vault_entry_problems(entry, fragment):
    problems = token_spec.entry_problems(entry)
    assert problems and fragment in " ".join(problems)
    assert TOKEN not in " ".join(problems), "a problem must never quote a token"


def test_edge_entries_use_sha256():
    assert token_spec.entry_problems({"name": "a", "sha256": SHA}, secret_key="sha256") == []
    assert "sha256" in token_spec.entry_problems({"name": "a", "sha256": SHA.upper()}, secret_key="sha256")[0]


def test_list_problems():
    assert token_spec.list_problems([]) == ["the token list must be a non-empty list"]
    dup = token_spec.list_problems([{"name": "a", "token": TOKEN}, {"name": "b", "token": TOKEN}])
    assert dup == ["two entries share a token"]


def test_edge_config_check_uses_the_same_definition(tmp_path):
    """check_config.py on the host refuses what token_spec refuses."""
    conf = {"http": {"routers": {}, "services": {}, "middlewares": {"auth": {"plugin": {"tokenauth": {
        "tokens": [{"name": "a", "sha256": SHA, "expires": CASES["invalid"][0]}]}}}}}}
    path = tmp_path / "dynamic.yml"
    path.write_text(yaml.safe_dump(conf))
    run = subprocess.run([sys.executable, str(FILES / "check_config.py"), "dynamic", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "expires" in run.stderr
