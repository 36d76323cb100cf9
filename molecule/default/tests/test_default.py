"""Checks on the converged Debian host (testinfra over the podman connection)."""


def test_systemd_is_pid1(host):
    assert host.process.get(pid=1).comm == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend").stdout
    assert state == "running", failed
