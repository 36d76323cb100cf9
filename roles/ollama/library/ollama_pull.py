#!/usr/bin/python
# Copyright: ccproxy maintainers
# MIT License (see the role's meta/main.yml)
"""Pull one model through Ollama's HTTP API, recording progress in a file."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_pull
short_description: Pull an Ollama model, showing size, percent and rate while it downloads
description:
  - Sends one streaming C(POST /api/pull) to the Ollama API on the target and reads its
    NDJSON progress stream until Ollama reports C(success) or an error. The request is held
    open for the whole pull because Ollama cancels a pull whose client disconnects.
  - While the pull runs, the latest progress (status, digest, bytes total and completed over
    the layers seen so far) is written atomically, as JSON, to O(progress_file).
  - The action plugin of the same name runs this module asynchronously (through
    C(async_wrapper), like O(ignore:async)), reads the progress file every O(poll_interval)
    seconds and prints the model, completed and total size, percent, rate and ETA. It then
    returns the module's result.
  - Always pulls and reports C(changed); the caller decides which models are missing.
options:
  model:
    description: Model to pull, as Ollama names it (e.g. C(qwen2.5-coder:7b-instruct)).
    type: str
    required: true
  url:
    description: Base URL of the Ollama API, seen from the target.
    type: str
    default: http://127.0.0.1:11434
  timeout:
    description:
      - Seconds the whole pull may take. The module gives up with an error after this;
        the action plugin's async time limit is a little longer, as a backstop.
    type: int
    default: 21600
  poll_interval:
    description:
      - Seconds between two progress lines, from 1 to 30. Used by the action plugin.
    type: int
    default: 10
  progress_file:
    description:
      - File the latest progress is written to while the pull runs, as JSON with the keys
        C(model), C(status), C(digest), C(total), C(completed), C(started) and C(time).
      - Set by the action plugin (a file next to the async job file), which removes it
        afterwards; omit to write none.
    type: path
notes:
  - In check mode nothing is pulled and the result is C(changed).
  - The Ollama API needs no privileges, so O(ignore:become) is not needed.
author:
  - ccproxy maintainers
"""

EXAMPLES = r"""
- name: Pull a model, printing progress every 10 seconds
  ollama_pull:
    model: qwen2.5-coder:7b-instruct
    url: http://127.0.0.1:11434
    timeout: 21600
    poll_interval: 10
"""

RETURN = r"""
model:
  description: The model pulled, as requested.
  returned: always
  type: str
  sample: qwen2.5-coder:7b-instruct
status:
  description: The last status Ollama sent.
  returned: always
  type: str
  sample: success
total:
  description: Bytes of all layers of the model.
  returned: success
  type: int
  sample: 4683087519
duration:
  description: Seconds the pull took.
  returned: success
  type: float
  sample: 312.4
rate:
  description: Average download rate in bytes per second.
  returned: success
  type: int
  sample: 14990679
layers:
  description: The layers Ollama pulled.
  returned: success
  type: list
  elements: dict
  sample: [{"digest": "sha256:60e05f2100071479f596b964f89f510f057ce397ea22f2833a0cfe029bfc2463", "total": 4683073184}]
"""

import json
import os
import socket
import tempfile
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

WRITE_EVERY = 0.5  # seconds; a changed status is written at once


class Progress:
    """Per-layer byte counts from the stream, written to a JSON file now and then."""

    def __init__(self, model, path):
        self.model = model
        self.path = path
        self.started = time.time()
        self.status = ""
        self.digest = ""
        self.layers = {}  # digest -> [total, completed], in the order Ollama sends them
        self._written_at = 0.0
        self._written_status = None

    @property
    def total(self):
        return sum(t for t, _ in self.layers.values())

    @property
    def completed(self):
        return sum(c for _, c in self.layers.values())

    def update(self, msg):
        self.status = str(msg.get("status", self.status))
        digest = msg.get("digest")
        if digest:
            self.digest = digest
            # Ollama leaves zero values out (omitempty).
            total = int(msg.get("total") or self.layers.get(digest, [0])[0])
            completed = int(msg.get("completed") or 0)
            self.layers[digest] = [total, min(completed, total) if total else completed]
        self.write()

    def write(self, force=False):
        now = time.time()
        if not self.path or not (force or self.status != self._written_status
                                 or now - self._written_at >= WRITE_EVERY):
            return
        snapshot = {"model": self.model, "status": self.status, "digest": self.digest,
                    "total": self.total, "completed": self.completed,
                    "started": self.started, "time": now}
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ollama_pull.", dir=directory)
            with os.fdopen(fd, "w") as f:
                json.dump(snapshot, f)
            os.replace(tmp, self.path)  # readers see the old or the new file, never half
        except OSError:
            return  # progress is best effort; the pull itself goes on
        self._written_at, self._written_status = now, self.status


def error_text(body, fallback):
    """Ollama's {"error": "..."} body, else the fallback."""
    try:
        return json.loads(body).get("error") or fallback
    except (ValueError, AttributeError):
        return (body or b"").decode("utf-8", "replace").strip() or fallback


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model=dict(type="str", required=True),
            url=dict(type="str", default="http://127.0.0.1:11434"),
            timeout=dict(type="int", default=21600),
            poll_interval=dict(type="int", default=10),
            progress_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    model = module.params["model"]
    timeout = module.params["timeout"]
    if module.check_mode:
        module.exit_json(changed=True, model=model, status="", msg=f"would pull {model}")

    progress = Progress(model, module.params["progress_file"])
    deadline = time.monotonic() + timeout
    url = module.params["url"].rstrip("/") + "/api/pull"

    def fail(msg, **extra):
        module.fail_json(msg=msg, model=model, status=progress.status, **extra)

    progress.update({"status": "waiting for Ollama"})
    try:
        resp = open_url(url, data=json.dumps({"model": model, "stream": True}), method="POST",
                        headers={"Content-Type": "application/json"}, timeout=timeout,
                        use_proxy=False, http_agent="ccproxy-ollama_pull")
    except HTTPError as e:
        fail(f"Ollama could not pull {model}: {error_text(e.read(), e.reason)}", http_status=e.code)
    except (URLError, OSError, HTTPException) as e:
        fail(f"Ollama API at {module.params['url']} unreachable: {getattr(e, 'reason', e)}")

    try:
        with resp:
            for raw in resp:
                line = raw.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    fail(f"Ollama sent a line that is not JSON: {line[:200]!r}")
                if not isinstance(msg, dict):
                    fail(f"Ollama sent an unexpected line: {line[:200]!r}")
                if msg.get("error"):
                    fail(f"Ollama could not pull {model}: {msg['error']}")
                progress.update(msg)
                if time.monotonic() > deadline:
                    fail(f"pulling {model} took longer than {timeout} s")
    except (socket.timeout, TimeoutError):
        fail(f"pulling {model} took longer than {timeout} s")
    except (OSError, HTTPException) as e:
        fail(f"the connection to Ollama broke while pulling {model}: {e}")

    if progress.status != "success":
        fail(f"Ollama ended the pull of {model} without success (last status: {progress.status!r})")

    duration = time.time() - progress.started
    module.exit_json(
        changed=True, model=model, status=progress.status, total=progress.total,
        duration=round(duration, 1), rate=int(progress.total / duration) if duration > 0 else 0,
        layers=[{"digest": d, "total": t} for d, (t, _) in progress.layers.items()],
    )


if __name__ == "__main__":
    main()
