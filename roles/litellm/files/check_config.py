#!/usr/bin/env python3
"""Validate a LiteLLM proxy config.yaml before it replaces the running one.

Run with the LiteLLM venv's Python: `python check_config.py CONFIG`. Exits 0 when
the file is valid, else prints what is wrong and exits 1. Checks YAML syntax,
the shape ccproxy relies on, every model_list entry against LiteLLM's own
Deployment model, that every callback given as module.attribute imports with
this LiteLLM (ccproxy_litellm: `--pythonpath DIR` puts DIR first on the path,
as the service's PYTHONPATH does), and that no secret is written into the
file itself.
"""
import importlib
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import yaml  # noqa: E402  (after the environment is set for litellm)


def problems(config):
    if not isinstance(config, dict):
        yield "top level must be a mapping"
        return
    model_list = config.get("model_list")
    if not isinstance(model_list, list) or not model_list:
        yield "model_list must be a non-empty list"
        return
    from litellm.types.router import Deployment
    from pydantic import ValidationError

    names = []
    for i, entry in enumerate(model_list):
        try:
            deployment = Deployment(**entry)
        except (TypeError, ValidationError) as exc:
            yield f"model_list[{i}]: {exc}"
            continue
        params = deployment.litellm_params
        names.append((deployment.model_name, params.api_base))
        if "/" not in params.model:
            yield f"model_list[{i}]: model {params.model!r} has no provider prefix"
        if params.api_base and params.api_base.rstrip("/").endswith("/v1"):
            yield f"model_list[{i}]: api_base must not end in /v1"
        if params.api_key:
            yield f"model_list[{i}]: api_key must not be written into the config"
    duplicates = sorted({f"{n} at {b}" for n, b in names if names.count((n, b)) > 1})
    if duplicates:
        yield f"model names served twice by one backend: {', '.join(duplicates)}"
    general = config.get("general_settings") or {}
    master_key = general.get("master_key")
    if master_key is not None and not str(master_key).startswith("os.environ/"):
        yield "general_settings.master_key must be os.environ/<VAR>, never the key itself"
    secrets = [
        ("router_settings.redis_password", (config.get("router_settings") or {}).get("redis_password")),
        ("litellm_settings.cache_params.password",
         ((config.get("litellm_settings") or {}).get("cache_params") or {}).get("password")),
    ]
    for where, value in secrets:
        if value is not None and not str(value).startswith("os.environ/"):
            yield f"{where} must be os.environ/<VAR>, never the password itself"
    for section in ("litellm_settings", "router_settings", "general_settings"):
        if section in config and not isinstance(config[section], dict):
            yield f"{section} must be a mapping"
    yield from callback_problems((config.get("litellm_settings") or {}).get("callbacks") or [])


def callback_problems(callbacks):
    """Callbacks named module.attribute must import: LiteLLM would not start otherwise."""
    for name in callbacks:
        if not isinstance(name, str) or "." not in name:
            continue
        module, _, attribute = name.rpartition(".")
        try:
            getattr(importlib.import_module(module), attribute)
        except Exception as exc:  # noqa: BLE001 (any failure to import stops LiteLLM's start)
            yield f"litellm_settings.callbacks: {name} does not load: {type(exc).__name__}: {exc}"


def main(argv):
    if len(argv) == 4 and argv[1] == "--pythonpath":
        sys.path.insert(0, argv[2])
        argv = [argv[0], argv[3]]
    if len(argv) != 2:
        print(f"usage: {argv[0]} [--pythonpath DIR] CONFIG", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 1
    found = list(problems(config))
    for problem in found:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
