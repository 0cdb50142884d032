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
  build_in_module helm3 "helm.sh/helm/v3@$HELM3_VERSION" ./cmd/helm \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
  grep -q "^$HELM3_VERSION" <<<"$(output_of "$TOOLS_DIR/bin/helm3.tmp" version --client --short)" || die "built helm3 does not report $HELM3_VERSION"
  install_built helm3 "$HELM3_VERSION"
fi
mkdir -p "$link_dir"
ln -sfn "$TOOLS_DIR/bin/helm3" "$link_dir/helm"
echo "$link_dir"
