#!/usr/bin/env bash
# Build etcd from the Go module proxy in a throwaway wrapper module (cached).
# Since v3.5 the etcd server's main package is the module root go.etcd.io/etcd/server/v3 (server/main.go).
source "$(dirname "$0")/lib.sh"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
have etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION cached"; exit 0; }
need_go
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init etcdwrap >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" 2>"$work/get.log" || { cat "$work/get.log" >&2; die "go get etcd failed"; }
log "building etcd $ETCD_VERSION"
go build -trimpath -ldflags "-s -w" -o "$TOOLS_DIR/bin/etcd.tmp" go.etcd.io/etcd/server/v3
grep -q "etcd Version: ${ETCD_VERSION#v}" <<<"$(output_of "$TOOLS_DIR/bin/etcd.tmp" --version)" || die "built etcd is not $ETCD_VERSION"
mv -f "$TOOLS_DIR/bin/etcd.tmp" "$TOOLS_DIR/bin/etcd"
mark etcd "$ETCD_VERSION"
