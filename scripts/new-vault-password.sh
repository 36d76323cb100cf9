#!/usr/bin/env bash
# Create a random vault password file (mode 0600) unless it exists.
# Usage: scripts/new-vault-password.sh FILE
set -euo pipefail
file=${1:?usage: $0 FILE}
[ -s "$file" ] && exit 0
mkdir -p "$(dirname "$file")"
chmod 0700 "$(dirname "$file")"
( umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$file" )
