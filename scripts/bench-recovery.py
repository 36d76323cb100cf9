#!/usr/bin/env python3
"""Kill -9 each service of a gateway in turn and measure, per killed process,
how long until the gateway answers again and how many requests failed.

Runs against a local container target (the demo, or a Molecule host): it
sends SIGKILL to the service's main process (`podman exec NAME kill -KILL
<MainPID>`), so systemd restarts it as it would after a crash. Throughout,
clients send non-streaming chat completions (--threads) and streaming ones
(--stream-threads), each client one every --interval seconds at most (so
failures count at a steady rate: 40 requests/s by default); a stream counts as
failed when it does not end with its final event. Per service it prints:

  gateway s   seconds from the kill to the first non-streaming answer after
              the last failure (0.0 when none failed)
  back s      seconds until systemd runs it again with a new main process
              that serves (LiteLLM instances: their /health/liveliness)
  failed      failed non-streaming requests / streams, out of those that
              ended between the kill and the end of the measurement

  .venv/bin/python scripts/bench-recovery.py [--container ccproxy-demo] [--services litellm,litellm-2,ollama,traefik]
      [--threads 4] [--stream-threads 2] [--clients demo,ci-probe]

Settings come from .demo/ccproxy.env or the CCPROXY_* environment
(CCPROXY_STATE_DIR, CCPROXY_PUBLISHED_PORT), as for the end-to-end tests.
The demo's rate limit (120/min per client) must be lifted for a clean run:
see README, "Benchmarks" (crash recovery).
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

LITELLM_PORTS = {"litellm": 8081, "litellm-2": 8091}
BODY = {"model": "gpt-4", "max_tokens": 8, "messages": [{"role": "user", "content": "ping"}]}


def load_demo_env():
    env_file = ROOT / ".demo" / "ccproxy.env"
    if "CCPROXY_STATE_DIR" not in os.environ and env_file.exists():
        os.environ.setdefault("CCPROXY_STATE_DIR", str(ROOT / ".demo"))
        for line in env_file.read_text().splitlines():
            if line.startswith("CCPROXY_BASE_URL="):
                os.environ.setdefault("CCPROXY_PUBLISHED_PORT", line.rsplit(":", 1)[1].split("/")[0])


class Client(threading.Thread):
    """Chat completions, one started every `interval` s at most; records (started, ended, ok)."""

    def __init__(self, gateway, client, stream=False, interval=0.0):
        super().__init__(daemon=True)
        self.gateway, self.token, self.stream, self.interval = gateway, gateway.token(client), stream, interval
        self.stop, self.results = threading.Event(), []

    def once(self, c):
        headers = {"Authorization": f"Bearer {self.token}"}
        url = self.gateway.base_url + "/chat/completions"
        if not self.stream:
            r = c.post(url, json=BODY, headers=headers)
            return r.status_code == 200
        with c.stream("POST", url, json={**BODY, "stream": True}, headers=headers) as r:
            if r.status_code != 200:
                return False
            # Complete only with its last event: a cut stream ends early.
            return any(line.strip() == "data: [DONE]" for line in r.iter_lines())

    def run(self):
        with httpx.Client(verify=self.gateway.ssl_context(), timeout=60) as c:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    ok = self.once(c)
                except httpx.HTTPError:
                    ok = False
                self.results.append((started, time.monotonic(), ok))
                self.stop.wait(max(0.0, started + self.interval - time.monotonic()))


def sh(container, command):
    return subprocess.run(["podman", "exec", container, "sh", "-c", command],
                          capture_output=True, text=True, check=False).stdout.strip()


def main_pid(container, service):
    return int(sh(container, f"systemctl show -p MainPID --value {service}") or 0)


def serving(container, service, old_pid):
    if sh(container, f"systemctl is-active {service}") != "active" or main_pid(container, service) in (0, old_pid):
        return False
    port = LITELLM_PORTS.get(service)
    return port is None or sh(container, f"curl -sf -o /dev/null http://127.0.0.1:{port}/health/liveliness && echo ok") == "ok"


def kill_and_measure(container, service, plain, streams, timeout=120, settle=5.0):
    old_pid = main_pid(container, service)
    killed_at = time.monotonic()
    sh(container, f"kill -KILL {old_pid}")
    back = None
    while time.monotonic() - killed_at < timeout:
        if back is None and serving(container, service, old_pid):
            back = time.monotonic() - killed_at
        after = [r for r in plain.results if r[1] > killed_at]
        failed = [r for r in after if not r[2]]
        answered = [r for r in after if r[2] and (not failed or r[0] > failed[-1][0])]
        if back is not None and answered and time.monotonic() - max(back + killed_at, answered[0][1]) > settle:
            break
        time.sleep(0.1)
    ended = time.monotonic()
    plain_after = [r for r in plain.results if killed_at < r[1] <= ended]
    stream_after = [r for s in streams for r in s.results if killed_at < r[1] <= ended]
    failed = [r for r in plain_after if not r[2]]
    answered = [r for r in plain_after if r[2] and (not failed or r[0] > failed[-1][0])]
    return {
        "service": service,
        "gateway_seconds": (round(answered[0][1] - killed_at, 1) if failed else 0.0) if answered else None,
        "back_seconds": round(back, 1) if back is not None else None,
        "failed": len(failed), "requests": len(plain_after),
        "failed_streams": sum(not r[2] for r in stream_after), "streams": len(stream_after),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", default="ccproxy-demo")
    parser.add_argument("--clients", default="demo,ci-probe",
                        help="clients whose tokens the load uses, in turn (each may have 4 requests in flight)")
    parser.add_argument("--services", default="litellm,litellm-2,ollama,traefik")
    parser.add_argument("--threads", type=int, default=4, help="non-streaming clients")
    parser.add_argument("--stream-threads", type=int, default=2, help="streaming clients")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between the starts of one client's requests (failures count at this rate)")
    args = parser.parse_args()
    load_demo_env()
    gateway = from_env()
    clients = args.clients.split(",")
    if args.threads + args.stream_threads > 4 * len(clients):
        parser.error("more threads than the clients' in-flight allowance (4 each): add --clients")
    plain = [Client(gateway, clients[i % len(clients)], interval=args.interval) for i in range(args.threads)]
    streams = [Client(gateway, clients[(args.threads + i) % len(clients)], stream=True, interval=args.interval)
               for i in range(args.stream_threads)]

    class All:  # the non-streaming clients' results, in time order
        @property
        def results(self):
            return sorted(r for c in plain for r in c.results)

    for c in plain + streams:
        c.start()
    time.sleep(3)
    rows = []
    try:
        for service in args.services.split(","):
            rows.append(kill_and_measure(args.container, service, All(), streams))
            time.sleep(5)  # back in rotation before the next kill
    finally:
        for c in plain + streams:
            c.stop.set()
        for c in plain + streams:
            c.join()
    print(f"{'service':10} {'gateway s':>9} {'back s':>7} {'failed':>13} {'failed streams':>15}")
    for r in rows:
        print(f"{r['service']:10} {r['gateway_seconds']!s:>9} {r['back_seconds']!s:>7} "
              f"{str(r['failed']) + '/' + str(r['requests']):>13} "
              f"{str(r['failed_streams']) + '/' + str(r['streams']):>15}")
    print(json.dumps(rows))
    return 0 if all(r["gateway_seconds"] is not None and r["back_seconds"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
