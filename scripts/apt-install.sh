#!/usr/bin/env bash
# Install, with apt, the Debian packages of the commands that are missing.
# Usage: scripts/apt-install.sh COMMAND[=PACKAGE] ...   (PACKAGE defaults to COMMAND)
set -euo pipefail
need=()
for spec in "$@"; do
  cmd=${spec%%=*}
  pkg=${spec#*=}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "apt-install: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
