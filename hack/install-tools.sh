#!/usr/bin/env bash
# Install every pinned tool the tests use (idempotent: each script skips what its version stamp says is
# cached, so a warm run takes well under a second) and print the tools dir.
source "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"

# MinIO and kube-apiserver compile for minutes on 2 cores; the cheap steps go first so that a broken
# network or toolchain shows up early.
for step in install-system-deps install-helm-kubectl fetch-kserve-crds build-etcd build-kube-apiserver build-minio; do
  begin=$SECONDS
  bash "$here/$step.sh" >/dev/null  # each prints where its output lives; this script prints the tools dir
  log "$step: $((SECONDS - begin))s"
done
echo "$TOOLS_DIR/bin"
