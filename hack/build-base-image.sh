#!/usr/bin/env bash
# A Python base image for the four Dockerfiles (their PYTHON_IMAGE build arg) when no registry is reachable:
# `debootstrap --variant=minbase` Debian bookworm + python3, python3-venv, python-is-python3 (the Dockerfiles
# call `python`), imported with `docker import`. Cached twice: the rootfs tarball under
# ~/.cache/ml-pipeline/images (survives a wiped Docker data root) and the image itself, labelled with the hash of
# this script; both are reused while this script is unchanged. Prints the image reference.
source "$(dirname "$0")/lib.sh"
DOCKER="${DOCKER:-/usr/bin/docker}"
SUITE="${BASE_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE="${BASE_IMAGE:-ml-pipeline-ci/python:3.11-$SUITE}"
CACHE="${MLP_IMAGE_CACHE:-$HOME/.cache/ml-pipeline/images}"
mkdir -p "$CACHE"

key=$( (cat "$0"; echo "$SUITE $MIRROR") | sha256sum | cut -c1-16)
tarball="$CACHE/base-$SUITE-$key.tar"
if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "mlp.inputs"}}' "$IMAGE" 2>/dev/null)" = "$key" ]; then
  log "base image $IMAGE cached ($key)"; echo "$IMAGE"; exit 0
fi

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || die "debootstrap missing (hack/docker-up.sh installs it)"
  root=$(mktemp -d); trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase $SUITE (about a minute)"
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed"; }
  rm -f "$root.log"
  mount -t proc proc "$root/proc"
  chroot "$root" /bin/sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-venv python-is-python3 ca-certificates >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log'
  umount "$root/proc"
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
"$DOCKER" import \
  --change "LABEL mlp.inputs=$key" \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$IMAGE" >/dev/null
"$DOCKER" run --rm --network none "$IMAGE" python -c 'import venv, sys; print(sys.version.split()[0])' >&2
log "base image $IMAGE built ($key)"
echo "$IMAGE"
