#!/usr/bin/env bash
# Build the MinIO server from the Go module proxy at a pinned pseudo-version (cached).
# `go install` works here (no replace directives in MinIO's go.mod); the binary reports
# DEVELOPMENT.GOGET as its version, so the stamp file is what records the pin.
source "$(dirname "$0")/lib.sh"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
have minio "$MINIO_VERSION" && { log "minio $MINIO_VERSION cached"; exit 0; }
need_go
log "building minio $MINIO_VERSION (several minutes on 2 cores)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
GOBIN="$work" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
"$work/minio" --version >/dev/null || die "built minio does not run"
mv -f "$work/minio" "$TOOLS_DIR/bin/minio"
mark minio "$MINIO_VERSION"
