"""Connection settings for a provisioned gateway, shared by the end-to-end
tests and the benchmark. Read from the control-node state directory that the
playbooks write (CCPROXY_STATE_DIR: CA certificate, tokens/<client>.token) and
the published port (CCPROXY_PUBLISHED_PORT).

A gateway with an operator-supplied certificate for a DNS name is reached on
127.0.0.1 all the same: CCPROXY_SERVER_NAME is the name TLS sends (SNI) and
verifies, like `curl --resolve`, and CCPROXY_CA_CERT the CA that issued it."""
import os
import ssl
from dataclasses import dataclass
from pathlib import Path


class _ServerNameContext(ssl.SSLContext):
    """Sends and verifies a fixed server name, whatever address is dialled."""

    server_name = None

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.server_name, **kwargs)

    def wrap_bio(self, incoming, outgoing, *args, server_hostname=None, **kwargs):
        return super().wrap_bio(incoming, outgoing, *args, server_hostname=self.server_name, **kwargs)


@dataclass(frozen=True)
class Gateway:
    origin: str          # https://127.0.0.1:PORT
    ca_cert: Path
    state_dir: Path
    server_name: str = ""  # the certificate's name when it is not 127.0.0.1

    @property
    def base_url(self):  # what OpenAI SDKs take
        return f"{self.origin}/v1"

    def ssl_context(self):
        """TLS verified against the gateway's CA, as a client would."""
        if not self.server_name:
            return ssl.create_default_context(cafile=str(self.ca_cert))
        context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
        context.server_name = self.server_name
        context.load_verify_locations(cafile=str(self.ca_cert))
        return context

    def token(self, client="demo"):
        return (self.state_dir / "tokens" / f"{client}.token").read_text().strip()


def from_env():
    state = Path(os.environ["CCPROXY_STATE_DIR"])
    port = os.environ.get("CCPROXY_PUBLISHED_PORT", "8443")
    return Gateway(
        origin=f"https://127.0.0.1:{port}",
        ca_cert=Path(os.environ.get("CCPROXY_CA_CERT") or state / "ca.crt"),
        state_dir=state,
        server_name=os.environ.get("CCPROXY_SERVER_NAME", ""),
    )
