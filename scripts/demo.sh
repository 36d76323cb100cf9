#!/usr/bin/env bash
# `make demo` / `make demo-destroy`: the whole stack in a long-lived local
# container named ccproxy-demo (Debian 12, systemd as PID 1).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=ccproxy-demo
STATE_DIR=.demo
INVENTORY=inventory/demo/hosts.yml

destroy() {
  podman rm -f --time 10 "$NAME" >/dev/null 2>&1 || true
  echo "demo: removed container $NAME (state in $STATE_DIR/ kept)"
}

up() {
  local image
  image=$(scripts/build-test-image.sh)
  # Reuse a running demo; replace one whose image is stale or that stopped.
  if podman container exists "$NAME"; then
    if [ "$(podman inspect -f '{{.ImageName}} {{.State.Running}}' "$NAME")" != "$image true" ]; then
      destroy
    fi
  fi
  if ! podman container exists "$NAME"; then
    podman run -d --name "$NAME" --hostname "$NAME" \
      --runtime runc --systemd=always \
      --ulimit nofile=16384:16384 --ulimit nproc=8192:8192 \
      "$image" >/dev/null
  fi
  for _ in $(seq 1 30); do
    podman exec "$NAME" systemctl is-system-running --quiet 2>/dev/null && break
    sleep 1
  done
  mkdir -p "$STATE_DIR"
  ansible-playbook -i "$INVENTORY" site.yml
  echo "demo: $NAME is running"
}

case "${1:-up}" in
  up) up ;;
  destroy) destroy ;;
  *) echo "usage: $0 [up|destroy]" >&2; exit 2 ;;
esac
