"""Connection settings for a provisioned gateway, shared by the end-to-end
tests and the benchmark. Read from the control-node state directory that the
playbooks write (CCPROXY_STATE_DIR: CA certificate, tokens/<client>.token) and
the published port (CCPROXY_PUBLISHED_PORT)."""
import os
import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Gateway:
    origin: str          # https://127.0.0.1:PORT
    ca_cert: Path
    state_dir: Path

    @property
    def base_url(self):  # what OpenAI SDKs take
        return f"{self.origin}/v1"

    def ssl_context(self):
        """TLS verified against the gateway's CA, as a client would."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def token(self, client="demo"):
        return (self.state_dir / "tokens" / f"{client}.token").read_text().strip()


def from_env():
    state = Path(os.environ["CCPROXY_STATE_DIR"])
    port = os.environ.get("CCPROXY_PUBLISHED_PORT", "8443")
    return Gateway(origin=f"https://127.0.0.1:{port}", ca_cert=state / "ca.crt", state_dir=state)
