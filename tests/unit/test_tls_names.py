"""The gateway CA's name constraints (roles/traefik/filter_plugins/tls_names.py):
DNS subtrees only, since Claude Code's TLS stack refuses an IP subtree;
IP names are then unconstrained, as RFC 5280 reads a type with no subtree."""
import datetime
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "traefik" / "filter_plugins"))
import tls_names  # noqa: E402


def ca_pem(permitted):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True))
    if permitted is not None:
        builder = builder.add_extension(x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
                                        critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_new_constraints_are_the_dns_names_only():
    assert tls_names.name_constraints(["DNS:Gateway.Example", "IP:127.0.0.1", "DNS:localhost"]) == [
        "DNS:gateway.example", "DNS:localhost"]


def test_a_dns_only_ca_constrains_dns_names_and_leaves_ip_names_free():
    import ipaddress
    pem = ca_pem([x509.DNSName("localhost"), x509.DNSName("gw.example")])
    assert tls_names.ca_permitted_names(pem) == ["DNS:localhost", "DNS:gw.example"]
    assert tls_names.names_outside(["DNS:localhost", "DNS:a.gw.example", "IP:10.0.0.1", "DNS:evil.example"],
                                   pem) == ["DNS:evil.example"]
    old = ca_pem([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_network("127.0.0.1/32"))])
    assert tls_names.ca_permitted_names(old) == ["DNS:localhost", "IP:127.0.0.1/255.255.255.255"]
    assert tls_names.names_outside(["IP:127.0.0.1", "IP:10.0.0.1"], old) == ["IP:10.0.0.1"]


def test_a_ca_without_constraints_permits_everything():
    pem = ca_pem(None)
    assert tls_names.ca_permitted_names(pem) == []
    assert tls_names.names_outside(["DNS:anything.example", "IP:10.0.0.1"], pem) == []
