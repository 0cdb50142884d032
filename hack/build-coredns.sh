#!/usr/bin/env bash
# Build CoreDNS from the Go module proxy (cached): the cluster's DNS (hack/cluster-up.sh runs it on the node IP),
# so that pods resolve Services by name as on any cluster. Built inside its own module directory: its go.mod is
# the one the release was tested with (a wrapper module would re-resolve its dependencies).
source "$(dirname "$0")/lib.sh"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
have coredns "$COREDNS_VERSION" && { log "coredns $COREDNS_VERSION cached"; exit 0; }
build_in_module coredns "github.com/coredns/coredns@$COREDNS_VERSION" . -ldflags "-s -w"
grep -qx "kubernetes" <<<"$(output_of "$TOOLS_DIR/bin/coredns.tmp" -plugins)" || die "built coredns lacks the kubernetes plugin"
install_built coredns "$COREDNS_VERSION"
echo "$TOOLS_DIR/bin/coredns"
