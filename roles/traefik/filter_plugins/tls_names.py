"""Filters for the gateway CA's name constraints (run on the control node).

traefik_name_constraints: the DNS entries of subjectAltName entries (DNS:name,
  IP:address) as permitted subtrees for a new CA's nameConstraints. IP
  addresses get no subtree: BoringSSL, the TLS stack of Claude Code's native
  binary, cannot check an IP subtree and refuses the whole chain
  (UNSUPPORTED_CONSTRAINT_TYPE) when the server certificate has an IP name,
  critical or not (docs/decisions/ca.md). IP names are then unconstrained.
traefik_ca_permitted_names: a CA certificate's (PEM) permitted subtrees, as
  DNS:name and IP:address/mask.
traefik_names_outside: the subjectAltName entries that a CA certificate (PEM)
  may not sign for under its nameConstraints (a DNS subtree covers the name and
  its subdomains; a name of a type the constraints have no subtree for is
  unconstrained, RFC 5280 4.2.1.10); none for a CA without constraints.
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
        if kind == "DNS":
            out.append(f"DNS:{value.lower()}")
    return out


def _covered(kind, value, subtree):
    if kind == "IP":
        return isinstance(subtree, x509.IPAddress) and ipaddress.ip_address(value) in subtree.value
    if not isinstance(subtree, x509.DNSName):
        return False
    name, base = value.lower().rstrip("."), subtree.value.lower().lstrip(".")
    return name == base or name.endswith("." + base)


def _permitted_subtrees(ca_pem, filter_name):
    """A CA certificate's (PEM) permitted subtrees; [] without name constraints."""
    if x509 is None:
        raise AnsibleFilterError(f"{filter_name} needs the cryptography package on the control node")
    ca = x509.load_pem_x509_certificate(str(ca_pem).encode())
    try:
        return ca.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees or []
    except x509.ExtensionNotFound:
        return []


def names_outside(sans, ca_pem):
    permitted = _permitted_subtrees(ca_pem, "traefik_names_outside")
    if not permitted:
        return []
    outside = []
    for entry in sans:
        kind, value = _split(entry)
        same_type = [s for s in permitted if isinstance(s, x509.IPAddress if kind == "IP" else x509.DNSName)]
        if same_type and not any(_covered(kind, value, subtree) for subtree in same_type):
            outside.append(str(entry))
    return outside


def ca_permitted_names(ca_pem):
    """The permitted subtrees of a CA certificate (PEM) as DNS:name and
    IP:address/mask strings; [] for a CA without name constraints."""
    out = []
    for subtree in _permitted_subtrees(ca_pem, "traefik_ca_permitted_names"):
        if isinstance(subtree, x509.IPAddress):
            out.append(f"IP:{subtree.value.network_address}/{subtree.value.netmask}")
        elif isinstance(subtree, x509.DNSName):
            out.append(f"DNS:{subtree.value}")
    return out


class FilterModule:
    def filters(self):
        return {"traefik_name_constraints": name_constraints, "traefik_names_outside": names_outside,
                "traefik_ca_permitted_names": ca_permitted_names}
