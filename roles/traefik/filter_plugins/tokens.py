"""traefik_token_problems: what is wrong with a client-token list, by the one
definition in files/token_spec.py (never naming a token value);
traefik_edge_tokens: the edge's entries for them (hashes, no token)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "files"))
import token_spec  # noqa: E402


class FilterModule:
    def filters(self):
        return {"traefik_token_problems": token_spec.list_problems,
                "traefik_edge_tokens": token_spec.edge_entries}
