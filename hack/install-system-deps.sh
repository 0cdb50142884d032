#!/usr/bin/env bash
# System packages, installed from Debian only when missing (a quick no-op when present): make for the
# Makefile, PostgreSQL server binaries for tests/fixtures/services.py. Go builds etcd, kube-apiserver and MinIO
# (hack/build-*.sh); Debian's golang is older than those modules need, so a missing Go is an error here.
source "$(dirname "$0")/lib.sh"

missing=()
command -v make >/dev/null || missing+=(make)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a cluster on port 5432; the tests start their own on free ports and need none.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
fi
need_go
log "system deps ok: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1), $(go version | cut -d' ' -f3)"
