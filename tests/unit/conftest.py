import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def run_playbook():
    """Run a test playbook on localhost with the repo's settings; fail with its output."""
    def run(playbook, var_files=(), **extra_vars):
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", playbook]
        for path in var_files:
            args += ["-e", f"@{path}"]
        for name, value in extra_vars.items():
            args += ["-e", f"{name}={value}"]
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return run
