import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from gateway.fixtures import gateway, http  # noqa: E402,F401
