#!/usr/bin/env bash
# Create the SSH key Molecule connects with (ed25519, no passphrase: test only)
# unless it exists, and the authorized_keys directory mounted into the test
# container as /etc/ssh/authorized_keys.d (one file per user, here `admin`).
# Usage: scripts/new-ssh-key.sh STATE_DIR
set -euo pipefail
dir=${1:?usage: $0 STATE_DIR}/ssh
mkdir -p "$dir/authorized_keys.d"
chmod 0700 "$dir"
chmod 0755 "$dir/authorized_keys.d"
[ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C ccproxy-molecule -f "$dir/id_ed25519"
install -m 0644 "$dir/id_ed25519.pub" "$dir/authorized_keys.d/admin"
