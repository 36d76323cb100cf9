"""Filters that turn the one model map (ccproxy_models) into what each host serves.

An entry of ccproxy_models is {name, aliases, preload?, hosts?, fallback?}:
`hosts` names the model hosts that pull and serve it (default: every model
host), `fallback` another entry's name that answers when this one cannot.
The ollama role pulls what `ccproxy_host_models` gives its host; the litellm
role routes every alias to every host that carries its model
(`ccproxy_model_backends`), and falls back along `ccproxy_model_fallbacks`.
"""
import re

from ansible.errors import AnsibleFilterError


def _carriers(model, model_hosts):
    return model.get("hosts") or list(model_hosts)


def host_models(models, host, model_hosts):
    """The entries of `models` that model host `host` pulls and serves."""
    return [m for m in models if host in _carriers(m, model_hosts)]


def model_backends(models, model_hosts, hostvars):
    """One backend per model host that carries at least one model.

    Each is {host, url, models, parallel}: `url` is the host's Ollama as the
    gateways reach it (its ccproxy_ollama_address and ccproxy_ollama_port),
    `models` the names it serves, in the order of `models`, and `parallel` the
    requests it serves at once (its ollama_num_parallel, or
    ccproxy_ollama_num_parallel), the router's weight for it. With several
    backends the gateways reach each through their own Traefik, at
    http://127.0.0.1:<ccproxy_model_relay_port><route> (README, "Scaling out").
    """
    backends = []
    for host in model_hosts:
        names = [m["name"] for m in host_models(models, host, model_hosts)]
        if not names:
            continue
        hv = hostvars[host]
        address = hv.get("ccproxy_ollama_address") or "127.0.0.1"
        if ":" in str(address):
            address = f"[{address}]"
        port = hv.get("ccproxy_ollama_port", 11434)
        parallel = int(hv.get("ollama_num_parallel") or hv.get("ccproxy_ollama_num_parallel") or 1)
        backends.append({"host": host, "url": f"http://{address}:{port}", "models": names, "parallel": parallel,
                         "route": "/ollama/" + re.sub(r"[^A-Za-z0-9-]", "-", host)})
    return backends


def model_fallbacks(models):
    """LiteLLM's router fallbacks: each alias of a model with a `fallback` to
    the first alias of the model named there."""
    first_alias = {m["name"]: m["aliases"][0] for m in models}
    fallbacks = []
    for m in models:
        target = m.get("fallback")
        if not target:
            continue
        if target not in first_alias or target == m["name"]:
            raise AnsibleFilterError(f"model {m['name']}: fallback {target!r} must name another model in ccproxy_models")
        fallbacks.extend({alias: [first_alias[target]]} for alias in m["aliases"])
    return fallbacks


class FilterModule:
    def filters(self):
        return {
            "ccproxy_host_models": host_models,
            "ccproxy_model_backends": model_backends,
            "ccproxy_model_fallbacks": model_fallbacks,
        }
