#!/usr/bin/env bash
# Build the Debian 12 image with systemd as PID 1 that Molecule and `make demo`
# converge onto. Like a real server it runs sshd and has an unprivileged user,
# `admin`, with sudo: Molecule connects as that user over SSH (key-only; the
# public key is mounted per container into /etc/ssh/authorized_keys.d/). There is no container registry here, so the root filesystem
# comes from the Debian mirror through debootstrap and is imported into podman.
#
# The image tag is a hash of this script and of the host's CA certificates:
# unchanged inputs reuse the existing image, a new CA (HTTPS egress is
# intercepted on some networks) or a changed recipe builds a new one.
#
# Usage: scripts/build-test-image.sh        prints the image reference on stdout
set -euo pipefail

IMAGE_NAME=${CCPROXY_TEST_IMAGE_NAME:-localhost/ccproxy-debian12-systemd}
SUITE=bookworm
MIRROR=${CCPROXY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,ca-certificates,curl,procps,openssh-server

log() { echo "build-test-image: $*" >&2; }

# Debian's archive keyring: debootstrap on Ubuntu (a CI runner) lacks it.
"$(dirname "$0")/apt-install.sh" podman runc debootstrap \
  /usr/share/keyrings/debian-archive-keyring.gpg=debian-archive-keyring

ca_files=$(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort)
inputs_hash=$( { cat "$0"; echo "$MIRROR $PACKAGES"; for f in $ca_files; do cat "$f"; done; } | sha256sum | cut -c1-12)
image="$IMAGE_NAME:$inputs_hash"

if podman image exists "$image"; then
  log "reusing $image"
  echo "$image"
  exit 0
fi

rootfs=$(mktemp -d /var/tmp/ccproxy-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap $SUITE into $rootfs (about a minute)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >&2

cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES

# Trust the same CAs as the host, so HTTPS through an intercepting proxy works.
for f in $ca_files; do cp "$f" "$rootfs/usr/local/share/ca-certificates/"; done
chroot "$rootfs" update-ca-certificates >/dev/null 2>&1

# The unprivileged operator account: sudo without a password, SSH keys only.
chroot "$rootfs" useradd --create-home --shell /bin/bash --groups sudo admin
echo 'admin ALL=(ALL:ALL) NOPASSWD: ALL' > "$rootfs/etc/sudoers.d/ccproxy-test-admin"
chmod 0440 "$rootfs/etc/sudoers.d/ccproxy-test-admin"
cat > "$rootfs/etc/ssh/sshd_config.d/ccproxy-test.conf" <<'SSHD'
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u
SSHD
# Host keys are made on each container's first boot, not shared by the image.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d" "$rootfs/etc/ssh/authorized_keys.d"
cat > "$rootfs/etc/systemd/system/ssh.service.d/host-keys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

# A fresh machine-id per container; no apt timers racing Ansible for the dpkg lock.
: > "$rootfs/etc/machine-id"
rm -f "$rootfs"/etc/systemd/system/timers.target.wants/apt-daily*.timer
rm -rf "$rootfs"/var/lib/apt/lists/*
# Ansible's apt module reads this directory's mtime as "last cache update".
touch -d @0 "$rootfs/var/lib/apt/lists"

log "importing $image"
tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' - "$image" >&2
# Drop images built from older inputs that no container uses (no -f: that
# would remove a running demo with its image).
podman images --format '{{.Repository}}:{{.Tag}}' \
  | grep "^$IMAGE_NAME:" | grep -v ":$inputs_hash\$" \
  | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
