#!/usr/bin/env bash
# The pinned Claude Code CLI (tests/claude-code/package{,-lock}.json) for the
# client tests, installed into .cache/claude-code/ (gitignored; never vendored).
# Prints the absolute path of the `claude` executable on stdout; npm output goes
# to stderr. Idempotent: does nothing when the installed copy matches the lock.
#
# How 2.1.197 ships its binary: @anthropic-ai/claude-code is a wrapper whose
# bin/claude.exe is a stub shell script; the native binary comes from the
# per-platform optionalDependencies (@anthropic-ai/claude-code-linux-x64, ...),
# all pinned with integrity hashes in the lock. Its postinstall (install.cjs)
# only hard-links/copies that binary over the stub -- no download. We install
# with --ignore-scripts and then run install.cjs explicitly, so only the npm
# registry is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
src=tests/claude-code
dest=.cache/claude-code
pkg=$dest/node_modules/@anthropic-ai/claude-code
exe=$PWD/$dest/node_modules/.bin/claude

want=$(node -p "require('./$src/package-lock.json').packages['node_modules/@anthropic-ai/claude-code'].version")

installed() {
  cmp -s "$src/package.json" "$dest/package.json" &&
    cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
    test -f "$pkg/package.json" &&
    test "$(node -p "require('./$pkg/package.json').version")" = "$want" &&
    test -x "$exe" &&
    # the stub is ~500 bytes; the native binary is ~100+ MB
    test "$(wc -c <"$pkg/bin/claude.exe")" -gt 1000000
}

if ! installed; then
  rm -rf "$dest"
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --ignore-scripts --include=optional --no-audit --no-fund --loglevel=error) >&2
  node "$pkg/install.cjs" >&2
  installed || {
    echo "claude-code.sh: install of @anthropic-ai/claude-code@$want in $dest failed" >&2
    exit 1
  }
fi
echo "$exe"
