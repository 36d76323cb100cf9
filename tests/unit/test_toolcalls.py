"""ccproxy_litellm.toolcalls: tool calls that qwen2.5-coder wrote as text.

The REAL_* contents are qwen2.5-coder outputs quoted from public issues and
benchmark results (URL above each); they must become tool calls. The
negatives are ordinary answers that contain JSON; they must stay text.
StreamGate must agree with parse on every split of a content into pieces,
and never lose text.
"""
import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "roles/litellm/files"))
from ccproxy_litellm import toolcalls  # noqa: E402
from ccproxy_litellm.toolcalls import Repair, StreamGate, parse  # noqa: E402


def obj(*required, **props):
    return {"type": "object", "properties": {k: {"type": "string"} for k in (*required, *props)},
            "required": list(required)}


# Claude Code's tools (the ones these outputs name), with their required keys.
CLAUDE = {
    "Read": obj("file_path"),
    "Write": obj("file_path", "content"),
    "Edit": obj("file_path", "old_string", "new_string"),
    "Bash": obj("command", description="x"),
    "TodoWrite": obj("todos"),
    "Glob": obj("pattern"),
}

# --- Real outputs --------------------------------------------------------------

# https://github.com/ollama/ollama/issues/12174 (qwen2.5-coder:14b, Ollama 0.20.7)
REAL_OLLAMA_12174 = '{"name": "calculator", "arguments": {"expr": "17 * 23"}}'

# https://github.com/musistudio/claude-code-router/issues/376
# (qwen2.5-coder:latest on Ollama, Claude Code's /init)
REAL_CCR_376 = '{"name": "TodoWrite", "arguments": {"todos": []}}'

# https://github.com/openai/codex/issues/2229 (qwen2.5-coder:14b, Ollama)
REAL_CODEX_2229 = '{"name": "shell", "arguments": {"command": ["ls"]}}'

# https://github.com/anomalyco/opencode/issues/10402 (qwen2.5-coder, 16k ctx, Ollama)
REAL_OPENCODE_10402 = (r'{"name": "write", "arguments": {"content": "hello\n", '
                       r'"filePath": "/C:/Code/SimpleTester/todo.md"}}')

# https://github.com/selfagency/opilot/issues/149 (qwen2.5-coder:7b, Ollama 0.32.3), pretty-printed
REAL_OPILOT_149 = """{
"name": "fetch_file_content",
"arguments": {
"filePath": "/my/code/test-project/AGENTS.md"
}
}"""

# https://github.com/mark3labs/mcphost/issues/12 (Qwen2.5-Coder-32B-Instruct-AWQ, vLLM),
# with the blank lines and trailing spaces around it
REAL_MCPHOST_12 = '\n\n  {"name": "filesystem__list_directory", "arguments": {"path": "."}}   \n'

# https://github.com/nicedreamzapp/claude-code-local/pull/43
# (mlx-community/Qwen2.5-Coder-14B-Instruct-4bit, Claude Code tools)
REAL_CLAUDE_LOCAL_43 = """{
  "name": "Bash",
  "arguments": {
    "command": "ls /tmp",
    "description": "List files in /tmp directory"
  }
}"""

# https://github.com/hanXen/vllm-qwen2.5-coder-tool-parser/blob/main/results/output_format/qwen2.5-coder-7b.json
# (Qwen/Qwen2.5-Coder-7B-Instruct, vLLM, no format instruction: 10/10 fenced)
REAL_HANXEN_7B_FENCED = ("```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n"
                         "    \"city\": \"Seoul\"\n  }\n}\n```")
# same file, hermes <tool_call> few-shot prompt: still a fence, one line inside
REAL_HANXEN_7B_HERMES = ("```json\n{\"name\": \"search_web\", \"arguments\": "
                         "{\"query\": \"Python async programming tutorials\"}}\n```")
# https://github.com/hanXen/vllm-qwen2.5-coder-tool-parser/blob/main/results/output_format/qwen2.5-coder-32b-awq.json
# (Qwen/Qwen2.5-Coder-32B-Instruct-AWQ: 10/10 plain JSON)
REAL_HANXEN_32B_PLAIN = "{\"name\": \"read_file\", \"arguments\": {\"path\": \"config.json\"}}"

REAL = [
    (REAL_OLLAMA_12174, {"calculator": obj("expr")}, [("calculator", {"expr": "17 * 23"})]),
    (REAL_CCR_376, CLAUDE, [("TodoWrite", {"todos": []})]),
    (REAL_CODEX_2229, {"shell": obj("command")}, [("shell", {"command": ["ls"]})]),
    (REAL_OPENCODE_10402, {"write": obj("content", "filePath")},
     [("write", {"content": "hello\n", "filePath": "/C:/Code/SimpleTester/todo.md"})]),
    (REAL_OPILOT_149, {"fetch_file_content": obj("filePath")},
     [("fetch_file_content", {"filePath": "/my/code/test-project/AGENTS.md"})]),
    (REAL_MCPHOST_12, {"filesystem__list_directory": obj("path")},
     [("filesystem__list_directory", {"path": "."})]),
    (REAL_CLAUDE_LOCAL_43, CLAUDE,
     [("Bash", {"command": "ls /tmp", "description": "List files in /tmp directory"})]),
    (REAL_HANXEN_7B_FENCED, {"get_weather": obj("city")}, [("get_weather", {"city": "Seoul"})]),
    (REAL_HANXEN_7B_HERMES, {"search_web": obj("query")},
     [("search_web", {"query": "Python async programming tutorials"})]),
    (REAL_HANXEN_32B_PLAIN, {"read_file": obj("path")}, [("read_file", {"path": "config.json"})]),
]

# Real outputs that must stay text.
# https://github.com/Gitlawb/openclaude/issues/287 (qwen2.5-coder:latest, Ollama):
# unescaped quotes and raw newlines inside "content": not JSON.
REAL_MALFORMED_287 = """{"name": "Write", "arguments": {"file_path": "/path/to/index.html", "content": "\\n<html lang="en">\\n\\n
     <meta charset="UTF-8">\\n    <meta name="viewport" content="width=device-width, initial-scale=1.0">\\n
      Document\\n\\n\\n\\n\\n"}}"""
# https://github.com/musistudio/claude-code-router/issues/817 (qwen2.5-coder:latest, Ollama;
# the terminal's line wrap inside "contents" removed): Edit with an invented argument
# shape, none of Edit's required keys.
REAL_BAD_ARGS_817 = """{
    "name": "Edit",
    "arguments": {
      "files": [
        {
          "path": "index.html",
          "contents": "\\n<html lang=en>\\n\\n<meta charset=UTF-8>\\nSimple HTML Page\\n\\n\\nWelcome to My Simple HTML Page\\nThis is a basic example of an HTML file.\\n\\n"
        }
      ]
    }
  }"""

# --- Shapes the brief names, built on the real ones (no verbatim source found) --

# The form Qwen2.5's chat template asks for (https://qwen.readthedocs.io/en/v2.5/framework/function_call.html;
# the template's instruction is quoted in ollama/ollama#12174):
# "<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>"
TAGGED = '<tool_call>\n{"name": "Read", "arguments": {"file_path": "/repo/README.md"}}\n</tool_call>'
TAGGED_TWO = TAGGED + "\n" + ('<tool_call>\n{"name": "Glob", "arguments": {"pattern": "**/*.py"}}\n'
                              "</tool_call>")
PROSE_THEN_FENCE = ("I'll start by reading the README to understand the project.\n\n"
                    "```json\n" + REAL_CLAUDE_LOCAL_43.replace("Bash", "Read").replace(
                        '"command": "ls /tmp",\n    "description": "List files in /tmp directory"',
                        '"file_path": "/repo/README.md"') + "\n```\n")
# opilot#149's first report shows two bare objects on consecutive lines (arguments elided there)
TWO_BARE = ('{"name": "Glob", "arguments": {"pattern": "*"}}\n'
            '{"name": "Read", "arguments": {"file_path": "/repo/AGENTS.md"}}')


def calls(repair):
    return [(c["name"], c["arguments"]) for c in repair.calls]


@pytest.mark.parametrize("text,offered,expected", REAL, ids=lambda v: None)
def test_real_outputs_become_calls(text, offered, expected):
    repair = parse(text, offered)
    assert repair is not None
    assert repair.prose == ""
    assert calls(repair) == expected


@pytest.mark.parametrize("text", [REAL_MALFORMED_287, REAL_BAD_ARGS_817])
def test_real_outputs_that_are_not_valid_calls_stay_text(text):
    assert parse(text, CLAUDE) is None


def test_tool_call_tags_one_and_several():
    assert calls(parse(TAGGED, CLAUDE)) == [("Read", {"file_path": "/repo/README.md"})]
    assert calls(parse(TAGGED_TWO, CLAUDE)) == [("Read", {"file_path": "/repo/README.md"}),
                                                ("Glob", {"pattern": "**/*.py"})]


def test_prose_then_call():
    repair = parse(PROSE_THEN_FENCE, CLAUDE)
    assert repair.prose == "I'll start by reading the README to understand the project."
    assert calls(repair) == [("Read", {"file_path": "/repo/README.md"})]
    repair = parse("Let me look.\n" + TAGGED, CLAUDE)
    assert repair.prose == "Let me look." and len(repair.calls) == 1
    repair = parse("Checking the file:\n" + REAL_CCR_376, CLAUDE)
    assert repair.prose == "Checking the file:" and calls(repair) == [("TodoWrite", {"todos": []})]


def test_several_bare_and_fenced_calls():
    assert [c[0] for c in calls(parse(TWO_BARE, CLAUDE))] == ["Glob", "Read"]
    fenced = REAL_HANXEN_7B_HERMES + "\n\n" + REAL_HANXEN_7B_FENCED
    offered = {"search_web": obj("query"), "get_weather": obj("city")}
    assert [c[0] for c in calls(parse(fenced, offered))] == ["search_web", "get_weather"]
    listed = '```json\n[{"name": "Glob", "arguments": {"pattern": "*"}}, {"name": "Read", "arguments": {"file_path": "a"}}]\n```'
    assert [c[0] for c in calls(parse(listed, CLAUDE))] == ["Glob", "Read"]


@pytest.mark.parametrize("text,expected", [
    ('{"name": "Read", "parameters": {"file_path": "a.py"}}', {"file_path": "a.py"}),
    ('{"name": "Read", "arguments": "{\\"file_path\\": \\"a.py\\"}"}', {"file_path": "a.py"}),
    ('```\n{"name": "Read", "arguments": {"file_path": "a.py"}}\n```', {"file_path": "a.py"}),
    ('```JSON\n{"name": "Read", "arguments": {"file_path": "a.py"}}\n```\n\n', {"file_path": "a.py"}),
    ('<tool_call>{"name": "Read", "arguments": {"file_path": "a.py"}}</tool_call>', {"file_path": "a.py"}),
])
def test_variants(text, expected):
    assert calls(parse(text, CLAUDE)) == [("Read", expected)]


def test_schema_none_and_no_required():
    offered = {"Ping": None, "Free": {"type": "object"}}
    assert calls(parse('{"name": "Ping", "arguments": {}}', offered)) == [("Ping", {})]
    assert calls(parse('{"name": "Free", "arguments": {"x": 1}}', offered)) == [("Free", {"x": 1})]


NOT_CALLS = [
    # a name that was not offered
    ('{"name": "get_weather", "arguments": {"city": "Seoul"}}', "not offered"),
    (REAL_OLLAMA_12174, "not offered (calculator)"),
    # no tools offered at all
    # JSON in the middle of prose
    ('Your call would look like this:\n{"name": "Read", "arguments": {"file_path": "a"}}\n'
     'and Claude Code runs it.', "json mid prose"),
    ('Run `{"name": "Read", "arguments": {"file_path": "a"}}` to read it.', "inline json"),
    ('I will call {"name": "Read", "arguments": {"file_path": "a"}}', "not at a line start"),
    # a JSON answer the user asked for
    ('Here is a package.json:\n```json\n{\n  "name": "my-app",\n  "version": "1.0.0",\n'
     '  "scripts": {"test": "pytest"}\n}\n```', "package.json"),
    ('```json\n{"name": "my-tool", "arguments": {"x": 1}}\n```', "example with another name"),
    ('```python\n{"name": "Read", "arguments": {"file_path": "a"}}\n```', "python fence"),
    ('{"name": "Read"}', "no arguments"),
    ('{"name": "Read", "arguments": {"file_path": "a"}, "id": "1"}', "extra key"),
    ('{"name": "Read", "arguments": {"file_path": "a"}, "parameters": {}}', "both args keys"),
    ('{"name": "Read", "arguments": ["a"]}', "arguments not an object"),
    ('{"name": "Read", "arguments": "a.py"}', "arguments a non-JSON string"),
    ('{"name": ["Read"], "arguments": {"file_path": "a"}}', "name not a string"),
    ('{"name": "Read", "arguments": {"path": "a"}}', "required key missing"),
    ('{"type": "function", "function": {"name": "Read", "arguments": {"file_path": "a"}}}', "wrapped"),
    ('{"name": "Read", "arguments": {"file_path": "a"}', "unclosed"),
    ('```json\n{"name": "Read", "arguments": {"file_path": "a"}}\n', "unclosed fence"),
    ('<tool_call>\n{"name": "Read", "arguments": {"file_path": "a"}}\n', "unclosed tag"),
    ('<tool_call>\n</tool_call>', "empty tag"),
    ('```json\n[]\n```', "empty list"),
    (TWO_BARE.replace("Glob", "Grep"), "one of several not offered"),
    (TWO_BARE.replace("Read", "Grep"), "last of several not offered"),
    ('Example:\n```json\n{"name": "my-tool", "arguments": {}}\n```\n'
     '<tool_call>\n{"name": "Glob", "arguments": {"pattern": "*"}}\n</tool_call>',
     "valid call after an invalid one"),
    ('{"name": "Read", "arguments": {"file_path": "a"}}\nDone.', "text after the call"),
    ('{"a": 1}', "plain json"),
    ("", "empty"),
    ("Sure, I can help with that.", "prose"),
    ("int main() {\n    return 0;\n}", "code"),
]


@pytest.mark.parametrize("text,why", NOT_CALLS, ids=[w for _, w in NOT_CALLS])
def test_not_calls(text, why):
    assert parse(text, CLAUDE) is None


def test_nothing_offered():
    assert parse(REAL_CCR_376, {}) is None


# --- StreamGate ---------------------------------------------------------------

CONTENTS = [(t, o) for t, o, _ in REAL] + [(t, CLAUDE) for t, _ in NOT_CALLS] + [
    (t, CLAUDE) for t in (REAL_MALFORMED_287, REAL_BAD_ARGS_817, TAGGED, TAGGED_TWO, PROSE_THEN_FENCE,
                          TWO_BARE, "Let me look.\n" + TAGGED, "text\n``\n", "a\n<tool", "x\n  ",
                          "Here:\n```python\nprint(1)\n```\nand then\n" + REAL_CCR_376,
                          '```json\n{"name": "x"}\n```\nmore\n{"a":\n1}\n' + TAGGED,
                          "The fix:\n```\n{\n  int x;\n}\n```\nDone.\n")]


def run_gate(pieces, offered):
    gate = StreamGate(offered)
    emitted = "".join(gate.feed(p) for p in pieces)
    tail, repair = gate.finish()
    return emitted, tail, repair


def check_gate(text, offered, pieces):
    emitted, tail, repair = run_gate(pieces, offered)
    expected = parse(text, offered)
    assert repair == expected
    if repair is None:
        assert emitted + tail == text
    else:
        assert (emitted + tail).strip() == repair.prose
        assert text.startswith(emitted + tail)


@pytest.mark.parametrize("text,offered", CONTENTS)
def test_gate_every_two_way_split_agrees_with_parse(text, offered):
    for cut in range(len(text) + 1):
        check_gate(text, offered, [text[:cut], text[cut:]])


@pytest.mark.parametrize("text,offered", CONTENTS)
def test_gate_random_splits_and_single_chars(text, offered):
    check_gate(text, offered, list(text))
    rng = random.Random(hash(text) & 0xFFFF)
    for _ in range(30):
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(1, 8))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        check_gate(text, offered, pieces)


def test_gate_passes_prose_through_at_once():
    gate = StreamGate(CLAUDE)
    assert gate.feed("I'll read ") == "I'll read "
    assert gate.feed("the file.\n") == "the file.\n"
    assert gate.feed('{"name": "Read", ') == ""
    assert gate.feed('"arguments": {"file_path": "a"}}') == ""
    assert gate.finish() == ("", Repair("I'll read the file.", [{"name": "Read", "arguments": {"file_path": "a"}}]))


def test_gate_releases_what_cannot_be_a_call_before_the_end():
    gate = StreamGate(CLAUDE)
    # a code fence in another language is released as soon as its language is known
    assert gate.feed("Fix:\n```") == "Fix:\n"
    assert gate.feed("j") == ""
    assert gate.feed("s") == ""
    assert gate.feed("x") == "```jsx"
    assert gate.feed("\nx = {") == "\nx = {"
    # a JSON object whose first key no call has
    assert gate.feed('\n}\n```\n{"version": ') == '\n}\n```\n{"version": '
    # a complete object that is not a valid call, then more
    gate2 = StreamGate(CLAUDE)
    assert gate2.feed('{"name": "Nope", "arguments": {}}') == '{"name": "Nope", "arguments": {}}'
    assert gate2.finish() == ("", None)


def test_gate_holds_a_possible_trigger_at_a_line_start():
    gate = StreamGate(CLAUDE)
    assert gate.feed("a\n``") == "a\n"
    assert gate.feed("x") == "``x"
    assert gate.finish() == ("", None)
    gate = StreamGate(CLAUDE)
    assert gate.feed("a\n<tool_") == "a\n"
    assert gate.finish() == ("<tool_", None)


def test_gate_held_prose_before_the_call_comes_back():
    text = 'Example:\n{"name": "Read", "arguments": {"file_path": "a"}}\nworks like that.\n' + TAGGED
    gate = StreamGate(CLAUDE)
    emitted = "".join(gate.feed(p) for p in text)
    tail, repair = gate.finish()
    assert calls(repair) == [("Read", {"file_path": "/repo/README.md"})]
    assert emitted + tail == text[:text.index("<tool_call>")]


def test_gate_long_write_call_in_small_pieces():
    content = "def f():\n    return {'a': [1, 2]}\n" * 300
    text = "```json\n" + json.dumps({"name": "Write", "arguments": {"file_path": "f.py", "content": content}},
                                    indent=2) + "\n```"
    pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
    emitted, tail, repair = run_gate(pieces, CLAUDE)
    assert emitted == tail == ""
    assert repair.calls[0]["arguments"]["content"] == content


def test_module_docstring_states_the_rules():
    doc = toolcalls.__doc__
    for word in ("offered", "required", "whitespace", "<tool_call>", "parameters", "StreamGate"):
        assert word in doc
