"""The token filters behind init-secrets.yml, site.yml and rotate-token.yml."""
import hashlib
import re
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import ccproxy_tokens as t  # noqa: E402

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z


def rotate_tokens(tokens, clients, now, grace):
    """Both phases of rotate-token.yml, back to back."""
    return t.start_grace(t.add_tokens(tokens, clients, now), clients, now, grace)


def test_new_tokens_are_256_bit_urlsafe_and_distinct():
    tokens = {t.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_hash_is_what_the_edge_reads():
    token = t.new_token()
    digest = t.token_hash(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    # Same shape the Traefik validator and the plugin accept.
    assert re.fullmatch(r"[0-9a-f]{64}", digest)


def test_hash_refuses_empty():
    with pytest.raises(AnsibleFilterError):
        t.token_hash("")


def test_rotate_all_sets_grace_and_appends_new():
    tokens = [{"name": "a", "token": "A" * 43}, {"name": "b", "token": "B" * 43, "expires": ""}]
    out = rotate_tokens(tokens, [], NOW, 86400)
    assert [e["name"] for e in out] == ["a", "b", "a", "b"]
    assert out[0]["expires"] == out[1]["expires"] == "2027-01-16T08:00:00Z"
    assert out[2]["expires"] == out[3]["expires"] == ""
    assert out[2]["token"] not in ("A" * 43, "B" * 43)
    assert tokens[0].get("expires") is None, "input must not be mutated"


def test_rotate_one_client_leaves_others():
    tokens = [{"name": "a", "token": "A" * 43}, {"name": "b", "token": "B" * 43}]
    out = rotate_tokens(tokens, ["b"], NOW, 20)
    assert out[0] == {"name": "a", "token": "A" * 43}
    assert out[1]["expires"] == "2027-01-15T08:00:20Z"
    assert [e["name"] for e in out] == ["a", "b", "b"]


def test_rotate_prunes_expired_and_keeps_earlier_expiry():
    tokens = [
        {"name": "a", "token": "old", "expires": "2027-01-15T07:59:59Z"},   # expired: pruned
        {"name": "a", "token": "mid", "expires": "2027-01-15T08:00:10Z"},   # sooner than grace: kept as is
        {"name": "a", "token": "cur", "expires": ""},
    ]
    out = rotate_tokens(tokens, ["a"], NOW, 60)
    assert [e["token"] for e in out][:2] == ["mid", "cur"]
    assert out[0]["expires"] == "2027-01-15T08:00:10Z"
    assert out[1]["expires"] == "2027-01-15T08:01:00Z"
    assert out[2]["expires"] == ""


def test_rotate_unknown_client_fails():
    with pytest.raises(AnsibleFilterError, match="nosuch"):
        rotate_tokens([{"name": "a", "token": "x"}], ["nosuch"], NOW, 60)


def test_bad_expiry_format_fails():
    with pytest.raises(AnsibleFilterError, match="RFC 3339"):
        t.prune_expired([{"name": "a", "token": "x", "expires": "next tuesday"}], NOW)


def test_expiry_with_offset_is_understood():
    # 08:00:00+02:00 is 06:00:00Z, before NOW (08:00:00Z): expired.
    assert t.prune_expired([{"name": "a", "token": "x", "expires": "2027-01-15 08:00:00+02:00"}], NOW) == []


def test_current_tokens_is_newest_per_client():
    tokens = [{"name": "a", "token": "1"}, {"name": "b", "token": "2"}, {"name": "a", "token": "3"}]
    assert t.current_tokens(tokens) == [{"name": "a", "token": "3"}, {"name": "b", "token": "2"}]


def test_new_tokens_one_per_name():
    out = t.new_tokens(["a", "b"])
    assert [e["name"] for e in out] == ["a", "b"]
    assert out[0]["token"] != out[1]["token"]
    with pytest.raises(AnsibleFilterError):
        t.new_tokens(["a", "a"])


def test_phase_one_adds_and_leaves_old_tokens_without_deadline():
    tokens = [{"name": "a", "token": "A" * 43, "expires": ""}, {"name": "b", "token": "B" * 43, "expires": ""}]
    out = t.add_tokens(tokens, ["a"], NOW)
    assert out[:2] == tokens, "phase 1 must not touch existing entries"
    assert [e["name"] for e in out] == ["a", "b", "a"] and out[2]["expires"] == ""
    assert out[2]["token"] not in (tokens[0]["token"], tokens[1]["token"])


def test_phase_two_starts_the_grace_of_older_entries_only():
    tokens = [{"name": "a", "token": "A" * 43, "expires": ""}, {"name": "b", "token": "B" * 43, "expires": ""},
              {"name": "a", "token": "N" * 43, "expires": ""}]
    out = t.start_grace(tokens, ["a"], NOW, 60)
    assert out[0]["expires"] == "2027-01-15T08:01:00Z"
    assert out[1]["expires"] == "", "another client's token must not get a deadline"
    assert out[2]["expires"] == "", "the newest token must not get a deadline"


def test_a_run_stopped_after_phase_one_locks_nobody_out():
    tokens = [{"name": "a", "token": "A" * 43, "expires": ""}]
    once = t.add_tokens(tokens, [], NOW)
    again = t.add_tokens(once, [], NOW)  # the re-run after a failure
    assert all(e["expires"] == "" for e in again)
    final = t.start_grace(again, [], NOW, 60)
    assert [e["expires"] for e in final] == ["2027-01-15T08:01:00Z", "2027-01-15T08:01:00Z", ""]


def test_rotation_keeps_each_clients_expiry():
    """A token meant to end on a date still ends then after any number of rotations."""
    tokens = [{"name": "contractor", "token": "c" * 43, "expires": "2099-01-31T00:00:00Z"},
              {"name": "agent", "token": "a" * 43, "expires": ""}]
    out = rotate_tokens(rotate_tokens(tokens, [], NOW, 60), [], NOW, 60)
    current = {e["name"]: e for e in t.current_tokens(out)}
    assert current["contractor"]["expires"] == "2099-01-31T00:00:00Z"
    assert current["contractor"]["token"] != "c" * 43
    assert current["agent"]["expires"] == ""
