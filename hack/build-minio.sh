#!/usr/bin/env bash
# Build the MinIO server from the Go module proxy at a pinned pseudo-version (cached).
source "$(dirname "$0")/lib.sh"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
have minio "$MINIO_VERSION" && { log "minio $MINIO_VERSION cached"; exit 0; }
log "building minio $MINIO_VERSION (several minutes on 2 cores)"
GOBIN="$TOOLS_DIR/bin" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
mark minio "$MINIO_VERSION"
