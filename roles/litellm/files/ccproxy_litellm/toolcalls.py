"""Tool calls that qwen2.5-coder wrote as text, turned back into tool calls.

Why: qwen2.5-coder (7b/14b/32b-instruct) served by Ollama often answers a
request that offers tools with the call written into ``message.content``
instead of ``tool_calls`` (ollama/ollama#12174, #15529;
musistudio/claude-code-router#376; QwenLM/Qwen3-Coder#180; vLLM sees the same,
vllm-project/vllm#32926). Ollama's parser only looks for the template's
``<tool_call>`` tags, which the coder models rarely write, so the agent
(Claude Code, Codex, opencode...) prints the JSON and its tool loop stops.
The shapes seen in real outputs:

- the bare object as the whole content:
  ``{"name": "TodoWrite", "arguments": {"todos": []}}``, one line or
  pretty-printed over several;
- the same in a fenced code block (three backticks, then ``json`` or
  nothing): what Qwen2.5-Coder writes without a format instruction, and
  under Claude Code's system prompt;
- ``<tool_call>\\n{...}\\n</tool_call>``, the format Qwen's template asks for;
- any of those after some prose, or several in a row.

This module decides whether a content is such a call. It is pure stdlib and
has no LiteLLM import; ``parse`` works on a whole content, ``StreamGate`` on a
stream of content pieces.

The rules, strict so that an ordinary answer containing JSON is never turned
into a call:

1. Where: a call starts at the beginning of a line (the start of the content
   or just after a newline; spaces/tabs before it are allowed) with ``{``,
   three backticks or ``<tool_call>``, and the call, or several calls separated only
   by whitespace, runs to the end of the content: nothing but whitespace may
   follow. JSON in the middle of an answer is never a call, nor is JSON inside
   a fence or ``<tool_call>`` block the prose opened and left unclosed. Text
   before the call is ``Repair.prose`` (stripped).
2. Wrappers: a bare object is one JSON object; a fence opens with three
   backticks and ``json`` or no language (any other language is not a call)
   and closes with three backticks; a tag block is ``<tool_call>`` ...
   ``</tool_call>``. Fences and tags must be closed and
   may hold one or more objects, or a JSON list of objects.
3. The object: exactly two keys, ``name`` (a string naming an OFFERED tool)
   and ``arguments`` or ``parameters`` (an object, or a string holding a JSON
   object), nothing else; its first key must be one of them. (No wrapper
   such as ``{"type": "function", "function": {...}}`` is accepted: no real
   qwen2.5-coder output with one was found.)
4. Schema: when the offered tool's JSON schema lists ``required`` keys, each
   must be present in the arguments; otherwise it is not a call (a
   hallucinated argument shape stays text). Types are not checked.
5. All or nothing: if the content ends in call-shaped objects (rule 1 and 2)
   and any of them fails rule 3 or 4, or the JSON is malformed, the whole
   content stays text; a valid call after an invalid one is not picked out.

``StreamGate`` passes text through as it comes until a line could start a
call (rule 1), then holds text back; it releases held text as soon as it is
certain that it cannot become a call (a fence in another language, a first
key that no call has, a finished object that is not a valid call, text after
a finished object), and decides at ``finish()`` with the same rules as
``parse`` on the whole text. Held text is never lost.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Repair", "parse", "StreamGate", "TRIGGERS"]

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"
FENCE = "```"
# What a line starts with when it may start a call (after spaces/tabs).
TRIGGERS = ("{", FENCE, TOOL_OPEN)
# Keys a call object may start with (rule 3).
_KEYS = ("name", "arguments", "parameters")
_FENCE_LANGS = ("", "json")
_WS = " \t\r\n"
_DECODER = json.JSONDecoder()

# Outcomes of reading a (possibly unfinished) call from some position.
_BAD = "bad"                # cannot become a call, whatever follows
_MORE = "more"              # could still become one with more text


@dataclass
class Repair:
    """A content read as tool calls: ``prose`` before them (stripped, "" if
    none) and ``calls``, each ``{"name": str, "arguments": dict}``."""
    prose: str = ""
    calls: list[dict] = field(default_factory=list)


def parse(text: str, offered: Mapping[str, dict | None]) -> Repair | None:
    """The tool calls written as ``text``, or None if it is not (only) that.

    ``offered`` maps the names of the tools the request offered to their JSON
    schema ``parameters`` (or None). See the module docstring for the rules.
    """
    found = _find(text, offered)
    if found is None:
        return None
    start, calls = found
    return Repair(prose=text[:start].strip(), calls=calls)


def _find(text: str, offered: Mapping[str, dict | None]) -> tuple[int, list[dict]] | None:
    """(start of the line where the calls begin, calls) or None."""
    if not text or not offered:
        return None
    if not text.rstrip(_WS).endswith(("}", FENCE, TOOL_CLOSE)):
        return None                          # quick reject: no call can end here
    for start in _line_starts(text):
        j = _skip(text, start, " \t")
        if not text.startswith(TRIGGERS, j):
            continue
        got = _sequence(text, j, offered, final=True)
        if isinstance(got, list):
            if not _inside_block(text[:start]):
                return start, got
        elif isinstance(_sequence(text, j, None, final=True), list):
            return None     # call-shaped to the end, but not all valid calls
    return None


def _inside_block(before: str) -> bool:
    """Whether text after ``before`` is inside a code fence or a tag block
    that ``before`` opened and did not close (then it is shown, not called)."""
    fences = sum(1 for line in before.split("\n") if line.lstrip(" \t").startswith(FENCE))
    return fences % 2 == 1 or before.count(TOOL_OPEN) > before.count(TOOL_CLOSE)


def _line_starts(text: str):
    yield 0
    i = text.find("\n")
    while i >= 0:
        yield i + 1
        i = text.find("\n", i + 1)


def _skip(text: str, i: int, chars: str = _WS) -> int:
    n = len(text)
    while i < n and text[i] in chars:
        i += 1
    return i


def _sequence(text, pos, offered, final):
    """Read one or more calls from ``pos`` to the end of ``text``.

    Returns the list of calls when they run to the end; ``_BAD`` when they
    cannot; ``_MORE`` (only when not ``final``) when more text could still make
    them a call. ``_BAD`` is only returned when no continuation of ``text``
    could succeed, which is what lets ``StreamGate`` release held text early.
    """
    calls: list[dict] = []
    while True:
        got = _segment(text, pos, offered, final)
        if not isinstance(got, tuple):
            return got
        more, pos = got
        calls += more
        pos = _skip(text, pos)
        if pos == len(text):
            return calls
        rest = text[pos:]
        if rest.startswith(TRIGGERS):
            continue
        if not final and any(t.startswith(rest) for t in TRIGGERS):
            return _MORE
        return _BAD


def _segment(text, p, offered, final):
    """One wrapped call (bare object, fence or tag block) at ``p``:
    (calls, end) or ``_BAD`` / ``_MORE``."""
    if text.startswith(TOOL_OPEN, p):
        return _values(text, p + len(TOOL_OPEN), TOOL_CLOSE, offered, final)
    if text.startswith(FENCE, p):
        nl = text.find("\n", p + len(FENCE))
        if nl < 0:
            info = text[p + len(FENCE):].strip().lower()
            if final or not any(lang.startswith(info) for lang in _FENCE_LANGS):
                return _BAD
            return _MORE
        if text[p + len(FENCE):nl].strip().lower() not in _FENCE_LANGS:
            return _BAD
        return _values(text, nl + 1, FENCE, offered, final)
    got = _value(text, p, final)
    if not isinstance(got, tuple):
        return got
    value, end = got
    calls = _calls(value, offered)
    return _BAD if calls is None else (calls, end)


def _values(text, q, close, offered, final):
    """JSON values up to the closing ``close``: (calls, end after close)."""
    calls: list[dict] = []
    while True:
        q = _skip(text, q)
        if calls and text.startswith(close, q):
            return calls, q + len(close)
        if q == len(text):
            return _BAD if final else _MORE
        if not final and close.startswith(text[q:]):
            return _MORE
        got = _value(text, q, final)
        if not isinstance(got, tuple):
            return got
        value, q = got
        more = _calls(value, offered)
        if more is None:
            return _BAD
        calls += more


def _value(text, q, final):
    """A JSON object (or list of objects) at ``q``: (value, end)."""
    if text[q] not in "{[":
        return _BAD
    first = _first_key_ok(text, q)
    if first is False:
        return _BAD
    try:
        return _DECODER.raw_decode(text, q)
    except json.JSONDecodeError:
        return _BAD if final else _MORE


def _first_key_ok(text, q):
    """Whether the object at ``q`` (or the first in a list) starts with a key
    a call has: True, False, or None when the text ends before it is known."""
    if text[q] == "[":
        q = _skip(text, q + 1)
        if q == len(text):
            return None
        if text[q] != "{":
            return False
    q = _skip(text, q + 1)
    if q == len(text):
        return None
    if text[q] != '"':
        return False
    end = text.find('"', q + 1)
    if end < 0:
        partial = text[q + 1:]
        return None if any(k.startswith(partial) for k in _KEYS) else False
    return text[q + 1:end] in _KEYS


def _calls(value, offered):
    """A decoded value as a list of calls, or None if any part is not one.
    With ``offered`` None, only the shape is read: a list of objects."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    if offered is None:
        return items if all(isinstance(item, dict) for item in items) else None
    calls = [_call(item, offered) for item in items]
    return None if any(c is None for c in calls) else calls


def _call(obj, offered):
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    if keys == {"name", "arguments"}:
        args = obj["arguments"]
    elif keys == {"name", "parameters"}:
        args = obj["parameters"]
    else:
        return None
    name = obj["name"]
    if not isinstance(name, str) or name not in offered:
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    schema = offered[name]
    required = schema.get("required") if isinstance(schema, dict) else None
    if isinstance(required, list) and any(
            isinstance(key, str) and key not in args for key in required):
        return None
    return {"name": name, "arguments": args}


class StreamGate:
    """Streams content through while holding back what may be a tool call.

    ``feed(piece)`` returns the text that is safe to emit now (possibly "");
    ``finish()`` returns ``(text, repair)``: with ``repair`` None, ``text`` is
    everything still held (emit it: it was not a call); with a ``Repair``,
    ``text`` is the part of its prose that was held back ("" in the usual
    case, where the prose was already emitted), to emit before the calls.
    Emitted text + ``text`` always equals the content (when not a call) or
    holds all of the prose (when a call). The decision is ``parse`` on the
    whole content, so both agree on every split of it into pieces.
    """

    _RECHECK = "}]`>\n"

    def __init__(self, offered: Mapping[str, dict | None]):
        self.offered = offered
        self._emitted: list[str] = []
        self._emitted_len = 0
        self._pending = ""          # start of a line that may still become a trigger
        self._held = ""             # held from a line that starts with a trigger
        self._holding = False
        self._at_line_start = True
        self._complete = False      # last check read complete calls to the end

    def feed(self, piece: str) -> str:
        if not piece:
            return ""
        out = []
        if self._holding:
            self._held += piece
            if not (len(self._held) < 256 or self._complete
                    or any(c in piece for c in self._RECHECK)):
                return ""
        else:
            buf, self._pending = self._pending + piece, ""
            out.append(self._scan(buf))
        while self._holding:
            got = _sequence(self._held, _skip(self._held, 0, " \t"), self.offered, final=False)
            self._complete = isinstance(got, list)
            if got != _BAD:
                break
            # No continuation makes a call from this line: release it and
            # look for the next line that may start one.
            text, self._held, self._holding = self._held, "", False
            nl = text.find("\n")
            cut = len(text) if nl < 0 else nl + 1
            out.append(text[:cut])
            self._at_line_start = text[:cut].endswith("\n")
            out.append(self._scan(text[cut:]))
        return self._emit("".join(out))

    def finish(self) -> tuple[str, Repair | None]:
        if not self._holding:
            text, self._pending = self._pending, ""
            return text, None
        held, self._held, self._holding = self._held, "", False
        whole = "".join(self._emitted) + held
        found = _find(whole, self.offered)
        if found is None or found[0] < self._emitted_len:
            return held, None
        start, calls = found
        before = whole[self._emitted_len:start]
        return (before if before.strip() else ""), Repair(whole[:start].strip(), calls)

    def _emit(self, text: str) -> str:
        if text:
            self._emitted.append(text)
            self._emitted_len += len(text)
        return text

    def _scan(self, buf: str) -> str:
        """Pass ``buf`` through up to the first line that starts with a
        trigger (then hold from there) or may still do so (keep it pending)."""
        out, i, n = [], 0, len(buf)
        while i < n:
            if self._at_line_start:
                rest = buf[_skip(buf, i, " \t"):]
                if rest.startswith(TRIGGERS):
                    self._holding, self._held, self._complete = True, buf[i:], False
                    break
                if any(t.startswith(rest) for t in TRIGGERS):
                    self._pending = buf[i:]
                    break
                self._at_line_start = False
            nl = buf.find("\n", i)
            if nl < 0:
                out.append(buf[i:])
                break
            out.append(buf[i:nl + 1])
            i = nl + 1
            self._at_line_start = True
        return "".join(out)
