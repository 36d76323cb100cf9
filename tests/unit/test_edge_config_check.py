"""check_config.py (roles/traefik/files), the `validate:` of Traefik's
dynamic config, on the LiteLLM service's load-balancing strategy."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHECK = Path(__file__).resolve().parents[2] / "roles" / "traefik" / "files" / "check_config.py"


def check(tmp_path, balancer):
    path = tmp_path / "dynamic.yml"
    path.write_text(yaml.safe_dump({"http": {"routers": {}, "middlewares": {}, "services": {
        "litellm": {"loadBalancer": dict(balancer, servers=[{"url": "http://127.0.0.1:8081"}])}}}}))
    return subprocess.run([sys.executable, str(CHECK), "dynamic", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("balancer", [{}, {"strategy": "leasttime"}, {"strategy": "wrr"}, {"strategy": "p2c"}])
def test_traefiks_strategies_pass(tmp_path, balancer):
    run = check(tmp_path, balancer)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("strategy", ["roundrobin", "least_time", ""])
def test_an_unknown_strategy_is_refused(tmp_path, strategy):
    run = check(tmp_path, {"strategy": strategy})
    assert run.returncode == 1
    assert "loadBalancer.strategy must be one of" in run.stderr
