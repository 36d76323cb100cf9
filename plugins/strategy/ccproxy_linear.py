# -*- coding: utf-8 -*-
"""Ansible's linear strategy, run through Mitogen when Mitogen is installed.

Mitogen (https://mitogen.networkgenomics.com/ansible_detailed.html) keeps one
Python interpreter per host alive for the whole play instead of starting one
per task, which halves a no-op converge of site.yml over SSH (scripts/
bench-converge.py). requirements-dev.txt pins it; an Ansible without it falls
back to the plain linear strategy, with a warning, and works the same, only
slower. Select Ansible's own with ANSIBLE_STRATEGY=linear.
"""
from __future__ import annotations

from ansible.utils.display import Display

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as exc:  # pragma: no cover - depends on the installed tools
    from ansible.plugins.strategy.linear import StrategyModule

    Display().warning(
        f"ccproxy_linear: Mitogen is not importable ({exc}); using Ansible's linear strategy. "
        "Install the pinned tools (make venv) for faster runs."
    )

__all__ = ["StrategyModule"]
