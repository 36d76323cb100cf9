"""Turn the numbers `make bench` measured (build/bench/results.json) into
build/bench/report.md and PNG charts. Pure functions of the results, so that a
unit test can check them on canned numbers (tests/unit/test_bench_report.py).

  .venv/bin/python scripts/bench_report.py build/bench/results.json   # rewrite the report

Results layout (what scripts/bench.py writes):
  machine: {cpus, date, versions: {component: version}}
  configs: [{name, instances, workers, latency: {plain|stream: {path: {first_ms, total_ms, failed}}},
             load: {concurrency: {ok, failed, rps}}}]
  baseline: the name of the config the ratios are taken from (the defaults)
  rejection: {refused: [{rps, ...}], authenticated: [{rps, ...}], litellm_requests_during_refused}
  operations: [{what, seconds, failed, total, note}]
  before (optional): {label, date, config}: the same configuration from an
    earlier run (bench.py --before), for a before-and-after table
"""
import json
import statistics
import sys
from pathlib import Path

PATHS = ("edge", "litellm", "ollama")
PATH_LABEL = {"edge": "edge (TLS, auth) + LiteLLM", "litellm": "LiteLLM direct", "ollama": "backend direct"}


def quantile(samples, q):
    """The q-quantile (0..1) of the samples, interpolated; None when empty."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[min(999, max(0, round(q * 1000) - 1))]


def summary(latency, key="total_ms"):
    """{path: (p50, p99)} of one latency run."""
    return {path: (quantile(latency[path][key], 0.50), quantile(latency[path][key], 0.99))
            for path in PATHS if path in latency}


def costs(latency, key="total_ms"):
    """What each layer adds at p50, in ms: the edge over LiteLLM, LiteLLM over
    the backend, and the gateway's own cost (edge and LiteLLM) over the backend."""
    s = summary(latency, key)
    edge, litellm, backend = s["edge"][0], s["litellm"][0], s["ollama"][0]
    return {
        "edge_ms": edge - litellm,
        "edge_ratio": edge / litellm - 1,
        "litellm_ms": litellm - backend,
        "gateway_ms": edge - backend,
    }


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


def _pct(value):
    return f"{value * 100:+.0f}%"


def baseline(results):
    return next(c for c in results["configs"] if c["name"] == results["baseline"])


def render(results):
    """The report as Markdown."""
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(machine["versions"].items()))
    base = baseline(results)
    lines = [
        "# ccproxy benchmark",
        "",
        f"Measured {machine['date']} on {machine['cpus']} CPUs ({versions}).",
        "The backend is whatever serves Ollama's API on the host: against the demo,",
        "the Ollama API test double, so these are the gateway's own costs, not a model's.",
        "",
        f"## Latency per path ({base['name']}, the defaults)",
        "",
        "Each round sends one request down every path in a new random order.",
        "LiteLLM direct takes the instances in turn, one request each; the edge picks",
        "one by Traefik's load-balancing strategy (the inventory's traefik_upstream_strategy).",
        "",
        "| path | p50 ms | p99 ms | stream: first token p50 ms | first token p99 ms | failed |",
        "|---|---|---|---|---|---|",
    ]
    plain, stream = base["latency"]["plain"], base["latency"].get("stream")
    plain_s = summary(plain)
    stream_s = summary(stream, "first_ms") if stream else {}
    for path in PATHS:
        if path not in plain_s:
            continue
        first = stream_s.get(path, (None, None))
        failed = plain[path]["failed"] + (stream[path]["failed"] if stream else 0)
        lines.append(f"| {PATH_LABEL[path]} | {_ms(plain_s[path][0])} | {_ms(plain_s[path][1])} | "
                     f"{_ms(first[0])} | {_ms(first[1])} | {failed} |")
    c = costs(plain)
    lines += [
        "",
        "| cost at p50 | ms | goal |",
        "|---|---|---|",
        f"| the edge over LiteLLM alone | {c['edge_ms']:.1f} ({_pct(c['edge_ratio'])}) | at most +10% |",
        f"| LiteLLM over the backend | {c['litellm_ms']:.1f} | |",
        f"| the gateway's own cost (edge and LiteLLM) | {c['gateway_ms']:.1f} | at most 10 ms |",
        "",
        "## Configurations",
        "",
        "| configuration | gateway p50 ms | LiteLLM p50 ms | edge over LiteLLM | "
        + " | ".join(f"req/s c={n}" for n in _concurrencies(results)) + " |",
        "|---|---|---|---|" + "---|" * len(_concurrencies(results)),
    ]
    for config in results["configs"]:
        cc = costs(config["latency"]["plain"])
        rps = [config["load"].get(n, {}).get("rps") for n in _concurrencies(results)]
        lines.append(f"| {config['name']} | {cc['gateway_ms']:.1f} | {cc['litellm_ms']:.1f} | "
                     f"{_pct(cc['edge_ratio'])} | " + " | ".join(_rps(r) for r in rps) + " |")
    failed_load = sum(v.get("failed", 0) for config in results["configs"] for v in config["load"].values())
    lines += ["", f"Failed requests under load: {failed_load}."]
    rejection = results.get("rejection")
    if rejection:
        refused = statistics.fmean(r["rps"] for r in rejection["refused"])
        accepted = statistics.fmean(r["rps"] for r in rejection["authenticated"])
        leaked = rejection["litellm_requests_during_refused"]
        counted = rejection.get("litellm_requests_authenticated")
        refused_total = sum(r["failed"] for r in rejection["refused"])
        lines += [
            "",
            "## Refused tokens",
            "",
            "| | req/s |",
            "|---|---|",
            f"| refused (wrong token) | {refused:.0f} |",
            f"| authenticated | {accepted:.0f} |",
            f"| ratio | {refused / accepted:.1f}x |",
            "",
            f"Of {refused_total} refused requests, LiteLLM's request counter saw {leaked:.0f}"
            + (" (none reached it)" if leaked == 0 else " (SOME REACHED IT)")
            + ("" if counted is None else f"; it counted {counted:.0f} of the authenticated ones") + ".",
        ]
    before = results.get("before")
    if before:
        old, new = before["config"], base
        oc, nc = costs(old["latency"]["plain"]), costs(new["latency"]["plain"])
        levels = [n for n in _concurrencies(results) if n in old["load"] and n in new["load"]]
        lines += ["", f"## Before and after: {before['label']}", "",
                  f"{base['name']}, this run against {before['date']}'s run.", "",
                  "| | before | after | change |", "|---|---|---|---|"]
        for label, key in (("gateway's own cost, p50 ms", "gateway_ms"), ("LiteLLM over the backend, p50 ms", "litellm_ms"),
                           ("edge over LiteLLM, p50 ms", "edge_ms")):
            lines.append(f"| {label} | {oc[key]:.1f} | {nc[key]:.1f} | {_pct(nc[key] / oc[key] - 1)} |")
        for n in levels:
            o, w = old["load"][n]["rps"], new["load"][n]["rps"]
            lines.append(f"| req/s at c={n} | {o:.0f} | {w:.0f} | {_pct(w / o - 1)} |")
    operations = results.get("operations")
    if operations:
        lines += ["", "## Operations", "", "| operation | seconds | failed requests | note |", "|---|---|---|---|"]
        for op in operations:
            failed = "-" if op.get("total") is None else f"{op['failed']}/{op['total']}"
            lines.append(f"| {op['what']} | {_ms(op.get('seconds'))} | {failed} | {op.get('note', '')} |")
    lines += ["", "Charts: latency.png (distribution per path), throughput.png (requests/s against concurrency).", ""]
    return "\n".join(lines)


def _concurrencies(results):
    found = {int(n) for config in results["configs"] for n in config["load"]}
    return [str(n) for n in sorted(found)]


def _rps(value):
    return "-" if value is None else f"{value:.0f}"


def charts(results, out):
    """latency.png and throughput.png in `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = baseline(results)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for path in PATHS:
        samples = sorted(base["latency"]["plain"].get(path, {}).get("total_ms", []))
        if samples:
            ax.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))], label=PATH_LABEL[path])
    ax.set_xscale("log")
    ax.set_xlabel("chat completion latency, ms (log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"Latency distribution per path ({base['name']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for config in results["configs"]:
        levels = sorted(config["load"], key=int)
        ax.plot([int(n) for n in levels], [config["load"][n]["rps"] for n in levels], marker="o", label=config["name"])
    ax.set_xscale("log", base=2)
    ticks = sorted({int(n) for config in results["configs"] for n in config["load"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("completed requests/s through the edge")
    ax.set_title(f"Throughput against concurrency ({results['machine']['cpus']} CPUs)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out / "throughput.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write(results, out):
    """report.md and the charts in `out`; returns the report's text."""
    out.mkdir(parents=True, exist_ok=True)
    text = render(results)
    (out / "report.md").write_text(text)
    charts(results, out)
    return text


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "build/bench/results.json")
    print(write(json.loads(source.read_text()), source.parent))
