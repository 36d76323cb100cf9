#!/usr/bin/env bash
# A venv with the pinned LiteLLM (the role's hash lock) and pytest, for the
# tests of ccproxy's LiteLLM package (tests/litellm) against the LiteLLM it
# runs in. Rebuilt when the lock changes; takes the mirror's wheels
# (.cache/mirror/wheels) when they are there, else PyPI.
# Usage: scripts/litellm-venv.sh [VERSION]   prints the venv's python
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-$(sed -n 's/^litellm_version: "\(.*\)"$/\1/p' roles/litellm/defaults/main.yml)}
lock=roles/litellm/files/requirements-$version.txt
venv=.cache/litellm-venv
stamp=$venv/.stamp
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  links=()
  [ -d .cache/mirror/wheels ] && links=(--find-links .cache/mirror/wheels)
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps "${links[@]}" -r "$lock" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "$(grep '^pytest==' requirements-dev.txt)" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
