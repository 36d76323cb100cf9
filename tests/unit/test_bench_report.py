"""The report writer of `make bench` (scripts/bench_report.py) on canned
numbers: the table's figures follow from the samples, and the charts are PNGs."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_report  # noqa: E402


def latency(edge, litellm, ollama):
    """Samples 1..100 scaled so that each path's p50 is the given value."""
    def path(p50):
        samples = [p50 * (i + 1) / 50.5 for i in range(100)]
        return {"first_ms": [s / 2 for s in samples], "total_ms": samples, "failed": 0}
    return {"edge": path(edge), "litellm": path(litellm), "ollama": path(ollama)}


@pytest.fixture
def results():
    return {
        "machine": {"cpus": 2, "date": "2026-12-04", "versions": {"litellm": "1.108.7", "traefik": "3.7.15"}},
        "baseline": "2 x 1",
        "configs": [
            {"name": "2 x 1", "instances": 2, "workers": 1,
             "latency": {"plain": latency(22.0, 20.0, 1.0), "stream": latency(22.0, 20.0, 1.0)},
             "load": {"1": {"ok": 300, "failed": 0, "rps": 50.0}, "16": {"ok": 500, "failed": 1, "rps": 83.4}}},
            {"name": "1 x 1", "instances": 1, "workers": 1,
             "latency": {"plain": latency(30.0, 25.0, 1.0), "stream": latency(30.0, 25.0, 1.0)},
             "load": {"1": {"ok": 280, "failed": 0, "rps": 47.0}, "16": {"ok": 400, "failed": 0, "rps": 61.0}}},
        ],
        "rejection": {"refused": [{"rps": 2600.0, "failed": 7800}, {"rps": 2400.0, "failed": 7200}],
                      "authenticated": [{"rps": 50.0}, {"rps": 50.0}],
                      "litellm_requests_during_refused": 0.0, "litellm_requests_authenticated": 300.0},
        "operations": [{"what": "token rotation", "seconds": 31.25, "failed": 0, "total": 310, "note": "n"},
                       {"what": "no-op re-converge", "seconds": 24.0, "note": "changed=0"}],
    }


def test_quantiles_interpolate():
    samples = list(range(1, 101))
    assert bench_report.quantile(samples, 0.5) == pytest.approx(50.5, abs=0.1)
    assert bench_report.quantile(samples, 0.99) == pytest.approx(99.0, abs=0.1)
    assert bench_report.quantile([], 0.5) is None
    assert bench_report.quantile([7.0], 0.99) == 7.0


def test_costs_are_differences_of_the_p50s():
    c = bench_report.costs(latency(22.0, 20.0, 1.0))
    assert c["edge_ms"] == pytest.approx(2.0, abs=0.05)
    assert c["edge_ratio"] == pytest.approx(0.10, abs=0.005)
    assert c["litellm_ms"] == pytest.approx(19.0, abs=0.05)
    assert c["gateway_ms"] == pytest.approx(21.0, abs=0.05)


def test_report_table(results):
    text = bench_report.render(results)
    assert "on 2 CPUs (litellm 1.108.7, traefik 3.7.15)" in text
    assert "| edge (TLS, auth) + LiteLLM | 22.0 |" in text
    assert "| LiteLLM direct | 20.0 |" in text
    assert "| the edge over LiteLLM alone | 2.0 (+10%) | at most +10% |" in text
    assert "| the gateway's own cost (edge and LiteLLM) | 21.0 | at most 10 ms |" in text
    # One row per configuration, a column per concurrency level.
    assert "| req/s c=1 | req/s c=16 |" in text
    assert "| 2 x 1 | 21.0 | 19.0 | +10% | 50 | 83 |" in text
    assert "| 1 x 1 | 29.0 | 24.0 | +20% | 47 | 61 |" in text
    assert "Failed requests under load: 1." in text
    assert "| refused (wrong token) | 2500 |" in text
    assert "| ratio | 50.0x |" in text
    assert "Of 15000 refused requests, LiteLLM's request counter saw 0 (none reached it)" in text
    assert "| token rotation | 31.2 | 0/310 | n |" in text
    assert "| no-op re-converge | 24.0 | - | changed=0 |" in text


def test_a_leak_is_called_out(results):
    results["rejection"]["litellm_requests_during_refused"] = 3.0
    assert "saw 3 (SOME REACHED IT)" in bench_report.render(results)


def test_write_makes_the_report_and_png_charts(results, tmp_path):
    text = bench_report.write(results, tmp_path / "bench")
    assert (tmp_path / "bench" / "report.md").read_text() == text
    for chart in ("latency.png", "throughput.png"):
        data = (tmp_path / "bench" / chart).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, chart


def test_before_and_after(results):
    before = dict(results["configs"][0], latency={"plain": latency(25.0, 23.0, 1.0)},
                  load={"1": {"rps": 40.0}, "16": {"rps": 83.4}})
    results["before"] = {"label": "explicit zero prices", "date": "2026-12-01", "config": before}
    text = bench_report.render(results)
    assert "## Before and after: explicit zero prices" in text
    assert "| gateway's own cost, p50 ms | 24.0 | 21.0 | -12% |" in text
    assert "| LiteLLM over the backend, p50 ms | 22.0 | 19.0 | -14% |" in text
    assert "| req/s at c=1 | 40 | 50 | +25% |" in text
    assert "| req/s at c=16 | 83 | 83 | +0% |" in text


def test_bench_configs_name_a_traefik_strategy_the_role_accepts():
    """`--configs 2x1:wrr`: make bench takes the strategies from the role's argument spec."""
    import bench  # noqa: E402 (scripts/, on the path above)

    assert {"wrr", "leasttime"} <= set(bench.STRATEGIES)
    assert bench.parse_config("2x1") == (2, 1, None)
    assert bench.parse_config("2x1:wrr") == (2, 1, "wrr")
    assert bench.config_name(2, 1, "wrr") == "2 instance(s) x 1 worker(s), wrr"
    with pytest.raises(SystemExit, match="unknown strategy"):
        bench.parse_config("2x1:roundrobin")
