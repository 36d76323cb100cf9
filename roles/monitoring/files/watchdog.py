#!/usr/bin/env python3
"""ccproxy watchdog: restart a service that is up but does not answer.

A supervisor (systemd, launchd) restarts a service that exits; it cannot see
one that is alive but hung. Run every few seconds by a timer, this asks each
service's health URL (only while its supervisor has it running: a
stopped service is the operator's or the supervisor's business); after `failures` consecutive failures it restarts the
service, at most `max_restarts` times per `window_seconds`, and each further
restart in the window needs twice as many failures (back-off). Past the
limit it only reports (ccproxy_watchdog_backing_off, which alerts). While the
maintenance marker exists (a playbook restarting services) it stands aside.
It also records Ollama's loaded models (/api/ps), Ollama having no metrics.

Everything it knows goes to node_exporter's textfile collector directory.

Usage: watchdog.py CONFIG.json | watchdog.py --check CONFIG.json
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REQUIRED = {
    "textfile_dir": str, "state_dir": str, "maintenance_file": str,
    "maintenance_max_age_seconds": int, "failures": int, "timeout_seconds": int,
    "max_restarts": int, "window_seconds": int, "ollama_url": str, "checks": list,
}


def check_config(config):
    """Return the problems with a configuration (empty when it is valid)."""
    problems = [f"{key}: missing or not {kind.__name__}"
                for key, kind in REQUIRED.items() if not isinstance(config.get(key), kind)]
    for i, check in enumerate(config.get("checks") or []):
        if not (isinstance(check, dict) and isinstance(check.get("name"), str)
                and isinstance(check.get("url"), str) and check["url"].startswith("http")
                and all(isinstance(check.get(k), list) and check[k] and all(isinstance(a, str) for a in check[k])
                        for k in ("restart", "running"))):
            problems.append(f"checks[{i}]: needs name, an http(s) url, and restart and running argv lists")
    for key in ("failures", "max_restarts", "timeout_seconds", "window_seconds"):
        if isinstance(config.get(key), int) and config[key] < 1:
            problems.append(f"{key}: must be at least 1")
    return problems


def answers(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def write_textfile(directory, name, lines):
    """Write atomically (rename), so node_exporter never reads half a file."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(directory, name))


def label(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def in_maintenance(config, now):
    try:
        age = now - os.stat(config["maintenance_file"]).st_mtime
    except FileNotFoundError:
        return False
    return age < config["maintenance_max_age_seconds"]


def ollama_metrics(config):
    """Loaded models and their memory, from Ollama's /api/ps."""
    lines = [
        "# HELP ccproxy_ollama_ps_up Whether Ollama's /api/ps answered.",
        "# TYPE ccproxy_ollama_ps_up gauge",
    ]
    try:
        with urllib.request.urlopen(config["ollama_url"] + "/api/ps",
                                    timeout=config["timeout_seconds"]) as response:
            models = json.load(response).get("models") or []
    except (urllib.error.URLError, OSError, ValueError):
        return lines + ["ccproxy_ollama_ps_up 0"]
    lines += [
        "ccproxy_ollama_ps_up 1",
        "# HELP ccproxy_ollama_loaded_models Models Ollama holds in memory.",
        "# TYPE ccproxy_ollama_loaded_models gauge",
        f"ccproxy_ollama_loaded_models {len(models)}",
        "# HELP ccproxy_ollama_model_size_bytes Memory a loaded model takes (total and in VRAM).",
        "# TYPE ccproxy_ollama_model_size_bytes gauge",
    ]
    for model in models:
        name = label(str(model.get("name") or model.get("model") or "unknown"))
        lines.append(f'ccproxy_ollama_model_size_bytes{{model="{name}",memory="total"}} {int(model.get("size") or 0)}')
        lines.append(f'ccproxy_ollama_model_size_bytes{{model="{name}",memory="vram"}} {int(model.get("size_vram") or 0)}')
    return lines


def run(config):
    now = time.time()
    state_file = os.path.join(config["state_dir"], "state.json")
    try:
        with open(state_file) as f:
            state = json.load(f)
    except (FileNotFoundError, ValueError):
        state = {}
    maintenance = in_maintenance(config, now)
    results = {}
    for check in config["checks"]:
        name = check["name"]
        s = state.setdefault(name, {"failures": 0, "restarts": [], "restarts_total": 0,
                                    "last_restart": 0})
        s["restarts"] = [t for t in s["restarts"] if now - t < config["window_seconds"]]
        s["backing_off"] = 0
        if maintenance:
            # A playbook is restarting services: failures now mean nothing.
            s["failures"] = 0
            results[name] = None
            continue
        running = subprocess.run(check["running"], check=False, capture_output=True, timeout=30).returncode == 0
        ok = not running or answers(check["url"], config["timeout_seconds"])
        results[name] = ok
        if ok:
            s["failures"] = 0
            continue
        s["failures"] += 1
        needed = config["failures"] * 2 ** len(s["restarts"])
        if len(s["restarts"]) >= config["max_restarts"]:
            s["backing_off"] = 1
            print(f"{name}: not answering ({s['failures']} checks); {len(s['restarts'])} restarts "
                  f"in the last {config['window_seconds']}s, leaving it alone", flush=True)
        elif s["failures"] >= needed:
            print(f"{name}: not answering {s['failures']} checks in a row, restarting: "
                  f"{' '.join(check['restart'])}", flush=True)
            done = subprocess.run(check["restart"], check=False, timeout=120)
            if done.returncode != 0:
                print(f"{name}: restart failed with {done.returncode}", flush=True)
            s["restarts"].append(now)
            s["restarts_total"] += 1
            s["last_restart"] = now
            s["failures"] = 0
    os.makedirs(config["state_dir"], exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=config["state_dir"])
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_file)

    lines = [
        "# HELP ccproxy_watchdog_last_run_timestamp_seconds When the watchdog last ran.",
        "# TYPE ccproxy_watchdog_last_run_timestamp_seconds gauge",
        f"ccproxy_watchdog_last_run_timestamp_seconds {now:.0f}",
        "# HELP ccproxy_watchdog_maintenance 1 while a playbook holds the maintenance marker.",
        "# TYPE ccproxy_watchdog_maintenance gauge",
        f"ccproxy_watchdog_maintenance {int(maintenance)}",
    ]
    metrics = [
        ("up", "gauge", "Whether the service answered the last check (absent in maintenance).",
         lambda n, s: None if results[n] is None else int(results[n])),
        ("consecutive_failures", "gauge", "Checks in a row the service did not answer.",
         lambda n, s: s["failures"]),
        ("restarts_total", "counter", "Restarts the watchdog made.", lambda n, s: s["restarts_total"]),
        ("last_restart_timestamp_seconds", "gauge", "When the watchdog last restarted the service.",
         lambda n, s: int(s["last_restart"])),
        ("backing_off", "gauge", "1 when the service is down but the restart limit is reached.",
         lambda n, s: s["backing_off"]),
    ]
    for metric, kind, help_text, value in metrics:
        lines += [f"# HELP ccproxy_watchdog_{metric} {help_text}", f"# TYPE ccproxy_watchdog_{metric} {kind}"]
        for check in config["checks"]:
            v = value(check["name"], state[check["name"]])
            if v is not None:
                lines.append(f'ccproxy_watchdog_{metric}{{service="{label(check["name"])}"}} {v}')
    write_textfile(config["textfile_dir"], "ccproxy_watchdog.prom", lines)
    if config["ollama_url"]:
        write_textfile(config["textfile_dir"], "ccproxy_ollama.prom", ollama_metrics(config))


def main(argv):
    check_only = argv[1:2] == ["--check"]
    path = argv[2] if check_only and len(argv) == 3 else (argv[1] if len(argv) == 2 else None)
    if path is None:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    problems = check_config(config if isinstance(config, dict) else {})
    if problems:
        print(f"{path}: " + "; ".join(problems), file=sys.stderr)
        return 1
    if not check_only:
        run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
