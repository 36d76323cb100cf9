"""Package the ccproxy Ollama API test double like an Ollama Linux release.

TEST ONLY: the archive holds the test double (tests/ollama_double/ollama), not
Ollama. Real releases publish, per version, a set of assets plus one
`sha256sum.txt`; this module reproduces the part the ollama role consumes, so
the role can install from a local mirror exactly as it would from GitHub.

Layout of `out_dir` (serve it as the download base URL, e.g.
`http://127.0.0.1:8765/ollama/v0.12.6` -> `out_dir = <root>/ollama/v0.12.6`):

    out_dir/
      ollama-linux-<arch>.tgz   gzip'd tar, entries (no leading "./", like the
                                release workflow's `tar c -T list --owner 0 --group 0`):
                                  bin/ollama                          0755, the double,
                                                                      VERSION set to `version`
                                  lib/ollama/                         0755 directory
                                  lib/ollama/README-TEST-DOUBLE.txt   0644
      sha256sum.txt             one line per asset, the output of
                                `find . -type f | xargs sha256sum` in the release dir:
                                  <64 hex>  ./ollama-linux-amd64.tgz
                                Building another arch into the same out_dir adds or
                                replaces only that arch's line.

The archive is reproducible: sorted entries, fixed mtime (SOURCE_DATE_EPOCH or
2024-01-01T00:00:00Z), uid/gid 0 (root/root), GNU tar format, gzip header
without name and with mtime 0. Two builds of the same inputs are byte-identical.

CLI: python3 tests/ollama_double/package.py OUT_DIR VERSION [--arch amd64 ...]
"""

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "ollama"
ARCHES = ("amd64", "arm64")
CHECKSUMS = "sha256sum.txt"
DEFAULT_EPOCH = 1704067200  # 2024-01-01T00:00:00Z
_VERSION_LINE = re.compile(r'^VERSION = "[^"\n]*"$', re.M)
_BROKEN_LINE = re.compile(r"^BROKEN = False$", re.M)

README = """ccproxy Ollama API TEST DOUBLE {version} (linux-{arch}) - NOT OLLAMA, FOR TESTS ONLY

bin/ollama is a Python 3 standard-library script that imitates the Ollama HTTP
API (no model, no inference). It was packaged in the layout of an Ollama Linux
release so the ccproxy ollama role can be tested without downloading Ollama.
Its version is stamped to {version} so the role's version check passes; the
script itself is architecture-independent, only this file names the arch.
If you find this on a production host, something installed the wrong archive.
"""


def archive_name(arch: str) -> str:
    return f"ollama-linux-{arch}.tgz"


def stamp_version(source: str, version: str, broken: bool = False) -> str:
    """Return the double's source with VERSION set to `version` (and BROKEN, if asked)."""
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+~-]*", version):
        raise ValueError(f"unsupported version string {version!r}")
    new, count = _VERSION_LINE.subn(f'VERSION = "{version}"', source)
    if count != 1:
        raise ValueError(f"expected exactly one VERSION line in {SCRIPT}, found {count}")
    if broken:
        new, count = _BROKEN_LINE.subn("BROKEN = True", new)
        if count != 1:
            raise ValueError(f"expected exactly one BROKEN line in {SCRIPT}, found {count}")
    return new


def _tarinfo(name: str, mode: int, mtime: int, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_tgz(version: str, arch: str = "amd64", source: Path = SCRIPT, broken: bool = False) -> bytes:
    """The release archive as bytes (deterministic)."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_EPOCH)
    script = stamp_version(Path(source).read_text(), version, broken).encode()
    readme = README.format(version=version, arch=arch).encode()
    entries = sorted([
        ("bin/ollama", 0o755, script),
        ("lib/ollama", 0o755, None),
        ("lib/ollama/README-TEST-DOUBLE.txt", 0o644, readme),
    ])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode, data in entries:
            if data is None:
                tar.addfile(_tarinfo(name, mode, mtime, directory=True))
            else:
                tar.addfile(_tarinfo(name, mode, mtime, size=len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_checksums(out_dir: Path, filename: str, digest: str) -> Path:
    """Add or replace `./filename` in out_dir/sha256sum.txt (sorted by file name)."""
    path = out_dir / CHECKSUMS
    entries = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2:
                entries[parts[1].strip()] = parts[0]
    entries[f"./{filename}"] = digest
    text = "".join(f"{h}  {f}\n" for f, h in sorted(entries.items()))
    _atomic_write(path, text.encode())
    return path


def build_release(out_dir: Path, version: str, arch: str = "amd64", broken: bool = False) -> Path:
    """Write out_dir/ollama-linux-<arch>.tgz and its line in out_dir/sha256sum.txt.

    `version` is the release version without the leading "v" (one is stripped if
    given); the packaged double reports it from `ollama --version` and
    /api/version. `broken`: a release whose every generation fails (HTTP 500),
    for the upgrade tests. Returns the archive path.
    """
    if arch not in ARCHES:
        raise ValueError(f"arch must be one of {ARCHES}, got {arch!r}")
    version = version[1:] if version.startswith("v") else version
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = build_tgz(version, arch, broken=broken)
    archive = out_dir / archive_name(arch)
    _atomic_write(archive, data)
    update_checksums(out_dir, archive.name, hashlib.sha256(data).hexdigest())
    return archive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out_dir", type=Path, help="directory served as the download base URL")
    parser.add_argument("version", help="release version, e.g. 0.12.6")
    parser.add_argument("--arch", action="append", choices=ARCHES,
                        help="architecture (repeatable; default amd64)")
    parser.add_argument("--broken", action="store_true",
                        help="a release whose every generation fails (upgrade rollback tests)")
    args = parser.parse_args(argv)
    for arch in args.arch or ["amd64"]:
        path = build_release(args.out_dir, args.version, arch, broken=args.broken)
        print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
