"""Bad input is refused before anything changes, each time with a message that
names the variable. Every case runs through the real preflight tasks (site,
vault contents, each role's) in one playbook run: tests/playbooks/preflight-cases.yml."""
import json

import pytest
import yaml

FACTS = {"system": "Linux", "os_family": "Debian", "distribution": "Debian", "distribution_version": "12",
         "service_mgr": "systemd", "architecture": "x86_64", "user_id": "root", "user_dir": "/root"}
TOKEN = "FAKE-preflight-token-" + "0" * 30
MODELS = [{"name": "qwen2.5-coder:7b-instruct", "aliases": ["gpt-4", "ollama/qwen-fast"], "preload": True},
          {"name": "qwen2.5-coder:32b-instruct", "aliases": ["qwen-quality"]}]

# A valid value of every variable some case sets.
BASELINE = {
    "ansible_facts": FACTS,
    "ccproxy_models": MODELS,
    "ccproxy_ollama_port": 11434, "ccproxy_litellm_port": 8081, "ccproxy_public_port": 8080,
    "ccproxy_model_relay_port": 8084,
    "ccproxy_litellm_instances": 2,
    # Derived as in playbooks/group_vars/all/ccproxy.yml, so cases that move the first port move it.
    "ccproxy_litellm_ports": "{{ range(ccproxy_litellm_port | int, ccproxy_litellm_port | int"
                             " + 10 * ccproxy_litellm_instances | int, 10) | list }}",
    "ccproxy_token_grace_seconds": 86400,
    "ccproxy_clients": ["laptop", "ci"],
    "ccproxy_public_url": "https://gateway.example.internal:8080/v1",
    "ccproxy_token_hook": [],
    "ccproxy_launchd_kind": "daemon", "ccproxy_launchd_label_prefix": "com.ccproxy",
    "ccproxy_litellm_master_key": "FAKE-preflight-master-key-" + "0" * 30,
    "ccproxy_client_tokens": [{"name": "laptop", "token": TOKEN, "expires": ""}],
    "litellm_version": "1.108.7", "litellm_egress_allow": [], "litellm_cache": False,
    "litellm_stop_timeout": 90,
    "traefik_max_in_flight_per_client": 4, "traefik_read_timeout": "60s", "traefik_api_routes_extra": [],
    "traefik_tls_cert_src": "", "traefik_tls_key_src": "", "traefik_internal_port": 8082,
    "traefik_max_request_body_bytes": 33554432,
    "traefik_retry_attempts": 5, "traefik_upstream_health_interval": "500ms",
    "traefik_retry_initial_interval": "250ms", "traefik_model_health_interval": "5s",
    "traefik_model_health_timeout": "3s", "traefik_model_dial_timeout": "1.5s",
    "ollama_kv_cache_type": "q8_0", "ollama_flash_attention": True,
    "ollama_pull_progress_interval": 10, "ollama_pull_timeout": 21600,
    "ccproxy_probe_host": "gateway.example.internal", "traefik_log_level": "INFO",
    "monitoring_public_probe_ca_src": "", "monitoring_grafana_enabled": False,
    "monitoring_prometheus_port": 9090, "monitoring_alertmanager_retention": "120h",
    "monitoring_watchdog_interval_seconds": 30,
}
GRAFANA = {"monitoring_grafana_enabled": True, "monitoring_grafana_admin_password": "FAKE-preflight-grafana-pw"}

# name: (variables that differ from the baseline, the variable the message must name)
CASES = {
    "unsupported platform": ({"ansible_facts": {**FACTS, "os_family": "RedHat", "distribution": "Fedora"}}, "supports macOS"),
    "alias twice in a model": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a", "a"]}]}, "ccproxy_models"),
    "alias naming two models": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a"]}, {"name": "m:2", "aliases": ["a"]}]}, "ccproxy_models"),
    "model listed twice": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a"]}, {"name": "m:1", "aliases": ["b"]}]}, "ccproxy_models"),
    "model without aliases": ({"ccproxy_models": [{"name": "m:1", "aliases": []}]}, "ccproxy_models"),
    "aliases not a list": ({"ccproxy_models": [{"name": "m:1", "aliases": "gpt-4"}]}, "ccproxy_models"),
    "preload not a boolean": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a"], "preload": "yes"}]}, "ccproxy_models"),
    "no models": ({"ccproxy_models": []}, "ccproxy_models"),
    "port collision": ({"ccproxy_litellm_port": 11434}, "ccproxy_litellm_port"),
    "port out of range": ({"ccproxy_public_port": 70000}, "ccproxy_public_port"),
    "port not a number": ({"ccproxy_public_port": "eighty"}, "ccproxy_public_port"),
    "internal port collides with the public one": ({"traefik_internal_port": 8080}, "traefik_internal_port"),
    # The second LiteLLM instance listens 10 ports above the first.
    "second LiteLLM instance on the Ollama port": ({"ccproxy_litellm_port": 11424}, "ccproxy_litellm_instances"),
    "second LiteLLM instance on the public port": ({"ccproxy_litellm_port": 8070}, "ccproxy_litellm_port"),
    "second LiteLLM instance on Traefik's internal port": ({"ccproxy_litellm_port": 8072}, "traefik_internal_port"),
    "second LiteLLM instance beyond port 65535": ({"ccproxy_litellm_port": 65530}, "ccproxy_litellm_port"),
    "two LiteLLM instances on one port": ({"ccproxy_litellm_ports": [8081, 8081]}, "ccproxy_litellm_ports"),
    "LiteLLM ports and instances disagree": ({"ccproxy_litellm_instances": 3, "ccproxy_litellm_ports": [8081, 8091]}, "ccproxy_litellm_ports"),
    "no LiteLLM instance": ({"ccproxy_litellm_instances": 0}, "ccproxy_litellm_instances"),
    "LiteLLM instances not a number": ({"ccproxy_litellm_instances": "two"}, "ccproxy_litellm_instances"),
    "no attempt left for a request": ({"traefik_retry_attempts": 0}, "traefik_retry_attempts"),
    "health check interval not a duration": ({"traefik_upstream_health_interval": "often"}, "traefik_upstream_health_interval"),
    "model health check interval zero": ({"traefik_model_health_interval": "0s"}, "traefik_model_health_interval"),
    "retry wait not a duration": ({"traefik_retry_initial_interval": "a bit"}, "traefik_retry_initial_interval"),
    "negative grace period": ({"ccproxy_token_grace_seconds": -5}, "ccproxy_token_grace_seconds"),
    "unknown launchd kind": ({"ccproxy_launchd_kind": "service"}, "ccproxy_launchd_kind"),
    "launchd prefix not reverse-DNS": ({"ccproxy_launchd_label_prefix": "ccproxy"}, "ccproxy_launchd_label_prefix"),
    "client named twice": ({"ccproxy_clients": ["laptop", "laptop"]}, "ccproxy_clients"),
    "public URL not https": ({"ccproxy_public_url": "http://gateway:8080/v1"}, "ccproxy_public_url"),
    "token hook as a string": ({"ccproxy_token_hook": "/usr/local/bin/push"}, "ccproxy_token_hook"),
    "malformed expires": ({"ccproxy_client_tokens": [{"name": "laptop", "token": TOKEN, "expires": "next tuesday"}]}, "expires"),
    "short token": ({"ccproxy_client_tokens": [{"name": "laptop", "token": "short"}]}, "ccproxy_client_tokens"),
    "token used twice": ({"ccproxy_client_tokens": [{"name": "a", "token": TOKEN}, {"name": "b", "token": TOKEN}]}, "two entries share a token"),
    "bad client name in the vault": ({"ccproxy_client_tokens": [{"name": "a b", "token": TOKEN}]}, "name must be"),
    "short master key": ({"ccproxy_litellm_master_key": "short"}, "ccproxy_litellm_master_key"),
    "trojaned LiteLLM": ({"litellm_version": "1.82.7"}, "LiteLLM 1.82.7 was a trojaned release"),
    "LiteLLM without a lock": ({"litellm_version": "9.9.9"}, "requirements-9.9.9.txt"),
    "model relay on the public port": ({"ccproxy_model_relay_port": 8080}, "ccproxy_model_relay_port"),
    "model on a host that serves no models": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a"], "hosts": ["nowhere"]}]}, "serves no model"),
    "fallback to an unknown model": ({"ccproxy_models": [{"name": "m:1", "aliases": ["a"], "fallback": "m:9"}]}, "each fallback the name of a model"),
    "cache without Redis": ({"litellm_cache": True}, "litellm_cache needs Redis"),
    "egress to a host name": ({"litellm_egress_allow": ["ollama.lan"]}, "litellm_egress_allow"),
    "negative stop timeout": ({"litellm_stop_timeout": -1}, "litellm_stop_timeout"),
    "egress to an impossible address": ({"litellm_egress_allow": ["999.1.1.1/8"]}, "litellm_egress_allow"),
    "no in-flight allowance": ({"traefik_max_in_flight_per_client": 0}, "traefik_max_in_flight_per_client"),
    "read timeout not a duration": ({"traefik_read_timeout": "soon"}, "traefik_read_timeout"),
    "extra route outside /v1": ({"traefik_api_routes_extra": [{"method": "GET", "path": "/admin"}]}, "traefik_api_routes_extra"),
    "extra route with a dot segment": ({"traefik_api_routes_extra": [{"method": "GET", "path": "/v1/../key"}]}, "traefik_api_routes_extra"),
    "extra route method": ({"traefik_api_routes_extra": [{"method": "TRACE", "path": "/v1/x"}]}, "traefik_api_routes_extra"),
    "certificate without key": ({"traefik_tls_cert_src": "/etc/hosts"}, "traefik_tls_key_src"),
    "quantised KV cache without flash attention": ({"ollama_flash_attention": False}, "ollama_flash_attention"),
    "pull progress too rare": ({"ollama_pull_progress_interval": 60}, "ollama_pull_progress_interval"),
    "probe host as a URL": ({"ccproxy_probe_host": "https://gateway.example.internal"}, "ccproxy_probe_host"),
    "Traefik logging secrets at DEBUG": ({"traefik_log_level": "DEBUG"}, "traefik_log_level"),
    "Prometheus on the public port": ({"monitoring_prometheus_port": 8080}, "monitoring_prometheus_port"),
    "retention not a duration": ({"monitoring_alertmanager_retention": "5 days"}, "Prometheus durations"),
    "watchdog interval not dividing a minute": ({"monitoring_watchdog_interval_seconds": 25}, "monitoring_watchdog_interval_seconds"),
    "Grafana with a short admin password": ({**GRAFANA, "monitoring_grafana_admin_password": "short"}, "monitoring_grafana_admin_password"),
    "Grafana on Debian without Grafana's package": (GRAFANA, "install `grafana` from Grafana's apt repository"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory, run_playbook):
    tmp = tmp_path_factory.mktemp("preflight")
    (tmp / "baseline.yml").write_text(yaml.safe_dump(BASELINE))
    cases = [{"name": "valid baseline", "file": str(tmp / "baseline.yml")}]
    for i, (name, (overrides, _)) in enumerate(CASES.items()):
        path = tmp / f"case{i}.yml"
        path.write_text(yaml.safe_dump(overrides))
        cases.append({"name": name, "file": str(path)})
    (tmp / "cases.json").write_text(json.dumps({"cases": cases}))
    run_playbook("tests/playbooks/preflight-cases.yml", var_files=[tmp / "cases.json"],
                 baseline=tmp / "baseline.yml", results=tmp / "results.json")
    return {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}


def test_the_baseline_passes(results):
    assert results["valid baseline"]["refused"] is False, results["valid baseline"]


def test_there_are_at_least_20_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused_with_a_message_naming_it(results, name):
    result = results[name]
    assert result["refused"], f"{name}: accepted"
    assert CASES[name][1] in result["msg"], f"{name}: refused by '{result['task']}' with: {result['msg']}"
    assert TOKEN not in result["msg"], "a message must never quote a token"
