# Copyright: ccproxy maintainers
# MIT License (see the role's meta/main.yml)
"""Action plugin for ollama_pull: run the pull in the background, print its progress.

The module is started on the target under ansible.builtin's async_wrapper (what
`async:` with `poll: 0` does), so the one streaming POST /api/pull it holds open
outlives connection and task timeouts. Every `poll_interval` seconds the plugin
asks async_status whether the job has finished and, while it has not, reads the
module's progress file with slurp and prints one line: model, completed / total
size, percent, rate over the last interval and ETA. The module's own result is
returned when the job ends. Documentation: library/ollama_pull.py.
"""

from __future__ import annotations

import base64
import json
import posixpath
import secrets
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MAX_INTERVAL = 30  # seconds; the longest silence allowed between two progress lines
BACKSTOP = 60  # seconds async_wrapper waits beyond the module's own timeout before killing it
FIRST_LOOK = 1  # seconds before the first look at the job, then every poll_interval
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file")

ARGUMENT_SPEC = {
    "model": {"type": "str", "required": True},
    "url": {"type": "str", "default": "http://127.0.0.1:11434"},
    "timeout": {"type": "int", "default": 21600},
    "poll_interval": {"type": "int", "default": 10},
}


def human_bytes(n):
    """Decimal units, like `ollama list`: 4683087519 -> '4.7 GB'."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def human_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_line(snap, prev):
    """'1.2 GB / 4.7 GB (25%), 48.3 MB/s, ETA 1m12s - pulling 60e05f210007'."""
    status = snap.get("status") or "waiting for Ollama"
    total, completed = int(snap.get("total") or 0), int(snap.get("completed") or 0)
    if total <= 0:
        return status
    if prev and snap.get("time", 0) > prev.get("time", 0):
        rate = (completed - int(prev.get("completed") or 0)) / (snap["time"] - prev["time"])
    elif prev:
        rate = 0.0  # nothing new since the last look: stalled
    else:
        elapsed = snap.get("time", 0) - snap.get("started", 0)
        rate = completed / elapsed if elapsed > 0 else 0.0
    rate = max(rate, 0.0)
    percent = min(100, completed * 100 // total)
    line = f"{human_bytes(completed)} / {human_bytes(total)} ({percent}%), {human_bytes(rate)}/s"
    if completed < total:
        line += f", ETA {human_duration((total - completed) / rate)}" if rate > 0 else ", ETA unknown"
    return f"{line} - {status}"


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False  # the plugin runs the module asynchronously itself

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        model, timeout, interval = args["model"], args["timeout"], args["poll_interval"]
        if not 1 <= interval <= MAX_INTERVAL:
            raise AnsibleActionFail(f"poll_interval must be 1 to {MAX_INTERVAL} seconds, got {interval}")
        if timeout < 1:
            raise AnsibleActionFail(f"timeout must be at least 1 second, got {timeout}")
        self._prefix = f"[{task_vars.get('inventory_hostname', '?')}] {model}:"

        if self._task.check_mode:
            result.update(changed=True, model=model, msg=f"would pull {model} (check mode: nothing pulled)")
            return result

        name = f"ollama_pull.{secrets.token_hex(8)}.json"
        async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
        job = self._start(dict(args, progress_file=posixpath.join(async_dir, name)), timeout, task_vars)
        if job.get("failed") or not job.get("ansible_job_id"):
            result.update(job, failed=True)
            result.setdefault("msg", f"could not start the pull of {model}")
            return result
        jid = job["ansible_job_id"]
        # As expanded on the target: async_wrapper says where it writes the
        # result; Mitogen's async runner (ansible.cfg's strategy) does not.
        if job.get("results_file"):
            async_dir = posixpath.dirname(job["results_file"])
        else:
            async_dir = self._remote_expand_user(async_dir)
        progress_file = posixpath.join(async_dir, name)

        done = None
        try:
            done = self._follow(jid, async_dir, progress_file, interval, timeout, task_vars)
        finally:
            self._cleanup(jid, async_dir, progress_file, finished=bool(done and done.get("finished")), task_vars=task_vars)

        if not done.get("finished"):
            result.update(failed=True, model=model, ansible_job_id=jid,
                          msg=f"no result from the pull of {model} after {timeout + BACKSTOP} s")
            return result
        final = {k: v for k, v in done.items() if k not in ASYNC_KEYS}
        for key in ("stdout", "stderr"):
            if not final.get(key):
                final.pop(key, None)
                final.pop(f"{key}_lines", None)
        if final.get("msg") == "Timeout exceeded":  # async_wrapper killed the module
            final["msg"] = f"pulling {model} took longer than {timeout} s (killed)"
        final.setdefault("model", model)
        if final.get("failed"):
            final["changed"] = False
        else:
            final["changed"] = True
            display.display(f"{self._prefix} pulled {human_bytes(final.get('total') or 0)} in "
                            f"{human_duration(final.get('duration') or 0)} "
                            f"({human_bytes(final.get('rate') or 0)}/s)")
        result.update(final)
        return result

    def _start(self, module_args, timeout, task_vars):
        """Run the module under async_wrapper, as `async: timeout + BACKSTOP` with `poll: 0`."""
        saved = self._task.async_val
        self._task.async_val = timeout + BACKSTOP  # async_wrapper's kill time limit
        try:
            return self._execute_module(module_name=self._task.action, module_args=module_args,
                                        task_vars=task_vars, wrap_async=True)
        finally:
            self._task.async_val = saved

    def _follow(self, jid, async_dir, progress_file, interval, timeout, task_vars):
        """Poll until the job finishes, printing a progress line every interval."""
        deadline = time.monotonic() + timeout + BACKSTOP + 2 * interval
        next_at = time.monotonic() + min(FIRST_LOOK, interval)  # a quick pull ends quickly
        prev = None
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic())
            try:
                status = self._execute_module(
                    module_name="ansible.legacy.async_status", task_vars=task_vars,
                    module_args={"jid": jid, "_async_dir": async_dir})
                if status.get("finished") or (status.get("failed") and status.get("_ansible_parsed")):
                    status["finished"] = True
                    return status
                snap = self._read_progress(progress_file, task_vars)
            except Exception as e:  # a network bounce must not end a pull of hours
                display.vvvv(f"ollama_pull: poll failed, retrying: {to_text(e)}")
                try:
                    self._connection.reset()
                except Exception:  # pylint: disable=broad-except
                    pass
                reason = (to_text(e).strip().splitlines() or [type(e).__name__])[0]
                display.display(f"{self._prefix} no progress this time ({reason})")
            else:
                if snap is None:
                    display.display(f"{self._prefix} waiting for progress")
                else:
                    display.display(f"{self._prefix} {progress_line(snap, prev)}")
                    prev = snap
            if time.monotonic() > deadline:
                return {"finished": False}

    def _read_progress(self, path, task_vars):
        res = self._execute_module(module_name="ansible.legacy.slurp", module_args={"src": path},
                                   task_vars=task_vars)
        if res.get("failed") or "content" not in res:
            return None  # not written yet
        try:
            snap = json.loads(base64.b64decode(res["content"]))
        except ValueError:
            return None
        return snap if isinstance(snap, dict) else None

    def _cleanup(self, jid, async_dir, progress_file, finished, task_vars):
        """Remove the progress file (left behind if the module was killed) and the job file."""
        try:
            self._low_level_execute_command(self._connection._shell.remove(progress_file))
            if finished:
                self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                     module_args={"jid": jid, "mode": "cleanup", "_async_dir": async_dir})
        except Exception as e:  # pylint: disable=broad-except
            display.vvvv(f"ollama_pull: cleanup failed: {to_text(e)}")
