#!/usr/bin/env bash
# Build helm 3 from the Go module proxy (cached) for skaffold only: skaffold v2.16 drives helm 3 (it runs
# `helm version --client`, which helm 4 refuses, and passes executables as --post-renderer, which helm 4 takes as
# plugins). Installed as `helm3`, with a `helm` link in $TOOLS_DIR/skaffold-path that skaffold's PATH starts with;
# everything else keeps the pinned helm 4 (hack/install-helm-kubectl.sh).
source "$(dirname "$0")/lib.sh"
HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"
link_dir="$TOOLS_DIR/skaffold-path"
if have helm3 "$HELM3_VERSION"; then
  log "helm3 $HELM3_VERSION cached"
else
  need_go
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  dir=$(cd "$work" && go mod download -json "helm.sh/helm/v3@$HELM3_VERSION" 2>"$work/get.log" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || { cat "$work/get.log" >&2; die "go mod download helm v3 failed"; }
  log "building helm3 $HELM3_VERSION (minutes on 2 cores)"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION" \
    -o "$TOOLS_DIR/bin/helm3.tmp" ./cmd/helm)
  "$TOOLS_DIR/bin/helm3.tmp" version --client --short | grep -q "^$HELM3_VERSION" || die "built helm3 does not report $HELM3_VERSION"
  mv -f "$TOOLS_DIR/bin/helm3.tmp" "$TOOLS_DIR/bin/helm3"
  mark helm3 "$HELM3_VERSION"
fi
mkdir -p "$link_dir"
ln -sfn "$TOOLS_DIR/bin/helm3" "$link_dir/helm"
echo "$link_dir"
