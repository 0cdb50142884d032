#!/usr/bin/env bash
# Build skaffold from the Go module proxy (cached), at the version whose schema hack/fetch-skaffold-schema.sh
# checks skaffold.yaml against. Its go.mod pins docker/cli & co. with replace directives, which apply only when
# skaffold is the main module: so it builds inside its own (read-only) module directory, like kserve-manager.
source "$(dirname "$0")/lib.sh"
SKAFFOLD_VERSION="${SKAFFOLD_VERSION:-v2.16.1}"
have skaffold "$SKAFFOLD_VERSION" && { log "skaffold $SKAFFOLD_VERSION cached"; exit 0; }
need_go
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" 2>"$work/get.log" |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || { cat "$work/get.log" >&2; die "go mod download skaffold failed"; }
log "building skaffold $SKAFFOLD_VERSION (many minutes on 2 cores: a large dependency graph)"
(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
  -o "$TOOLS_DIR/bin/skaffold.tmp" ./cmd/skaffold)
"$TOOLS_DIR/bin/skaffold.tmp" version | grep -qx "$SKAFFOLD_VERSION" || die "built skaffold does not report $SKAFFOLD_VERSION"
mv -f "$TOOLS_DIR/bin/skaffold.tmp" "$TOOLS_DIR/bin/skaffold"
mark skaffold "$SKAFFOLD_VERSION"
echo "$TOOLS_DIR/bin/skaffold"
