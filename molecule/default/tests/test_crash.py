"""Crashes cost nothing: under a steady load of non-streaming chat completions
from several threads, each service's main process is killed with SIGKILL in
turn (LiteLLM instance 1, LiteLLM instance 2, Ollama, Traefik). systemd
restarts every one of them (active again, a new MainPID) and the gateway
answers again. A LiteLLM instance dying costs no request at all: Traefik's
health check takes it out of rotation and its retry middleware resends the
requests it refused or died with to the other instance. Ollama dying costs
none either: LiteLLM retries on the one model host after 0.5, 1, 2 and 4 s
(litellm_num_retries), longer than systemd takes to bring Ollama back.
Traefik runs once, so requests fail until it is back: those are counted and
reported (-s shows them), not asserted. How fast each comes back is measured
by scripts/bench-recovery.py, not asserted here: waits are generous polls.

The load stays under the per-client rate limit (120/min by default) by
spreading it over two clients, so a 429 is a failure like any other."""
import json
import threading
import time

import httpx
import pytest

CLIENTS = ("demo", "ci-probe")
THREADS_PER_CLIENT = 3
REQUESTS_PER_SECOND_PER_CLIENT = 1.5  # 90/min, under the default 120/min
LITELLM = (("litellm", 8081), ("litellm-2", 8091))
SERVICES = ("litellm", "litellm-2", "ollama", "traefik")
ACCESS_LOG = "/var/log/traefik/access.log"
METRICS = "http://127.0.0.1:8082/metrics"
RECOVERY_TIMEOUT = 180
BODY = {"model": "gpt-4", "max_tokens": 8, "messages": [{"role": "user", "content": "crash test"}]}


class Load:
    """Non-streaming chat completions from THREADS_PER_CLIENT threads per
    client, paced; records (started, ended, client, outcome) per request."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.threads = [threading.Thread(target=self._run, args=(client,), daemon=True)
                        for client in CLIENTS for _ in range(THREADS_PER_CLIENT)]

    def _run(self, client):
        interval = THREADS_PER_CLIENT / REQUESTS_PER_SECOND_PER_CLIENT
        headers = {"Authorization": "Bearer " + self.gateway.token(client)}
        with httpx.Client(base_url=self.gateway.base_url, verify=self.gateway.ssl_context(), timeout=120) as c:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    r = c.post("/chat/completions", json=BODY, headers=headers)
                    ok = r.status_code == 200 and bool(r.json()["choices"][0]["message"]["content"])
                    outcome = "ok" if ok else f"HTTP {r.status_code}: {r.text[:120]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                ended = time.monotonic()
                with self.lock:
                    self.records.append((started, ended, client, outcome))
                self.stop.wait(max(0.0, interval - (ended - started)))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=150)

    def since(self, t0):
        """Requests that ended after t0."""
        with self.lock:
            return [r for r in self.records if r[1] > t0]

    def answered_since(self, t0):
        """A request started after t0 was answered."""
        return any(r[0] > t0 and r[3] == "ok" for r in self.since(t0))


def poll(predicate, what, timeout=RECOVERY_TIMEOUT, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up after {timeout}s waiting for {what}"
        time.sleep(interval)


def main_pid(host, unit):
    return int(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip() or 0)


def active(host, unit):
    return host.run(f"systemctl is-active {unit}").stdout.strip() == "active"


def servers_up(host):
    """Traefik's view of each LiteLLM instance (its health check), from /metrics."""
    out = host.run(f"curl -s {METRICS}").stdout
    up = {}
    for line in out.splitlines():
        if line.startswith("traefik_service_server_up{") and 'service="litellm@file"' in line:
            url = line.split('url="', 1)[1].split('"', 1)[0]
            up[url] = line.rsplit(" ", 1)[1] == "1"
    return up


def litellm_in_rotation(host):
    up = servers_up(host)
    return all(up.get(f"http://127.0.0.1:{port}") for _, port in LITELLM)


def litellm_alive(host, port):
    return host.run(f"curl -sf -o /dev/null http://127.0.0.1:{port}/health/liveliness").rc == 0


def resent_after_a_hold(host, offset):
    """Access-log lines written after byte `offset` of requests answered 200
    that spent more than a second before their last attempt (Duration minus
    OriginDuration): held by an instance that then died, and resent. (Traefik
    3.7 does not fill the access log's RetryAttempts: the retry middleware is
    built without listeners.)"""
    with host.sudo():
        out = host.run(f"tail -c +{offset + 1} {ACCESS_LOG}").stdout
    resent = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("DownstreamStatus") == 200 and entry["Duration"] - entry.get("OriginDuration", 0) > 1e9:
            resent.append(entry["ServiceURL"])
    return resent


def log_size(host):
    with host.sudo():
        return int(host.run(f"stat -c %s {ACCESS_LOG}").stdout.strip())


def wait_until_steady(host, load):
    """Every service up, both LiteLLM instances in Traefik's rotation, the load answered."""
    for unit in SERVICES:
        poll(lambda: active(host, unit), f"{unit} active")
    poll(lambda: litellm_in_rotation(host), "both LiteLLM instances in Traefik's rotation")
    now = time.monotonic()
    poll(lambda: load.answered_since(now), "the gateway to answer the load")


def kill(host, unit, signal="KILL"):
    pid = main_pid(host, unit)
    assert pid > 0, f"{unit} has no main process"
    with host.sudo():
        assert host.run(f"kill -{signal} {pid}").rc == 0
    return pid


@pytest.fixture(scope="module")
def warm_clients(gateway):
    """Each client's rate-limit bucket has room (an earlier test may have emptied one)."""
    with httpx.Client(base_url=gateway.base_url, verify=gateway.ssl_context(), timeout=60) as c:
        for client in CLIENTS:
            headers = {"Authorization": "Bearer " + gateway.token(client)}
            poll(lambda: c.post("/chat/completions", json=BODY, headers=headers).status_code == 200,
                 f"a request of client {client} to pass", timeout=120, interval=5)
    time.sleep(10)  # let the buckets refill a little more


def test_every_service_comes_back_after_sigkill_and_litellm_crashes_cost_nothing(host, gateway, warm_clients):
    report = {}
    with Load(gateway) as load:
        wait_until_steady(host, load)
        for unit in SERVICES:
            killed_at = time.monotonic()
            old_pid = kill(host, unit)
            poll(lambda: active(host, unit) and main_pid(host, unit) not in (0, old_pid),
                 f"systemd to restart {unit} with a new process")
            for name, port in LITELLM:
                if name == unit:
                    poll(lambda: litellm_alive(host, port), f"{unit} to answer /health/liveliness")
            back = time.monotonic()
            poll(lambda: load.answered_since(back), f"the gateway to answer after {unit} was killed")
            wait_until_steady(host, load)
            time.sleep(3)  # a few more requests after the recovery
            during = load.since(killed_at)
            failed = [r for r in during if r[3] != "ok"]
            report[unit] = {"requests": len(during), "failed": len(failed),
                            "errors": sorted({r[3] for r in failed})[:5]}
    print("\nkill -9 under load:", json.dumps(report, indent=1))
    for name in [name for name, _ in LITELLM] + ["ollama"]:
        assert report[name]["failed"] == 0, f"requests failed when {name} was killed: {report[name]}"
        assert report[name]["requests"] > 0


def last_served(host):
    """The LiteLLM instance (unit, port) that answered the latest proxied request."""
    with host.sudo():
        out = host.run(f"tail -n 50 {ACCESS_LOG}").stdout
    urls = {f"http://127.0.0.1:{port}": (name, port) for name, port in LITELLM}
    served = [json.loads(line).get("ServiceURL") for line in out.splitlines() if line.startswith("{")]
    served = [url for url in served if url in urls]
    assert served, "no proxied request in the access log's last lines"
    return urls[served[-1]]


def test_requests_in_flight_on_a_dying_litellm_are_resent(host, gateway, warm_clients):
    """Requests already sent to an instance when it dies: freeze the instance
    (SIGSTOP) so that requests wait on it until the health check times it out,
    then kill it. Every one of them is resent to the other instance. The
    frozen one is the instance that answered last, so that requests meet it
    whatever traefik_upstream_strategy says: round robin sends every other
    one there, leasttime keeps sending there under light load."""
    with Load(gateway) as load:
        wait_until_steady(host, load)
        unit, port = last_served(host)
        offset = log_size(host)
        stopped_at = time.monotonic()
        pid = kill(host, unit, "STOP")
        try:
            # Traefik's health check (timeout 3s) takes the frozen instance out.
            poll(lambda: servers_up(host).get(f"http://127.0.0.1:{port}") is False,
                 "Traefik to take the frozen instance out of rotation", timeout=60)
            time.sleep(1)
        finally:
            with host.sudo():
                host.run(f"kill -KILL {pid}")
        poll(lambda: active(host, unit) and main_pid(host, unit) not in (0, pid), f"systemd to restart {unit}")
        wait_until_steady(host, load)
        during = load.since(stopped_at)
    failed = [r for r in during if r[3] != "ok"]
    resent = resent_after_a_hold(host, offset)
    print(f"\nfrozen then killed {unit}: {len(during)} requests, {len(resent)} held by it and resent "
          f"(answered by {sorted(set(resent))}), {len(failed)} failed")
    assert not failed, sorted({r[3] for r in failed})
    assert resent, "no request was caught by the frozen instance: the test proved nothing"
    other = {f"http://127.0.0.1:{p}" for _, p in LITELLM if p != port}
    assert set(resent) == other
