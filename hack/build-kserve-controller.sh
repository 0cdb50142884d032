#!/usr/bin/env bash
# Build KServe's controller manager (cmd/manager) from the Go module proxy (cached), at the version whose CRDs
# hack/fetch-kserve-crds.sh installs. Its go.mod pins client-go & co. with replace directives, which apply only
# when kserve is the main module: so it builds inside its own (read-only) module directory, not in a wrapper.
source "$(dirname "$0")/lib.sh"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
have kserve-manager "$KSERVE_VERSION" && { log "kserve-manager $KSERVE_VERSION cached"; exit 0; }
need_go
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION" 2>"$work/get.log" |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || { cat "$work/get.log" >&2; die "go mod download kserve failed"; }
log "building kserve-manager $KSERVE_VERSION (minutes on 2 cores)"
(cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$TOOLS_DIR/bin/kserve-manager.tmp" ./cmd/manager)
"$TOOLS_DIR/bin/kserve-manager.tmp" --help 2>&1 | grep -q -- "-webhook-port" || die "built kserve-manager does not run"
mv -f "$TOOLS_DIR/bin/kserve-manager.tmp" "$TOOLS_DIR/bin/kserve-manager"
mark kserve-manager "$KSERVE_VERSION"
echo "$TOOLS_DIR/bin/kserve-manager"
