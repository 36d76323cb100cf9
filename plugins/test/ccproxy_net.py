"""Jinja tests for the addresses ccproxy writes into firewall rules, listen
settings and systemd's IPAddressAllow: the one definition the roles' preflight
checks share (Python's ipaddress, so 999.1.1.1 or a host name never pass).

    ollama_host is ccproxy_ip                  an IPv4 or IPv6 address
    litellm_egress_allow | reject('ccproxy_network')   what is not an address or CIDR
"""
import ipaddress


def is_ip(value):
    """An IPv4 or IPv6 address, without a prefix length or an IPv6 zone
    (fe80::1%eth0: nft and systemd's IPAddressAllow refuse zones)."""
    if "%" in str(value):
        return False
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def is_network(value):
    """An IP address or a CIDR (host bits may be set: 10.0.0.5/24 names
    10.0.0.0/24), without an IPv6 zone."""
    if "%" in str(value):
        return False
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"ccproxy_ip": is_ip, "ccproxy_network": is_network}
