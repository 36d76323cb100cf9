"""The address tests every preflight uses (plugins/test/ccproxy_net.py)."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ccproxy_net", Path(__file__).resolve().parents[2] / "plugins" / "test" / "ccproxy_net.py")
net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(net)


@pytest.mark.parametrize("value", ["10.0.0.5", "127.0.0.1", "::1", "fd00::12", "2001:db8::1"])
def test_addresses(value):
    assert net.is_ip(value)
    assert net.is_network(value)


@pytest.mark.parametrize("value", ["10.0.0.0/8", "10.0.0.5/24", "fd00::/64", "0.0.0.0/0"])
def test_networks_are_not_addresses(value):
    assert net.is_network(value)
    assert not net.is_ip(value)


@pytest.mark.parametrize("value", ["", "ollama.lan", "999.1.1.1", "10.0.0", "10.0.0.1/33", "::g", "1.2.3.4 ",
                                   "fe80::1%eth0", "fe80::%eth0/64", None, 12])
def test_anything_else_is_neither(value):
    assert not net.is_ip(value)
    assert not net.is_network(value)


def test_registered_names():
    assert set(net.TestModule().tests()) == {"ccproxy_ip", "ccproxy_network"}
