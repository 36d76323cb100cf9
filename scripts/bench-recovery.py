#!/usr/bin/env python3
"""Kill -9 each service of a gateway in turn and measure how long until a chat
completion through the public endpoint answers 200 again.

Runs against a local container target (the demo, or a Molecule host), killing
the service's main process with `podman exec NAME systemctl kill -s KILL`, so
systemd restarts it as it would after a crash. A client sends one
non-streaming chat completion every 50 ms throughout; the script prints, per
service, the seconds from the kill to the first 200 after it and the requests
that failed in between.

  .venv/bin/python scripts/bench-recovery.py [--container ccproxy-demo] [--client demo]

Settings come from .demo/ccproxy.env or the CCPROXY_* environment
(CCPROXY_STATE_DIR, CCPROXY_PUBLISHED_PORT), as for the end-to-end tests.
The demo's rate limit (120/min per client) must be lifted for a clean run:
see README, "Benchmarks".
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from gateway.client import from_env  # noqa: E402


def load_demo_env():
    env_file = ROOT / ".demo" / "ccproxy.env"
    if "CCPROXY_STATE_DIR" not in os.environ and env_file.exists():
        os.environ.setdefault("CCPROXY_STATE_DIR", str(ROOT / ".demo"))
        for line in env_file.read_text().splitlines():
            if line.startswith("CCPROXY_BASE_URL="):
                os.environ.setdefault("CCPROXY_PUBLISHED_PORT", line.rsplit(":", 1)[1].split("/")[0])


class Client(threading.Thread):
    """Non-streaming chat completions, one every `interval` seconds; records (time, ok)."""

    def __init__(self, gateway, client, interval=0.05):
        super().__init__(daemon=True)
        self.gateway, self.token, self.interval = gateway, gateway.token(client), interval
        self.stop, self.results = threading.Event(), []

    def run(self):
        body = {"model": "gpt-4", "max_tokens": 8, "messages": [{"role": "user", "content": "ping"}]}
        with httpx.Client(verify=self.gateway.ssl_context(), timeout=30) as c:
            while not self.stop.is_set():
                try:
                    ok = c.post(self.gateway.base_url + "/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {self.token}"}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results.append((time.monotonic(), ok))
                self.stop.wait(self.interval)


def kill_and_measure(container, service, client, timeout=120):
    start = len(client.results)
    killed_at = time.monotonic()
    subprocess.run(["podman", "exec", container, "systemctl", "kill", "-s", "KILL", f"{service}.service"], check=True)
    while time.monotonic() - killed_at < timeout:
        after = [r for r in client.results[start:] if r[0] > killed_at]
        failed = [r for r in after if not r[1]]
        recovered = [r for r in after if r[1] and (not failed or r[0] > failed[-1][0])]
        if failed and recovered:
            return {"service": service, "recovery_seconds": round(recovered[0][0] - killed_at, 1),
                    "failed_requests": len(failed)}
        if not failed and len(after) > 40:  # two seconds of answers and none failed
            return {"service": service, "recovery_seconds": 0.0, "failed_requests": 0}
        time.sleep(0.05)
    return {"service": service, "recovery_seconds": None, "failed_requests": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", default="ccproxy-demo")
    parser.add_argument("--client", default="demo", help="client whose token the load uses")
    parser.add_argument("--services", default="ollama,litellm,traefik")
    args = parser.parse_args()
    load_demo_env()
    gateway = from_env()
    client = Client(gateway, args.client)
    client.start()
    time.sleep(2)
    rows = []
    try:
        for service in args.services.split(","):
            rows.append(kill_and_measure(args.container, service, client))
            time.sleep(3)  # settle before the next kill
    finally:
        client.stop.set()
        client.join()
    print(f"{'service':10} {'recovery s':>10} {'failed requests':>16}")
    for row in rows:
        print(f"{row['service']:10} {row['recovery_seconds']!s:>10} {row['failed_requests']!s:>16}")
    print(json.dumps(rows))
    return 0 if all(r["recovery_seconds"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
