#!/usr/bin/env bash
# Install, with apt, the Debian packages of the commands (or files) that are
# missing. As root, or through sudo (a CI runner's user).
# Usage: scripts/apt-install.sh COMMAND[=PACKAGE] /PATH=PACKAGE ...
#   COMMAND: looked up on PATH (PACKAGE defaults to COMMAND); /PATH: must exist.
set -euo pipefail
need=()
for spec in "$@"; do
  what=${spec%%=*}
  pkg=${spec#*=}
  case $what in
    /*) [ -e "$what" ] || need+=("$pkg") ;;
    *) command -v "$what" >/dev/null 2>&1 || need+=("$pkg") ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "apt-install: installing ${need[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
