"""The gateway with an operator-supplied certificate (prepare.yml): a DNS name,
issued by another CA. The converge's verify play and every rotation's token
check reached the gateway through that name and the host's trust store; here,
a client verifies the served certificate the same way, and the gateway made
no CA of its own."""
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

NAME = "gateway.ccproxy.test"


def served_certificate(gateway, context):
    port = int(gateway.origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=NAME) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_the_operator_certificate_is_served_and_verifies_by_name(gateway):
    assert gateway.server_name == NAME
    cert = served_certificate(gateway, gateway.ssl_context())
    operator = x509.load_pem_x509_certificate(gateway.ca_cert.read_bytes())
    assert cert.issuer == operator.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [NAME]


def test_a_client_trusting_only_the_gateway_ca_would_refuse_it(gateway):
    # The operator's CA is what makes it verify: the system store alone does not.
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(gateway, ssl.create_default_context())


def test_no_gateway_ca_was_made(gateway):
    assert not (gateway.state_dir / "ca.key").exists()
    assert not (gateway.state_dir / "ca.crt").exists()


def test_the_host_serves_the_file_it_was_given(host, gateway):
    given = (Path(gateway.state_dir) / "operator-tls" / "gateway.crt").read_text()
    installed = host.file("/etc/traefik/tls/server.crt")
    assert installed.content_string == given
    key = host.file("/etc/traefik/tls/server.key")
    assert key.mode == 0o640 and key.user == "root"
