import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from gateway.client import from_env  # noqa: E402


@pytest.fixture(scope="session")
def gateway():
    return from_env()
