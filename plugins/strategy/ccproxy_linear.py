# -*- coding: utf-8 -*-
"""Ansible's linear strategy, run through Mitogen when Mitogen is installed,
with the Jinja plugins imported before the workers fork.

Mitogen (https://mitogen.networkgenomics.com/ansible_detailed.html) keeps one
Python interpreter per host alive for the whole play instead of starting one
per task, which halves a no-op converge of site.yml over SSH (scripts/
bench-converge.py). requirements-dev.txt pins it; an Ansible without it falls
back to the plain linear strategy, with a warning, and works the same, only
slower. Plays with `connection: local` and async tasks run without Mitogen
(below). Select Ansible's own for everything with ANSIBLE_STRATEGY=linear.

Ansible runs every task in a freshly forked worker, which imports each
filter, test and lookup plugin the task's templates use, again, task after
task: measured on the demo, 100 skipped tasks whose connection settings use a
lookup and a filter took 11.8 s, and 6.0 s with the plugins imported once in
the controller before each play (workers inherit them through fork). That is
all this adds; a failure to import is left to the task that needs the plugin.
"""
from __future__ import annotations

from ansible.playbook.block import Block
from ansible.playbook.task import Task
from ansible.plugins.loader import filter_loader, lookup_loader, test_loader
from ansible.plugins.strategy.linear import StrategyModule as _Plain
from ansible.utils.display import Display

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule as _Linear
except ImportError as exc:  # pragma: no cover - depends on the installed tools
    _Linear = _Plain

    Display().warning(
        f"ccproxy_linear: Mitogen is not importable ({exc}); using Ansible's linear strategy. "
        "Install the pinned tools (make venv) for faster runs."
    )


class StrategyModule(_Linear):
    def run(self, iterator, play_context):
        # Before the play's workers fork; the roles' own plugin directories
        # are known by now. Plugins already imported are not imported again.
        for loader in (filter_loader, test_loader, lookup_loader):
            try:
                for _ in loader.all(class_only=True):
                    pass
            except Exception as exc:  # pragma: no cover - a worker imports it again
                Display().vvv(f"ccproxy_linear: preloading {loader.type} plugins: {exc}")
        # Async jobs of a play on the control node alone (`connection:
        # local`, such as Molecule's podman create and destroy) never finish
        # under Mitogen: such a play gets Ansible's own linear.
        if _Linear is not _Plain and iterator._play.connection == "local" and _has_async(iterator._blocks):
            return _Plain.run(self, iterator, play_context)
        return super().run(iterator, play_context)


def _has_async(blocks):
    """Whether any task in these blocks (nested ones included) runs async."""
    for block in blocks:
        for item in (block.block or []) + (block.rescue or []) + (block.always or []):
            if isinstance(item, Block) and _has_async([item]):
                return True
            if isinstance(item, Task) and item.async_val:
                return True
    return False


__all__ = ["StrategyModule"]
