"""Filters for ccproxy's client tokens.

A token entry is {name, token, expires?}: `name` is the client, `expires` an
optional RFC 3339 time after which the edge refuses it (what is valid is
defined once, in roles/traefik/files/token_spec.py). Several entries may share
a name; during a rotation the old one carries an expiry and the newest entry
of a name is the one its client should use.
"""
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

from ansible.errors import AnsibleFilterError

# The one definition of a valid entry, shipped to the gateway host too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "traefik" / "files"))
import token_spec  # noqa: E402

# How rotation writes expiries (UTC, whole seconds): one of the forms token_spec accepts.
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TOKEN_BYTES = 32  # 256 bits from the OS CSPRNG


def new_token(_=None):
    """A fresh client token: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_tokens(names):
    """One fresh entry {name, token, expires: ""} per client name."""
    if not names or len(set(names)) != len(names):
        raise AnsibleFilterError("client names must be a non-empty list without repeats")
    return [{"name": name, "token": new_token(), "expires": ""} for name in names]


def token_hash(token):
    """What the edge stores and compares: lowercase hex SHA-256 of the token."""
    if not isinstance(token, str) or not token:
        raise AnsibleFilterError("ccproxy_token_hash needs a non-empty string")
    return token_spec.token_hash(token)


def _parse_expires(value):
    try:
        return token_spec.parse_expires(value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def token_problems(tokens):
    """What is wrong with a vault's client-token list (never a token value)."""
    return token_spec.list_problems(tokens)


def _expired(entry, now):
    expires = entry.get("expires") or ""
    return bool(expires) and _parse_expires(expires) <= now


def _now(now_epoch):
    return datetime.fromtimestamp(int(now_epoch), tz=timezone.utc)


def prune_expired(tokens, now_epoch):
    """Drop entries whose expiry has passed."""
    now = _now(now_epoch)
    return [dict(t) for t in tokens if not _expired(t, now)]


def current_tokens(tokens):
    """The newest entry of each client, in first-seen order of the names."""
    newest = {}
    for entry in tokens:
        newest[entry["name"]] = entry
    return list(newest.values())


def _clients(kept, clients):
    names = list(dict.fromkeys(t["name"] for t in kept))
    wanted = list(dict.fromkeys(clients)) if clients else names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise AnsibleFilterError(f"no tokens for client(s) {', '.join(unknown)}; known: {', '.join(names)}")
    return wanted


def add_tokens(tokens, clients, now_epoch):
    """Rotation, phase 1: prune expired entries and give each of `clients`
    (names; empty = every client) a new entry. The new entry keeps the expiry
    of the client's newest one (a contractor's token meant to end on a date
    still ends then), or none. Every other entry is left as it was: the old
    tokens keep working with no new deadline until phase 2, so a run that
    stops here locks nobody out."""
    kept = prune_expired(tokens, now_epoch)
    newest = {entry["name"]: entry.get("expires") or "" for entry in current_tokens(kept)}
    return kept + [dict(entry, expires=newest[entry["name"]]) for entry in new_tokens(_clients(kept, clients))]


def start_grace(tokens, clients, now_epoch, grace_seconds):
    """Rotation, phase 2, once every client holds its newest token: each of
    `clients`' older entries expires at now + grace_seconds (or keeps an
    earlier expiry)."""
    grace_seconds = int(grace_seconds)
    if grace_seconds < 0:
        raise AnsibleFilterError("grace_seconds cannot be negative")
    kept = prune_expired(tokens, now_epoch)
    wanted = _clients(kept, clients)
    newest = {t["token"] for t in current_tokens(kept)}
    deadline = _now(int(now_epoch) + grace_seconds)
    for entry in kept:
        if entry["name"] in wanted and entry["token"] not in newest:
            expires = entry.get("expires") or ""
            if not expires or _parse_expires(expires) > deadline:
                entry["expires"] = deadline.strftime(EXPIRES_FORMAT)
    return kept


class FilterModule:
    def filters(self):
        return {
            "ccproxy_new_token": new_token,
            "ccproxy_new_tokens": new_tokens,
            "ccproxy_token_hash": token_hash,
            "ccproxy_prune_expired": prune_expired,
            "ccproxy_current_tokens": current_tokens,
            "ccproxy_add_tokens": add_tokens,
            "ccproxy_start_grace": start_grace,
            "ccproxy_token_problems": token_problems,
        }
