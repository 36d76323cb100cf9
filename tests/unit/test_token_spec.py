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


def test_edge_entries_never_carry_the_token():
    entries = token_spec.edge_entries([{"name": "a", "token": TOKEN, "expires": "2027-01-31T00:00:00Z"},
                                       {"name": "b", "token": TOKEN + "b"}])
    assert entries == [{"name": "a", "sha256": token_spec.hashlib.sha256(TOKEN.encode()).hexdigest(),
                        "expires": "2027-01-31T00:00:00Z"},
                       {"name": "b", "sha256": token_spec.hashlib.sha256((TOKEN + "b").encode()).hexdigest(),
                        "expires": ""}]
    assert TOKEN not in json.dumps(entries)
    assert token_spec.tokens_file_problems({"tokens": entries}) == []


def check_file(tmp_path, kind, text):
    path = tmp_path / "file"
    path.write_text(text)
    return subprocess.run([sys.executable, str(FILES / "check_config.py"), kind, str(path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("text, fragment", [
    ('{"tokens": [', "Expecting"),
    ('[]', "JSON object"),
    ('{"tokens": [], "extra": 1}', "JSON object"),
    ('{"tokens": []}', "non-empty"),
    (json.dumps({"tokens": [{"name": "a", "sha256": SHA[:-1]}]}), "sha256"),
    (json.dumps({"tokens": [{"name": "a", "sha256": SHA, "expires": CASES["invalid"][0]}]}), "expires"),
])
def test_a_bad_tokens_file_is_refused(tmp_path, text, fragment):
    run = check_file(tmp_path, "tokens", text)
    assert run.returncode == 1
    assert fragment in run.stderr


def test_a_good_tokens_file_passes(tmp_path):
    run = check_file(tmp_path, "tokens", json.dumps({"tokens": [{"name": "a", "sha256": SHA, "expires": ""}]}))
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("auth, fragment", [
    ({"tokensFile": "tokens.json"}, "absolute path"),
    ({"tokensFile": "/etc/traefik/tokens.json", "tokens": [{"name": "a", "sha256": SHA}]}, "not both"),
    ({"tokensFile": "/etc/traefik/tokens.json", "tokenFile": "x"}, "unknown keys"),
])
def test_the_routing_file_names_its_tokens_file_plainly(tmp_path, auth, fragment):
    conf = {"http": {"routers": {}, "services": {}, "middlewares": {"auth": {"plugin": {"tokenauth": auth}}}}}
    run = check_file(tmp_path, "dynamic", yaml.safe_dump(conf))
    assert run.returncode == 1
    assert fragment in run.stderr
