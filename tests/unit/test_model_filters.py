"""The model map's filters (plugins/filter/ccproxy_models.py): which model host
pulls what, the gateways' backends, and the router's fallbacks."""
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))
import ccproxy_models as f  # noqa: E402

MODELS = [
    {"name": "small", "aliases": ["fast", "gpt-4"]},
    {"name": "big", "aliases": ["quality"], "hosts": ["gpu-1"], "fallback": "small"},
]
HOSTVARS = {
    "gpu-1": {"ccproxy_ollama_address": "10.0.0.21", "ccproxy_ollama_port": 11434, "ollama_num_parallel": 4},
    "mini.lan": {"ccproxy_ollama_address": "fd00::5", "ccproxy_ollama_port": 11500},
}


def test_a_model_without_hosts_is_on_every_model_host():
    assert [m["name"] for m in f.host_models(MODELS, "mini.lan", ["gpu-1", "mini.lan"])] == ["small"]
    assert [m["name"] for m in f.host_models(MODELS, "gpu-1", ["gpu-1", "mini.lan"])] == ["small", "big"]


def test_backends_name_each_host_its_url_models_weight_and_route():
    backends = f.model_backends(MODELS, ["gpu-1", "mini.lan"], HOSTVARS)
    assert backends == [
        {"host": "gpu-1", "url": "http://10.0.0.21:11434", "models": ["small", "big"], "parallel": 4,
         "route": "/ollama/gpu-1"},
        {"host": "mini.lan", "url": "http://[fd00::5]:11500", "models": ["small"], "parallel": 1,
         "route": "/ollama/mini-lan"},
    ]


def test_a_model_host_that_carries_nothing_is_no_backend():
    models = [{"name": "big", "aliases": ["q"], "hosts": ["gpu-1"]}]
    assert [b["host"] for b in f.model_backends(models, ["gpu-1", "mini.lan"], HOSTVARS)] == ["gpu-1"]


def test_one_host_on_loopback():
    backends = f.model_backends(MODELS[:1], ["solo"], {"solo": {"ccproxy_ollama_address": "127.0.0.1"}})
    assert backends[0]["url"] == "http://127.0.0.1:11434"


def test_fallbacks_go_to_the_first_alias_of_the_named_model():
    assert f.model_fallbacks(MODELS) == [{"quality": ["fast"]}]


@pytest.mark.parametrize("target", ["missing", "big"])
def test_a_fallback_must_name_another_model(target):
    models = [{"name": "small", "aliases": ["fast"]}, {"name": "big", "aliases": ["q"], "fallback": target}]
    with pytest.raises(AnsibleFilterError, match="fallback"):
        f.model_fallbacks(models)
