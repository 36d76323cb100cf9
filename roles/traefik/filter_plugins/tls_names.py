"""Filters for the gateway CA's name constraints (run on the control node).

traefik_name_constraints: subjectAltName entries (DNS:name, IP:address) as
  permitted subtrees for a new CA's nameConstraints (IP:address/mask).
traefik_names_outside: the subjectAltName entries that a CA certificate (PEM)
  may not sign for under its nameConstraints (a DNS subtree covers the name and
  its subdomains); none for a CA without constraints.
"""
import ipaddress

from ansible.errors import AnsibleFilterError

try:
    from cryptography import x509
except ImportError:  # reported when the filter is used
    x509 = None


def _split(entry):
    kind, sep, value = str(entry).partition(":")
    if not sep or kind not in ("DNS", "IP") or not value:
        raise AnsibleFilterError(f"{entry!r} is not DNS:<name> or IP:<address>")
    return kind, value


def name_constraints(sans):
    out = []
    for entry in sans:
        kind, value = _split(entry)
        if kind == "IP":
            net = ipaddress.ip_network(value, strict=False)
            out.append(f"IP:{net.network_address}/{net.netmask}")
        else:
            out.append(f"DNS:{value.lower()}")
    return out


def _covered(kind, value, subtree):
    if kind == "IP":
        return isinstance(subtree, x509.IPAddress) and ipaddress.ip_address(value) in subtree.value
    if not isinstance(subtree, x509.DNSName):
        return False
    name, base = value.lower().rstrip("."), subtree.value.lower().lstrip(".")
    return name == base or name.endswith("." + base)


def names_outside(sans, ca_pem):
    if x509 is None:
        raise AnsibleFilterError("traefik_names_outside needs the cryptography package on the control node")
    ca = x509.load_pem_x509_certificate(str(ca_pem).encode())
    try:
        permitted = ca.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees
    except x509.ExtensionNotFound:
        return []
    if permitted is None:
        return []
    outside = []
    for entry in sans:
        kind, value = _split(entry)
        if not any(_covered(kind, value, subtree) for subtree in permitted):
            outside.append(str(entry))
    return outside


class FilterModule:
    def filters(self):
        return {"traefik_name_constraints": name_constraints, "traefik_names_outside": names_outside}
