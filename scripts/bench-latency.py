#!/usr/bin/env python3
"""Measure chat-completion latency through the gateway with the real OpenAI SDK.

Reads the demo's settings (.demo/ccproxy.env, or the CCPROXY_* environment):
CCPROXY_BASE_URL, CCPROXY_CA_CERT, CCPROXY_TOKEN_FILE. Sends N sequential
requests (after a few warm-ups) and prints p50/p90/p99/mean/max in ms.

  .venv/bin/python scripts/bench-latency.py [-n 200] [--model claude-3-5-sonnet] [--stream]

Against the demo the backend is the Ollama API test double, so the numbers are
the gateway's own overhead (TLS, Traefik auth, LiteLLM translation), not model
inference time. The per-client rate limit (120/min, burst 60 by default) caps
a run: keep -n under the burst, or raise traefik_rate_limit_average and
traefik_rate_limit_burst on the demo first.
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import ssl

import openai


def load_env(path):
    if path.exists():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ.setdefault(key, value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="measured requests")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--model", default="claude-3-5-sonnet")
    parser.add_argument("--stream", action="store_true", help="time to the last streamed chunk")
    parser.add_argument("--env-file", default=Path(__file__).resolve().parents[1] / ".demo" / "ccproxy.env", type=Path)
    args = parser.parse_args()
    load_env(args.env_file)

    client = openai.OpenAI(
        base_url=os.environ["CCPROXY_BASE_URL"],
        api_key=Path(os.environ["CCPROXY_TOKEN_FILE"]).read_text().strip(),
        http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=os.environ["CCPROXY_CA_CERT"])),
        max_retries=0,
    )
    messages = [{"role": "user", "content": "Write a haiku about latency."}]

    def one():
        start = time.perf_counter()
        if args.stream:
            for _ in client.chat.completions.create(model=args.model, messages=messages, max_tokens=16, stream=True):
                pass
        else:
            client.chat.completions.create(model=args.model, messages=messages, max_tokens=16)
        return (time.perf_counter() - start) * 1000

    for _ in range(args.warmup):
        one()
    try:
        one()
    except openai.RateLimitError:
        raise SystemExit("rate limited: lower -n or raise the demo's traefik_rate_limit_* (see --help)")
    samples = sorted(one() for _ in range(args.n))
    q = statistics.quantiles(samples, n=100)
    print(f"requests={args.n} model={args.model} stream={args.stream}")
    print(f"p50_ms={q[49]:.1f} p90_ms={q[89]:.1f} p99_ms={q[98]:.1f} "
          f"mean_ms={statistics.fmean(samples):.1f} max_ms={samples[-1]:.1f}")


if __name__ == "__main__":
    main()
