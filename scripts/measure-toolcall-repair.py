#!/usr/bin/env python3
"""What the tool-call repair (ccproxy_litellm.toolcalls) costs per answer:
parse() on a whole answer, and StreamGate on a streamed one, for a 10 KB prose
answer (no call; the common case) and a fenced call fed one character at a
time (the worst case for the gate). Prints milliseconds per answer.

Usage: scripts/measure-toolcall-repair.py [--runs N]"""
import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles" / "litellm" / "files"))
from ccproxy_litellm import toolcalls  # noqa: E402

OFFERED = {"Read": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
           "Write": None}
PROSE = "Here is what I found in the code. " * 300
CALL = '```json\n{"name": "Read", "arguments": {"file_path": "/etc/hostname"}}\n```'


def stream(pieces):
    gate = toolcalls.StreamGate(OFFERED)
    for piece in pieces:
        gate.feed(piece)
    return gate.finish()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    words = [w + " " for w in PROSE.split(" ")]
    cases = [
        ("parse, 10 KB prose", lambda: toolcalls.parse(PROSE, OFFERED)),
        ("parse, fenced call", lambda: toolcalls.parse(CALL, OFFERED)),
        (f"stream, 10 KB prose in {len(words)} pieces", lambda: stream(words)),
        (f"stream, fenced call in {len(CALL)} one-character pieces", lambda: stream(list(CALL))),
    ]
    for name, fn in cases:
        print(f"{name}: {timeit.timeit(fn, number=runs) / runs * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
