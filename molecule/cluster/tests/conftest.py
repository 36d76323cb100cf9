import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from gateway.fixtures import gateway, http  # noqa: E402,F401


@pytest.fixture(scope="session")
def gateway2(gateway):
    """The second gateway node, on its own published port."""
    return replace(gateway, origin=f"https://127.0.0.1:{os.environ['CCPROXY_PUBLISHED_PORT_2']}")
