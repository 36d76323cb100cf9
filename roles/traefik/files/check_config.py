#!/usr/bin/env python3
"""Validate a Traefik static or dynamic config, or the token plugin's tokens
file, before it replaces the live one.

Usage: check_config.py static|dynamic|tokens FILE. Exits 0 when valid, else
prints what is wrong and exits 1. Traefik keeps the last good dynamic config
when a file fails to parse, but would silently drop routes for a file that
parses and is wrong; this catches the mistakes that matter for ccproxy: YAML
syntax, routers pointing at missing services or middlewares, malformed token
hashes, a tokens file the plugin could not use.
"""
import json
import os
import sys

import yaml

# The one definition of a valid token entry, installed beside this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import token_spec  # noqa: E402

# Traefik 3.7's load-balancing strategies.
STRATEGIES = ("wrr", "p2c", "hrw", "leasttime")


def check_static(cfg):
    eps = cfg.get("entryPoints")
    if not isinstance(eps, dict) or not eps:
        yield "entryPoints must be a non-empty mapping"
        return
    for name, ep in eps.items():
        if not isinstance(ep, dict) or ":" not in str(ep.get("address", "")):
            yield f"entryPoints.{name}.address must be [host]:port"
    if "api" in cfg:
        yield "api (dashboard) must stay off"
    provider = (cfg.get("providers") or {}).get("file") or {}
    if not provider.get("directory") and not provider.get("filename"):
        yield "providers.file needs a directory or filename"


TOKENAUTH_KEYS = {"tokens", "tokensFile", "tokensFileRefresh", "upstreamAuthorization", "clientHeader"}
GUARD_DENY_KEYS = {"status", "type", "message"}


def check_tokenauth(name, conf):
    # The plugin ignores unknown keys silently: a typo would strip a header.
    unknown = set(conf) - TOKENAUTH_KEYS
    if unknown:
        yield f"middleware {name}: unknown keys {sorted(unknown)}"
    tokens_file = conf.get("tokensFile")
    if tokens_file is None:
        for problem in token_spec.list_problems(conf.get("tokens"), secret_key="sha256"):
            yield f"middleware {name}: tokens: {problem}"
        return
    if "tokens" in conf:
        yield f"middleware {name}: set tokens or tokensFile, not both"
    if not isinstance(tokens_file, str) or not os.path.isabs(tokens_file):
        yield f"middleware {name}: tokensFile must be an absolute path"


def check_tokens(path):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        yield f"{path}: {exc}"
        return
    yield from token_spec.tokens_file_problems(doc)


GUARD_MODES = ("deny", "maxRequestBodyBytes", "models")


def check_guard(name, conf):
    # Exactly one mode, as the plugin's New() demands (else the router drops out).
    unknown = set(conf) - set(GUARD_MODES)
    if unknown:
        yield f"middleware {name}: unknown keys {sorted(unknown)}"
    if sum(mode in conf for mode in GUARD_MODES) != 1:
        yield f"middleware {name}: set exactly one of {', '.join(GUARD_MODES)}"
    models = conf.get("models")
    if models is not None and not (isinstance(models, list) and models and all(isinstance(m, str) and m for m in models)):
        yield f"middleware {name}: models must be a non-empty list of model names"
    deny = conf.get("deny")
    if deny is not None:
        if not isinstance(deny, dict) or set(deny) != GUARD_DENY_KEYS:
            yield f"middleware {name}: deny needs exactly {sorted(GUARD_DENY_KEYS)}"
        elif not (isinstance(deny["status"], int) and 400 <= deny["status"] <= 599):
            yield f"middleware {name}: deny.status must be 4xx or 5xx"
    limit = conf.get("maxRequestBodyBytes")
    if limit is not None and not (isinstance(limit, int) and limit > 0):
        yield f"middleware {name}: maxRequestBodyBytes must be a positive integer"


PLUGIN_CHECKS = {"tokenauth": check_tokenauth, "guard": check_guard}


def check_dynamic(cfg):
    http = cfg.get("http") or {}
    routers = http.get("routers") or {}
    middlewares = http.get("middlewares") or {}
    services = http.get("services") or {}
    for rname, router in routers.items():
        if not router.get("rule"):
            yield f"router {rname} has no rule"
        svc = router.get("service")
        if svc not in services and not str(svc).endswith("@internal"):
            yield f"router {rname} uses unknown service {svc}"
        for mw in router.get("middlewares") or []:
            if mw not in middlewares:
                yield f"router {rname} uses unknown middleware {mw}"
    for mname, mw in middlewares.items():
        if not isinstance(mw, dict) or len(mw) != 1:
            yield f"middleware {mname} must have exactly one type"
            continue
        plugin = mw.get("plugin")
        if plugin is not None:
            for pname, pconf in plugin.items():
                if pname not in PLUGIN_CHECKS:
                    yield f"middleware {mname}: unknown plugin {pname}"
                    continue
                yield from PLUGIN_CHECKS[pname](mname, pconf or {})
    # Paths outside the allowlist must meet a catch-all that answers itself.
    catch_all = [r for r in routers.values() if r.get("rule") == "PathPrefix(`/`)"]
    if routers and not any(
        (middlewares.get(m) or {}).get("plugin", {}).get("guard", {}).get("deny")
        for r in catch_all for m in r.get("middlewares") or []
    ):
        yield "no catch-all router (PathPrefix(`/`)) answered by a guard deny middleware"
    for sname, svc in services.items():
        balancer = (svc or {}).get("loadBalancer") or {}
        servers = balancer.get("servers") or []
        if not servers or not all(s.get("url") for s in servers):
            yield f"service {sname} needs loadBalancer.servers with url"
        if balancer.get("strategy", "wrr") not in STRATEGIES:
            yield f"service {sname}: loadBalancer.strategy must be one of {', '.join(STRATEGIES)}"


def main(argv):
    if len(argv) != 3 or argv[1] not in ("static", "dynamic", "tokens"):
        print(f"usage: {argv[0]} static|dynamic|tokens FILE", file=sys.stderr)
        return 2
    if argv[1] == "tokens":
        found = list(check_tokens(argv[2]))
        for problem in found:
            print(f"{argv[2]}: {problem}", file=sys.stderr)
        return 1 if found else 0
    try:
        with open(argv[2], encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        print(f"{argv[2]}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(cfg, dict):
        print(f"{argv[2]}: top level must be a mapping", file=sys.stderr)
        return 1
    found = list((check_static if argv[1] == "static" else check_dynamic)(cfg))
    for problem in found:
        print(f"{argv[2]}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
