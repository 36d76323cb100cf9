"""Test-only callback: append the file:line of every task that starts to the
file named by CCPROXY_TASK_PATHS_FILE, one per line. Used to see which tasks a
--tags run really reaches (--list-tasks does not expand include_tasks)."""
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_paths
type: aggregate
short_description: record the path of every task that starts
description: Writes task paths to $CCPROXY_TASK_PATHS_FILE (tests only).
requirements: [enable in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_paths"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, task):
        path = os.environ.get("CCPROXY_TASK_PATHS_FILE")
        if path and task.get_path():
            with open(path, "a", encoding="utf-8") as out:
                out.write(task.get_path() + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._record(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._record(task)
