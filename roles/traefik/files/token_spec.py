"""What a valid client-token entry is: the one definition.

Used on the control node by the token filters (plugins/filter/ccproxy_tokens.py)
and the vault preflight, and on the gateway host by check_config.py, which is
installed beside this file. The edge plugin's Go parser is tested against the
same cases (plugins-local/.../tokenauth/testdata/expires.json).

A vault entry is {name, token, expires?}; the edge's is {name, sha256, expires?}.
expires is empty (never) or an RFC 3339 date-time with a zone: 2027-01-31T00:00:00Z,
2027-01-31T02:00:00+02:00, optional fractional seconds, and a space for the T
(how a YAML timestamp prints).
"""
import hashlib
import re
from datetime import datetime

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
EXPIRES = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
MIN_TOKEN_LENGTH = 32


def parse_expires(value):
    """The expiry as an aware datetime; None for never. ValueError if malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not EXPIRES.match(value):
        raise ValueError(f"expires {value!r} is not an RFC 3339 time with a zone (e.g. 2027-01-31T00:00:00Z)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"expires {value!r} is not a real date and time") from exc


def entry_problems(entry, secret_key="token"):
    """What is wrong with one entry, naming fields but never their values.
    secret_key: "token" for a vault entry, "sha256" for the edge's."""
    if not isinstance(entry, dict):
        return ["is not a mapping"]
    problems = []
    unknown = set(entry) - {"name", secret_key, "expires"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    if not NAME.match(str(entry.get("name", ""))):
        problems.append("name must be letters, digits, '.', '_' or '-', starting with a letter or digit")
    secret = entry.get(secret_key)
    if secret_key == "sha256":
        if not isinstance(secret, str) or not SHA256_HEX.match(secret):
            problems.append("sha256 is not a lowercase SHA-256 hex digest")
    elif not isinstance(secret, str) or len(secret) < MIN_TOKEN_LENGTH:
        problems.append(f"token must be a string of at least {MIN_TOKEN_LENGTH} characters")
    try:
        parse_expires(entry.get("expires"))
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def list_problems(entries, secret_key="token"):
    """Problems of a whole list, as "entry N (name X): problem" lines."""
    if not isinstance(entries, list) or not entries:
        return ["the token list must be a non-empty list"]
    out = []
    for i, entry in enumerate(entries):
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        out += [f"entry {i} (name {name!r}): {p}" for p in entry_problems(entry, secret_key)]
    secrets = [e.get(secret_key) for e in entries if isinstance(e, dict)]
    if len(set(map(str, secrets))) != len(secrets):
        out.append(f"two entries share a {secret_key}")
    return out


def token_hash(token):
    """What the edge stores and compares: lowercase hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def edge_entries(entries):
    """The edge's entries for vault entries: {name, sha256, expires}, the
    token itself never."""
    return [{"name": e["name"], "sha256": token_hash(e["token"]), "expires": str(e.get("expires") or "")}
            for e in entries]


def tokens_file_problems(doc):
    """What is wrong with the edge's tokens file ({"tokens": [...]})."""
    if not isinstance(doc, dict) or set(doc) != {"tokens"}:
        return ['the tokens file must be a JSON object {"tokens": [...]}']
    return list_problems(doc["tokens"], secret_key="sha256")
