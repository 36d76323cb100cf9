#!/usr/bin/env python3
"""The probe `make bench` copies into the gateway host: LiteLLM and Ollama
listen on the host's loopback only, so the direct measurements, and the edge
measured the same way for a fair comparison, run there.

Standard library only (the host has python3 and nothing else of ours). Runs
as root so that it can read LiteLLM's master key from its 0600 env file;
the client token comes on stdin, in the JSON settings, never on a command line.
Prints one JSON document on stdout.

  python3 bench_probe.py latency --n 200 [--stream]      < settings.json
  python3 bench_probe.py load --target edge --concurrency 1,2,4 --seconds 5 < settings.json
  python3 bench_probe.py reject --concurrency 8 --seconds 5 < settings.json

Settings: token, edge_port, ca_file, server_name, litellm_ports,
litellm_env_file, litellm_metrics_ports, ollama_port, alias, ollama_model.

LiteLLM direct takes its instances in turn (litellm_ports), one request each,
as the edge's round robin does: with several instances, "LiteLLM direct" is
the same service the edge forwards to, so the difference is the edge's own.
"""
import argparse
import http.client
import json
import random
import ssl
import sys
import threading
import time

PROMPT = [{"role": "user", "content": "Write a haiku about latency."}]
MAX_TOKENS = 16


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that sends and verifies the certificate's name."""

    def __init__(self, port, context, server_name):
        super().__init__("127.0.0.1", port, context=context, timeout=60)
        self._server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class Target:
    """Keep-alive connections down one path: the edge, LiteLLM (one per
    instance, taken in turn) or Ollama."""

    def __init__(self, name, settings, token=None):
        self.name = name
        self.settings = settings
        self.token = token
        if name == "edge":
            self.ports, self.path, self.tls = [settings["edge_port"]], "/v1/chat/completions", True
        elif name == "litellm":
            self.ports, self.path, self.tls = list(settings["litellm_ports"]), "/v1/chat/completions", False
        elif name == "ollama":
            self.ports, self.path, self.tls = [settings["ollama_port"]], "/api/chat", False
        else:
            raise SystemExit(f"unknown target {name}")
        self.conns = [None] * len(self.ports)
        self.turn = 0

    @property
    def conn(self):
        return self.conns[self.turn]

    def _connect(self):
        port = self.ports[self.turn]
        if self.tls:
            context = ssl.create_default_context(cafile=self.settings["ca_file"])
            return _NamedHTTPSConnection(port, context, self.settings.get("server_name") or "127.0.0.1")
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def body(self, stream):
        if self.name == "ollama":
            return {"model": self.settings["ollama_model"], "messages": PROMPT, "stream": stream,
                    "options": {"num_predict": MAX_TOKENS}}
        return {"model": self.settings["alias"], "messages": PROMPT, "max_tokens": MAX_TOKENS, "stream": stream}

    def request(self, stream=False):
        """One chat completion: (status, seconds to the first token, seconds to the end)."""
        self.turn = (self.turn + 1) % len(self.ports)
        if self.conn is None:
            self.conns[self.turn] = self._connect()
        headers = {"Content-Type": "application/json", "User-Agent": self.settings.get("user_agent", "ccproxy-bench")}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        start = time.perf_counter()
        try:
            self.conn.request("POST", self.path, body=json.dumps(self.body(stream)), headers=headers)
            response = self.conn.getresponse()
            first = None
            if stream and response.status == 200:
                for line in response:
                    if first is None and _has_token(line):
                        first = time.perf_counter() - start
                response.read()
            else:
                response.read()
            end = time.perf_counter() - start
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, (first if first is not None else end), end
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, None, time.perf_counter() - start

    def close(self):
        """Close the current connection (the next request to it reconnects)."""
        if self.conn is not None:
            self.conn.close()
            self.conns[self.turn] = None

    def close_all(self):
        for conn in self.conns:
            if conn is not None:
                conn.close()
        self.conns = [None] * len(self.ports)


def _has_token(line):
    """A streamed line that carries generated text (OpenAI SSE or Ollama NDJSON)."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    if not line or line == b"[DONE]":
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if "message" in event:
        return bool(event["message"].get("content"))
    choices = event.get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


def master_key(settings):
    with open(settings["litellm_env_file"]) as env:
        for line in env:
            if line.startswith("LITELLM_MASTER_KEY="):
                return line.split("=", 1)[1].strip()
    raise SystemExit("LITELLM_MASTER_KEY not found in " + settings["litellm_env_file"])


def targets(settings, names):
    tokens = {"edge": settings["token"], "litellm": master_key(settings) if "litellm" in names else None,
              "ollama": None}
    return {name: Target(name, settings, tokens[name]) for name in names}


def latency(settings, args):
    """Interleaved: each round sends one request down every path, in a new
    random order, so drift of the machine hits every path alike."""
    paths = targets(settings, args.targets.split(","))
    samples = {name: {"first_ms": [], "total_ms": [], "failed": 0} for name in paths}
    for round_ in range(args.warmup + args.n):
        order = list(paths)
        random.shuffle(order)
        for name in order:
            status, first, total = paths[name].request(stream=args.stream)
            if round_ < args.warmup:
                continue
            if status != 200:
                samples[name]["failed"] += 1
                continue
            samples[name]["first_ms"].append(round(first * 1000, 3))
            samples[name]["total_ms"].append(round(total * 1000, 3))
    return samples


def _closed_loop(make_target, concurrency, seconds, stream=False):
    """`concurrency` clients, each sending its next request when the last one
    answered, for `seconds`: completed requests per second and failures."""
    counts = {"ok": 0, "failed": 0, "statuses": {}}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        target = make_target()
        while time.perf_counter() < deadline:
            status, _, _ = target.request(stream=stream)
            with lock:
                counts["statuses"][str(status)] = counts["statuses"].get(str(status), 0) + 1
                counts["ok" if status == 200 else "failed"] += 1
        target.close_all()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    counts["seconds"] = round(elapsed, 3)
    counts["rps"] = round((counts["ok"] + counts["failed"]) / elapsed, 2)
    return counts


def load(settings, args):
    token = targets(settings, [args.target])[args.target].token
    return {str(c): _closed_loop(lambda: Target(args.target, settings, token), c, args.seconds)
            for c in map(int, args.concurrency.split(","))}


def litellm_requests(settings, user_agent):
    """LiteLLM's own count of the requests it received from `user_agent`, over
    every instance, whatever their outcome."""
    total = 0.0
    for port in settings["litellm_metrics_ports"]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics/")
        text = conn.getresponse().read().decode()
        conn.close()
        for line in text.splitlines():
            if (line.startswith(("litellm_proxy_total_requests_metric_total{", "litellm_proxy_failed_requests_metric_total{"))
                    and f'user_agent="{user_agent}"' in line):
                total += float(line.rsplit(" ", 1)[1])
    return total


def reject(settings, args):
    """Requests with a token the edge refuses, against authenticated ones,
    alternating in short slices. The refused ones carry their own User-Agent,
    which LiteLLM's request counters label requests with: had any got
    through, that count would move. (The authenticated slice moving the
    counter of its own User-Agent shows the counter works.)"""
    bad = dict(settings, token="ccproxy-bench-not-a-token-" + "x" * 40, user_agent="ccproxy-bench-refused")
    good = dict(settings, user_agent="ccproxy-bench-authenticated")
    result = {"refused": [], "authenticated": [], "litellm_requests_during_refused": 0.0,
              "litellm_requests_authenticated": 0.0}
    for _ in range(args.rounds):
        before = litellm_requests(bad, bad["user_agent"])
        result["refused"].append(_closed_loop(lambda: Target("edge", bad, bad["token"]), args.concurrency, args.seconds))
        result["litellm_requests_during_refused"] += litellm_requests(bad, bad["user_agent"]) - before
        before = litellm_requests(good, good["user_agent"])
        result["authenticated"].append(
            _closed_loop(lambda: Target("edge", good, good["token"]), args.concurrency, args.seconds))
        result["litellm_requests_authenticated"] += litellm_requests(good, good["user_agent"]) - before
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--targets", default="edge,litellm,ollama")
    lat.add_argument("--n", type=int, default=200)
    lat.add_argument("--warmup", type=int, default=10)
    lat.add_argument("--stream", action="store_true")
    lod = sub.add_parser("load")
    lod.add_argument("--target", default="edge", choices=["edge", "litellm", "ollama"])
    lod.add_argument("--concurrency", default="1,2,4,8,16")
    lod.add_argument("--seconds", type=float, default=5)
    rej = sub.add_parser("reject")
    rej.add_argument("--concurrency", type=int, default=8)
    rej.add_argument("--seconds", type=float, default=3)
    rej.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = json.load(sys.stdin)
    result = {"latency": latency, "load": load, "reject": reject}[args.command](settings, args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
