#!/usr/bin/env bash
# Build KServe's controller manager (cmd/manager) from the Go module proxy (cached), at the version whose CRDs
# hack/fetch-kserve-crds.sh installs. Its go.mod pins client-go & co. with replace directives, which apply only
# when kserve is the main module: so it builds inside its own (read-only) module directory, not in a wrapper.
source "$(dirname "$0")/lib.sh"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
have kserve-manager "$KSERVE_VERSION" && { log "kserve-manager $KSERVE_VERSION cached"; exit 0; }
build_in_module kserve-manager "github.com/kserve/kserve@$KSERVE_VERSION" ./cmd/manager -ldflags "-s -w"
grep -q -- "-webhook-port" <<<"$(output_of "$TOOLS_DIR/bin/kserve-manager.tmp" --help)" || die "built kserve-manager does not run"
install_built kserve-manager "$KSERVE_VERSION"
echo "$TOOLS_DIR/bin/kserve-manager"
