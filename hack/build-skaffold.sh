#!/usr/bin/env bash
# Build skaffold from the Go module proxy (cached), at the version whose schema hack/fetch-skaffold-schema.sh
# checks skaffold.yaml against. Its go.mod pins docker/cli & co. with replace directives, which apply only when
# skaffold is the main module: so it builds inside its own module directory, like kserve-manager.
source "$(dirname "$0")/lib.sh"
SKAFFOLD_VERSION="${SKAFFOLD_VERSION:-v2.16.1}"
have skaffold "$SKAFFOLD_VERSION" && { log "skaffold $SKAFFOLD_VERSION cached"; exit 0; }
build_in_module skaffold "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" ./cmd/skaffold \
  -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION"
grep -qx "$SKAFFOLD_VERSION" <<<"$(output_of "$TOOLS_DIR/bin/skaffold.tmp" version)" || die "built skaffold does not report $SKAFFOLD_VERSION"
install_built skaffold "$SKAFFOLD_VERSION"
echo "$TOOLS_DIR/bin/skaffold"
