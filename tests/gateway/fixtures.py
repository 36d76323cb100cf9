"""The pytest fixtures every Molecule scenario's tests share; each scenario's
conftest.py imports them."""
import httpx
import pytest

from gateway.client import from_env


@pytest.fixture(scope="session")
def gateway():
    return from_env()


@pytest.fixture(scope="session")
def http(gateway):
    with httpx.Client(base_url=gateway.origin, verify=gateway.ssl_context(), timeout=60) as client:
        yield client
