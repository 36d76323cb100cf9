#!/usr/bin/env bash
# `make demo` / `make demo-destroy`: the whole stack in a long-lived local
# container named ccproxy-demo (Debian 12, systemd as PID 1), its public port
# published on 127.0.0.1 of this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

NAME=ccproxy-demo
STATE_DIR=$ROOT/.demo
INVENTORY=$ROOT/inventory/local/hosts.yml
PORT=${CCPROXY_DEMO_PORT:-8443}
SSH_PORT=${CCPROXY_DEMO_SSH_PORT:-2222}
MIRROR=$ROOT/.cache/mirror

destroy() {
  podman rm -f --time 10 "$NAME" >/dev/null 2>&1 || true
  echo "demo: removed container $NAME (control-node state in .demo/ kept)"
}

up() {
  local image
  image=$(scripts/build-test-image.sh)
  # Ansible connects like to a real server: over SSH as the image's
  # unprivileged sudo user `admin`, with this key.
  scripts/new-vault-password.sh "$STATE_DIR/vault-password"
  scripts/new-ssh-key.sh "$STATE_DIR"
  # Reuse a running demo; replace one that is stopped, built from an older
  # image, made without NET_ADMIN (LiteLLM's egress rules need it) or
  # published on other ports. After a reboot podman may still call a container
  # running whose processes are gone: one that cannot run a command is replaced.
  if podman container exists "$NAME" \
     && ! podman exec "$NAME" true >/dev/null 2>&1; then
    destroy
  fi
  if podman container exists "$NAME" \
     && [ "$(podman inspect -f '{{.ImageName}} {{.State.Running}} {{.HostConfig.CapAdd}}' "$NAME") $(podman port "$NAME" | sort | tr '\n' ' ')" \
          != "$image true [CAP_NET_ADMIN] 22/tcp -> 127.0.0.1:$SSH_PORT 8080/tcp -> 127.0.0.1:$PORT " ]; then
    destroy
  fi
  if ! podman container exists "$NAME"; then
    # A new container makes new SSH host keys.
    rm -f "$STATE_DIR/ssh/known_hosts"
    podman run -d --name "$NAME" --hostname "$NAME" \
      --runtime runc --systemd=always --cap-add NET_ADMIN \
      --ulimit nofile=16384:16384 --ulimit nproc=8192:8192 \
      -v "$MIRROR:/srv/ccproxy-mirror:ro" \
      -v "$STATE_DIR/ssh/authorized_keys.d:/etc/ssh/authorized_keys.d:ro" \
      -p "127.0.0.1:$PORT:8080" -p "127.0.0.1:$SSH_PORT:22" \
      "$image" >/dev/null
  fi
  for _ in $(seq 1 30); do
    podman exec "$NAME" systemctl is-system-running --quiet 2>/dev/null && break
    sleep 1
  done
  # Trust a new container's host key on first use. The inventory asks ssh for
  # StrictHostKeyChecking=accept-new, but Mitogen (ansible.cfg's strategy)
  # puts its own StrictHostKeyChecking=yes first, which ssh obeys.
  if [ ! -s "$STATE_DIR/ssh/known_hosts" ]; then
    for _ in $(seq 1 30); do
      ssh-keyscan -p "$SSH_PORT" -t ed25519 127.0.0.1 2>/dev/null >"$STATE_DIR/ssh/known_hosts.new" || true
      [ -s "$STATE_DIR/ssh/known_hosts.new" ] && break
      sleep 1
    done
    [ -s "$STATE_DIR/ssh/known_hosts.new" ] || { echo "demo: sshd in $NAME does not answer on port $SSH_PORT" >&2; exit 1; }
    mv "$STATE_DIR/ssh/known_hosts.new" "$STATE_DIR/ssh/known_hosts"
  fi

  export CCPROXY_STATE_DIR=$STATE_DIR CCPROXY_PUBLISHED_PORT=$PORT CCPROXY_SSH_PORT=$SSH_PORT
  ansible-playbook -i "$INVENTORY" tests/playbooks/prepare-local-target.yml
  ansible-playbook -i "$INVENTORY" --vault-password-file "$STATE_DIR/vault-password" site.yml

  cat > "$STATE_DIR/ccproxy.env" <<ENV
# Written by make demo. Source it: set -a; . .demo/ccproxy.env; set +a
CCPROXY_BASE_URL=https://127.0.0.1:$PORT/v1
CCPROXY_CA_CERT=$STATE_DIR/ca.crt
CCPROXY_TOKEN_FILE=$STATE_DIR/tokens/demo.token
CCPROXY_INVENTORY=$INVENTORY
CCPROXY_VAULT_PASSWORD_FILE=$STATE_DIR/vault-password
CCPROXY_SSH_PORT=$SSH_PORT
ENV
  cat <<MSG

demo: ccproxy is running in container $NAME.
demo: endpoint https://127.0.0.1:$PORT/v1 - settings in .demo/ccproxy.env
demo: NOTE the model backend is the Ollama API TEST DOUBLE (tests/ollama_double),
demo:      not Ollama: answers are canned echoes, not model output.
demo: monitoring listens on the container's loopback only; open a tunnel through its sshd:
demo:   ssh -i $STATE_DIR/ssh/id_ed25519 -o UserKnownHostsFile=$STATE_DIR/ssh/known_hosts -p $SSH_PORT \\
demo:       -N -L 9090:127.0.0.1:9090 -L 9093:127.0.0.1:9093 admin@127.0.0.1
demo: then browse Prometheus at http://127.0.0.1:9090 and Alertmanager at http://127.0.0.1:9093
MSG
}

case "${1:-up}" in
  up) up ;;
  destroy) destroy ;;
  *) echo "usage: $0 [up|destroy]" >&2; exit 2 ;;
esac
