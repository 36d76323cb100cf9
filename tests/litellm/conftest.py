"""Tests of ccproxy's LiteLLM package (roles/litellm/files/ccproxy_litellm),
run with the pinned LiteLLM (scripts/litellm-venv.sh; `make unit` does both),
against the Ollama API test double."""
import json
import os
import urllib.request
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "ollama_double" / "ollama"
# The package as the role installs it: a directory on the path.
sys.path.insert(0, str(ROOT / "roles" / "litellm" / "files"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Double:
    """The Ollama API test double on a free port, recording what it receives."""

    def __init__(self, tmp, models=("qwen2.5-coder:7b-instruct", "qwen3:8b"), **env):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.record = tmp / "requests.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, str(DOUBLE), "serve"],
            env=dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{self.port}", OLLAMA_MODELS=str(tmp / "models"),
                     OLLAMA_TEST_DOUBLE_RECORD=str(self.record), **env),
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the Ollama test double did not start")
        for model in models:
            self.post("/api/pull", {"model": model, "stream": False})

    def post(self, path, body):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def requests(self, path="/api/chat"):
        if not self.record.exists():
            return []
        lines = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r["body"] for r in lines if r["path"] == path]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def double(tmp_path):
    d = Double(tmp_path)
    yield d
    d.stop()
