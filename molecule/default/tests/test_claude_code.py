"""The real Claude Code CLI (pinned in tests/claude-code, `make claude-code`)
works through the edge: TLS verified against the gateway's CA with
NODE_EXTRA_CA_CERTS, never with checks off; its own default model names and
`thinking`; a tool loop over several streamed turns that creates a file
(Write), reads it (Read) and edits it (Edit) on this machine.

The Ollama API test double drives the loop: each `CCPROXY-TOOL <name> <json>`
line of the prompt becomes one tool call, in turn, when Claude Code offers
that tool (tests/ollama_double/ollama). Its request record
(OLLAMA_TEST_DOUBLE_RECORD, inventory/local) shows what reached Ollama."""
import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
CLAUDE = os.environ.get("CCPROXY_CLAUDE_CODE", "")
RECORD = "/var/lib/ollama/test-double-requests.jsonl"
ACCESS_LOG = "/var/log/traefik/access.log"
TIMEOUT = 300


@pytest.fixture(scope="module")
def claude():
    assert CLAUDE and Path(CLAUDE).is_file(), (
        "CCPROXY_CLAUDE_CODE must name the pinned Claude Code CLI: run the tests through make molecule")
    return CLAUDE


def session(claude, gateway, workdir, prompt, token=None, handoff=False, model="qwen-fast"):
    """One headless Claude Code run (-p) in `workdir`, with a fresh home.
    Only the base URL, a token and the CA unless `handoff` (docs/agents.md)."""
    home = workdir / ".home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.origin,
        "ANTHROPIC_API_KEY": token or gateway.token("demo"),
        "NODE_EXTRA_CA_CERTS": str(gateway.ca_cert),
    }
    if handoff:
        env.update({
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_SMALL_FAST_MODEL": model,
            "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "32768",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        })
    done = subprocess.run(
        [claude, "-p", prompt, "--output-format", "json", "--permission-mode", "acceptEdits",
         "--allowedTools", "Write,Read,Edit"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    result = json.loads(done.stdout)
    assert not result.get("is_error"), result
    return result


def edit_prompt(path, marker):
    """Write, Read, then Edit `path`: three tool turns and a closing answer."""
    return "\n".join([
        f"Create, read and edit a file. ({marker})",
        "CCPROXY-TOOL Write " + json.dumps({"file_path": str(path), "content": f"hello {marker}\n"}),
        "CCPROXY-TOOL Read " + json.dumps({"file_path": str(path)}),
        "CCPROXY-TOOL Edit " + json.dumps({"file_path": str(path), "old_string": "hello", "new_string": "edited"}),
    ])


def chats_with(host, marker):
    """The /api/chat bodies Ollama received that carry `marker`."""
    out = host.check_output(f"grep -F {marker} {RECORD} || true")
    bodies = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [b["body"] for b in bodies if b["path"] == "/api/chat"]


@pytest.mark.parametrize("handoff,model", [(False, None), (True, "qwen-fast"), (True, "qwen-quality")],
                         ids=["defaults", "handoff", "text-tool-calls"])
def test_claude_code_writes_reads_and_edits_a_file(claude, gateway, host, tmp_path, handoff, model):
    """qwen-quality is the 32B, which the test double answers with tool calls
    written as text, as qwen2.5-coder often does: the gateway's repair turns
    them into tool_use blocks (inventory/local: OLLAMA_TEST_DOUBLE_TEXT_TOOL_CALLS)."""
    marker = f"cc-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "note.txt"
    result = session(claude, gateway, tmp_path, edit_prompt(path, marker), handoff=handoff, model=model)
    assert path.read_text() == f"edited {marker}\n"
    assert "done after 3 tool calls" in result["result"], result["result"]

    chats = chats_with(host, marker)
    loop = [c for c in chats if c.get("tools")]
    assert len(loop) >= 4, f"expected 4 tool-loop turns, Ollama saw {len(loop)}"
    assert all(c.get("stream") is True for c in loop), "Claude Code's turns are streamed"
    # qwen2.5-coder has no thinking capability: Ollama never sees `think`
    # (it would answer 400), whatever Claude Code asks for.
    assert not [c for c in chats if "think" in c]
    results = [m for c in loop for m in c["messages"] if m["role"] == "tool"]
    assert results and all(m.get("tool_name") in ("Write", "Read", "Edit") for m in results), results
    if not handoff:
        assert {c["model"] for c in loop} == {"qwen2.5-coder:7b-instruct"}


def test_claude_code_model_names_are_served(http, gateway):
    """The names Claude Code sends by default, main and small, answer on
    /v1/models/{id} and count_tokens, like the aliases."""
    headers = {"x-api-key": gateway.token("demo"), "anthropic-version": "2023-06-01"}
    for name in ("claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"):
        r = http.get(f"/v1/models/{name}", headers=headers)
        assert r.status_code == 200 and r.json()["id"] == name, r.text
        r = http.post("/v1/messages/count_tokens", headers=headers,
                      json={"model": name, "messages": [{"role": "user", "content": "count me"}]})
        assert r.status_code == 200 and r.json()["input_tokens"] > 0, r.text
    assert http.get("/v1/models/gpt-5", headers=headers).status_code == 404


@pytest.mark.parametrize("tokens", ["one", "each"])
def test_parallel_sessions_all_finish(claude, gateway, host, tmp_path, tokens):
    """Six sessions at once, with one client's token (more requests in flight
    than its limit of 4: the edge answers 429 and Claude Code retries) or a
    token each of two clients. Every session edits its file; with one token
    the edge did refuse some requests, so the retries were needed."""
    clients = ["demo"] * 6 if tokens == "one" else ["demo", "ci-probe"] * 3
    runs = []
    for i, client in enumerate(clients):
        workdir = tmp_path / f"s{i}"
        workdir.mkdir()
        marker = f"cc-{uuid.uuid4().hex[:12]}"
        runs.append((workdir, workdir / "note.txt", marker, gateway.token(client)))
    seen = int(host.check_output(f"wc -l < {ACCESS_LOG}"))
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = [pool.submit(session, claude, gateway, w, edit_prompt(p, m), token=t) for w, p, m, t in runs]
        for future in futures:
            future.result()
    for _, path, marker, _ in runs:
        assert path.read_text() == f"edited {marker}\n"
    lines = [json.loads(line) for line in host.check_output(f"tail -n +{seen + 1} {ACCESS_LOG}").splitlines()]
    refused = [line for line in lines if line.get("DownstreamStatus") == 429
               and "claude-cli" in line.get("request_User-Agent", "")]
    if tokens == "one":
        assert refused, "no request was over the in-flight limit: the test did not load the edge"


def test_session_outlives_a_token_rotation(claude, gateway, host, tmp_path):
    """A running session picks up a rotated token without a restart: the
    hand-off's apiKeyHelper prints the client's token file, and Claude Code
    runs it again when the edge answers 401 for the old token. The session
    waits in a tool call (Bash) while rotate-token.yml runs and its grace
    period of a few seconds ends; its next turns go on with the new token."""
    client = "ci-probe"
    settings = gateway.state_dir / "clients" / client / "claude-code.json"
    assert json.loads(settings.read_text())["apiKeyHelper"], "site.yml writes the hand-off"
    old = gateway.token(client)
    flag = tmp_path / "rotated"
    marker = f"cc-{uuid.uuid4().hex[:12]}"
    prompt = "\n".join([
        f"Write, wait for a rotation, write again. ({marker})",
        "CCPROXY-TOOL Write " + json.dumps({"file_path": str(tmp_path / "before.txt"), "content": "before\n"}),
        "CCPROXY-TOOL Bash " + json.dumps({"command": f"while [ ! -e {flag} ]; do sleep 1; done",
                                           "description": "wait for the rotation"}),
        "CCPROXY-TOOL Write " + json.dumps({"file_path": str(tmp_path / "after.txt"), "content": "after\n"}),
    ])
    home = tmp_path / ".home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gateway.origin,
           "NODE_EXTRA_CA_CERTS": str(gateway.ca_cert)}
    proc = subprocess.Popen(
        [claude, "-p", prompt, "--output-format", "json", "--settings", str(settings),
         "--permission-mode", "acceptEdits", "--allowedTools", "Write,Read,Edit,Bash"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "before.txt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.5)
        rotated = subprocess.run(
            ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", f"rotate_token_client={client}",
             "-e", "ccproxy_token_grace_seconds=3", str(ROOT / "playbooks" / "rotate-token.yml")],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert rotated.returncode == 0, rotated.stdout[-3000:] + rotated.stderr[-2000:]
        assert gateway.token(client) != old
        with httpx.Client(verify=gateway.ssl_context(), timeout=10) as http:
            while http.get(gateway.base_url + "/models", headers={"Authorization": f"Bearer {old}"}).status_code != 401:
                assert time.monotonic() < deadline + 300, "the old token was never refused"
                time.sleep(0.5)
        flag.touch()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    result = json.loads(out)
    assert not result["is_error"] and "done after 3 tool calls" in result["result"], result
    assert (tmp_path / "after.txt").read_text() == "after\n"


def continued(claude, gateway, workdir, prompt, handoff):
    """One more turn of the session in `workdir` (claude -c), the prompt on stdin."""
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir / ".home"), "ANTHROPIC_BASE_URL": gateway.origin,
           "ANTHROPIC_API_KEY": gateway.token("demo"), "NODE_EXTRA_CA_CERTS": str(gateway.ca_cert)}
    if handoff:
        env.update({"ANTHROPIC_MODEL": "qwen-fast", "ANTHROPIC_SMALL_FAST_MODEL": "qwen-fast",
                    "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "32768", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "CLAUDE_CODE_ATTRIBUTION_HEADER": "0"})
    (workdir / ".home").mkdir(exist_ok=True)
    args = [claude, "-p", "--output-format", "json"] + (["-c"] if (workdir / ".home" / ".claude").exists() else [])
    done = subprocess.run(args, input=prompt, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return json.loads(done.stdout)


@pytest.mark.parametrize("handoff", [False, True], ids=["defaults", "handoff"])
def test_a_session_longer_than_the_context(claude, gateway, tmp_path, handoff):
    """Claude Code's system prompt and tools take about 20K of the 32K context.
    Turns of about 4K tokens each soon pass the limit: the gateway answers
    "prompt is too long" (never a silent cut by Ollama). With the hand-off,
    Claude Code compacts the conversation and goes on; with its defaults it
    thinks the model has 200K and stops with that error."""
    text = "remember this file: " + " ".join(f"line {i} of a file the agent read." for i in range(400))
    results = [continued(claude, gateway, tmp_path, text, handoff) for _ in range(4)]
    if handoff:
        assert [r["is_error"] for r in results] == [False] * 4, [r["result"][:200] for r in results]
    else:
        failed = [r for r in results if r["is_error"]]
        assert failed and all(r["result"].startswith("Prompt is too long") for r in failed), results
