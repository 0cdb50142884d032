#!/usr/bin/env bash
# Build CoreDNS from the Go module proxy (cached): the cluster's DNS (hack/dns-up.sh), so that pods resolve
# Services by name as on any cluster. Built inside its own (read-only) module directory: its go.mod is the one
# the release was tested with (a wrapper module would re-resolve its dependencies).
source "$(dirname "$0")/lib.sh"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
have coredns "$COREDNS_VERSION" && { log "coredns $COREDNS_VERSION cached"; exit 0; }
need_go
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION" 2>"$work/get.log" |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || { cat "$work/get.log" >&2; die "go mod download coredns failed"; }
log "building coredns $COREDNS_VERSION (minutes on 2 cores)"
(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TOOLS_DIR/bin/coredns.tmp" .)
"$TOOLS_DIR/bin/coredns.tmp" -plugins | grep -qx "kubernetes" || die "built coredns lacks the kubernetes plugin"
mv -f "$TOOLS_DIR/bin/coredns.tmp" "$TOOLS_DIR/bin/coredns"
mark coredns "$COREDNS_VERSION"
echo "$TOOLS_DIR/bin/coredns"
