#!/usr/bin/env python3
"""`make bench`: what the gateway costs, measured side by side on the demo,
written to build/bench/report.md with PNG charts, and printed.

Runs against the demo (`make demo` first). It lifts the demo's per-client
rate and in-flight limits for the run, converges each LiteLLM configuration
in turn (instances x workers, and Traefik's strategy for the instances where
one is named: "2x1:wrr"), and puts everything back as the inventory
says at the end, also after a failure or Ctrl-C (a last site.yml run, which
is also the no-op re-converge it times when nothing else changed).

Per configuration, with a probe copied into the container (LiteLLM and
Ollama listen on its loopback; scripts/bench_probe.py):
- latency, edge vs LiteLLM direct vs the backend direct, interleaved, plain
  and streaming (time to first token);
- throughput through the edge against concurrency.
Once, with the defaults: refused-token rate against the authenticated rate,
with LiteLLM's request counter around the refused requests; then, with
client load loops running, a kill -9 of a LiteLLM instance, a token rotation
and an upgrade from the older releases the mirror serves (operations); and
the closing no-op re-converge.

  make bench                      # or: .venv/bin/python scripts/bench.py [--quick]
  .venv/bin/python scripts/bench_report.py build/bench/results.json   # redraw from saved numbers
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
import bench_report  # noqa: E402
from gateway.client import from_env  # noqa: E402
from gateway.load import ChatLoad  # noqa: E402

RECAP = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PROBE = "/root/ccproxy-bench-probe.py"
# What --configs may name after the colon: traefik_upstream_strategy's choices.
STRATEGIES = tuple(yaml.safe_load((ROOT / "roles/traefik/meta/argument_specs.yml").read_text())
                   ["argument_specs"]["main"]["options"]["traefik_upstream_strategy"]["choices"])
LIFTED = {"traefik_rate_limit_average": 1000000, "traefik_rate_limit_burst": 100000,
          "traefik_max_in_flight_per_client": 1000}


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Demo:
    """The demo container and its inventory, as make demo left them."""

    def __init__(self, container):
        self.container = container
        self.state = ROOT / ".demo"
        env_file = self.state / "ccproxy.env"
        if not env_file.exists():
            raise SystemExit("bench: no demo here; run `make demo` first")
        self.env = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                        if line and not line.startswith("#"))
        os.environ.setdefault("CCPROXY_STATE_DIR", str(self.state))
        published = self.env["CCPROXY_BASE_URL"].rsplit(":", 1)[1].split("/")[0]
        os.environ.setdefault("CCPROXY_PUBLISHED_PORT", published)
        self.gateway = from_env()
        # The edge's port inside the container: the one the demo publishes.
        ports = self.podman("port", container).stdout
        match = re.search(rf"^(\d+)/tcp -> \S+:{published}$", ports, re.M)
        if not match:
            raise SystemExit(f"bench: container {container} does not publish port {published}")
        self.edge_port = int(match.group(1))

    def podman(self, *args, stdin=None):
        return subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, check=False)

    def playbook(self, playbook, extra=None, tags=None):
        """Run a playbook against the demo; returns (seconds, changed)."""
        cmd = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", self.env["CCPROXY_INVENTORY"],
               "--vault-password-file", self.env["CCPROXY_VAULT_PASSWORD_FILE"], str(ROOT / playbook)]
        if tags:
            cmd += ["--tags", tags]
        extra_file = None
        if extra:
            extra_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
            json.dump(extra, extra_file)
            extra_file.close()
            cmd += ["-e", "@" + extra_file.name]
        env = dict(os.environ, CCPROXY_SSH_PORT=self.env.get("CCPROXY_SSH_PORT", "2222"),
                   CCPROXY_STATE_DIR=str(self.state), ANSIBLE_NOCOLOR="1")
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        finally:
            if extra_file:
                os.unlink(extra_file.name)
        seconds = time.monotonic() - start
        recap = RECAP.findall(proc.stdout)
        if proc.returncode != 0 or not recap:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
            raise SystemExit(f"bench: {playbook} failed")
        return seconds, sum(int(r[1]) for r in recap)

    def probe(self, settings, *args):
        run = self.podman("exec", "-i", self.container, "python3", PROBE, *args, stdin=json.dumps(settings))
        if run.returncode != 0:
            raise SystemExit(f"bench: probe {' '.join(args)} failed: {run.stderr[-2000:]}")
        return json.loads(run.stdout)

    def version(self, command):
        run = self.podman("exec", self.container, "sh", "-c", command)
        return run.stdout.strip().splitlines()[0] if run.returncode == 0 and run.stdout.strip() else "?"


def settings_for(demo, instances):
    ports = [8081, 8091][:instances]
    return {
        "token": demo.gateway.token("demo"),
        "edge_port": demo.edge_port,
        "ca_file": "/etc/traefik/tls/ca.crt",
        "server_name": "",
        "litellm_ports": ports,
        "litellm_env_file": "/etc/ccproxy/litellm/litellm.env",
        "litellm_metrics_ports": [p + 1000 for p in ports],
        "ollama_port": 11434,
        "alias": "gpt-4",
        "ollama_model": "qwen2.5-coder:7b-instruct",
    }


def config_extra(instances, workers, strategy):
    """The extra vars of one LiteLLM configuration, with the demo's limits lifted."""
    extra = dict(LIFTED, ccproxy_litellm_instances=instances, litellm_num_workers=workers)
    if strategy:
        extra["traefik_upstream_strategy"] = strategy
    return extra


def measure_config(demo, name, instances, workers, strategy, args):
    extra = config_extra(instances, workers, strategy)
    log(f"{name}: converging")
    demo.playbook("site.yml", extra=extra, tags="litellm,traefik")
    settings = settings_for(demo, instances)
    log(f"{name}: latency, {args.n} rounds plain and {args.n_stream} streaming")
    plain = demo.probe(settings, "latency", "--n", str(args.n))
    stream = demo.probe(settings, "latency", "--n", str(args.n_stream), "--stream")
    log(f"{name}: throughput at concurrency {args.concurrency}")
    load = demo.probe(settings, "load", "--concurrency", args.concurrency, "--seconds", str(args.seconds))
    config = {"name": name, "instances": instances, "workers": workers, "strategy": strategy,
              "latency": {"plain": plain, "stream": stream}, "load": load}
    c = bench_report.costs(plain)
    log(f"{name}: gateway {c['gateway_ms']:.1f} ms, edge {c['edge_ratio'] * 100:+.0f}% over LiteLLM, "
        + ", ".join(f"c={k} {v['rps']:.0f}/s" for k, v in load.items()))
    return config


def under_load(demo, what, action):
    """Run action() while two openai-SDK clients send chat completions, one
    with no retries (every failed attempt counts) and one with the SDK's
    default retries: an operations row."""
    raw = ChatLoad(demo.gateway, demo.gateway.token("demo"), "gpt-4", max_retries=0, rps=10)
    sdk = ChatLoad(demo.gateway, demo.gateway.token("demo"), "gpt-4", max_retries=2, rps=5)
    raw.start(), sdk.start()
    time.sleep(2)
    start = time.monotonic()
    try:
        action()
    finally:
        seconds = time.monotonic() - start
        time.sleep(2)
        raw.finish(), sdk.finish()
    log(f"{what}: {seconds:.1f} s; no retries: {raw.summary()}; SDK default retries: {sdk.summary()}")
    return {"what": what, "seconds": seconds, "failed": len(raw.failed), "total": raw.ok + len(raw.failed),
            "note": f"no retries, 10 req/s; with the SDK's default retries {len(sdk.failed)}/{sdk.ok + len(sdk.failed)} failed"}


def kill_litellm(demo):
    pid = demo.podman("exec", demo.container, "systemctl", "show", "-p", "MainPID", "--value", "litellm").stdout.strip()
    demo.podman("exec", demo.container, "kill", "-KILL", pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        up = demo.podman("exec", demo.container, "curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8081/health/liveliness")
        if up.returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit("bench: LiteLLM did not come back within 120 s of kill -9")


def operations(demo, extra):
    """Operations under load: a kill -9 of a LiteLLM instance, a token
    rotation, a Traefik restart, and an upgrade from the older releases the demo's mirror
    serves (tests/mirror/releases.yml) to the pins."""
    rows = [under_load(demo, "kill -9 of one LiteLLM instance, until it serves again", lambda: kill_litellm(demo)),
            under_load(demo, "token rotation (rotate-token.yml)",
                       lambda: demo.playbook("playbooks/rotate-token.yml", extra=extra)),
            # Any static config change restarts Traefik: a handover on systemd.
            under_load(demo, "Traefik restart (site.yml, a static config change)",
                       lambda: demo.playbook("site.yml", extra=dict(extra, traefik_drain_timeout=301)))]
    older = yaml.safe_load((ROOT / "tests" / "mirror" / "releases.yml").read_text())["older"]
    log(f"converging the older releases ({', '.join(f'{k} {v}' for k, v in sorted(older.items()))})")
    demo.playbook("site.yml", extra=dict(extra, **{f"{k}_version": v for k, v in older.items()}))
    rows.append(under_load(demo, "upgrade of all three from the older releases (upgrade.yml)",
                           lambda: demo.playbook("playbooks/upgrade.yml", extra=extra)))
    return rows


def parse_config(spec):
    """"2x1" or "2x1:wrr": (instances, workers, Traefik strategy or None)."""
    size, _, strategy = spec.partition(":")
    instances, workers = (int(x) for x in size.split("x"))
    if strategy and strategy not in STRATEGIES:
        raise SystemExit(f"bench: unknown strategy {strategy!r} in {spec!r} (one of {', '.join(STRATEGIES)})")
    return instances, workers, strategy or None


def config_name(instances, workers, strategy):
    return f"{instances} instance(s) x {workers} worker(s)" + (f", {strategy}" if strategy else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", default="ccproxy-demo")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--n", type=int, default=300, help="rounds of plain latency (one request per path each)")
    parser.add_argument("--n-stream", type=int, default=40, help="rounds of streaming latency")
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=6, help="per concurrency level")
    parser.add_argument("--configs", default="2x1,2x1:leasttime,1x1,1x2",
                        help="LiteLLM instances x workers to measure, each optionally with a Traefik "
                             "strategy for the instances (:wrr, :p2c, :leasttime; none = the inventory's); "
                             "the first is the defaults'")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, the defaults only, no operations")
    parser.add_argument("--no-operations", action="store_true", help="skip the kill, rotation and upgrade under load")
    parser.add_argument("--before", type=Path, metavar="RESULTS_JSON",
                        help="an earlier run's results.json (e.g. before a tuning change): adds a before-and-after table")
    parser.add_argument("--before-label", default="the earlier run", help="what changed since --before")
    args = parser.parse_args()
    if args.quick:
        args.n, args.n_stream, args.seconds, args.configs, args.concurrency = 60, 10, 3, "2x1", "1,4,16"
        args.no_operations = True

    demo = Demo(args.container)
    probe = demo.podman("cp", str(ROOT / "scripts" / "bench_probe.py"), f"{args.container}:{PROBE}")
    if probe.returncode != 0:
        raise SystemExit(f"bench: cannot copy the probe into {args.container}: {probe.stderr}")
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "date": datetime.date.today().isoformat(),
            "versions": {
                "traefik": demo.version("traefik version | sed -n 's/^Version: *//p'"),
                "litellm": demo.version("/opt/ccproxy/litellm/venv/bin/python -c "
                                        "'import importlib.metadata as m; print(m.version(\"litellm\"))'"),
                "backend": "Ollama API test double",
            },
        },
        "configs": [],
        "operations": [],
    }
    configs = [parse_config(c) for c in args.configs.split(",")]
    results["baseline"] = config_name(*configs[0])
    try:
        for instances, workers, strategy in configs:
            name = config_name(instances, workers, strategy)
            results["configs"].append(measure_config(demo, name, instances, workers, strategy, args))
            if (instances, workers, strategy) == configs[0]:
                log("refused tokens against authenticated ones")
                results["rejection"] = demo.probe(settings_for(demo, instances), "reject")
                if not args.no_operations:
                    results["operations"] += operations(demo, config_extra(instances, workers, strategy))
    finally:
        log("putting the inventory's settings back (site.yml)")
        demo.playbook("site.yml")
    seconds, changed = demo.playbook("site.yml")
    results["operations"].append({"what": "no-op re-converge (site.yml)", "seconds": seconds,
                                  "note": f"changed={changed}"})
    if args.before:
        earlier = json.loads(args.before.read_text())
        results["before"] = {"label": args.before_label, "date": earlier["machine"]["date"],
                             "config": bench_report.baseline(earlier)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(bench_report.write(results, args.out))
    log(f"wrote {args.out / 'report.md'}, latency.png and throughput.png")


if __name__ == "__main__":
    main()
