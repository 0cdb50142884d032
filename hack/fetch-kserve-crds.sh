#!/usr/bin/env bash
# KServe's own CRDs (InferenceService, ServingRuntime, ClusterServingRuntime, InferenceGraph, TrainedModel) and its
# inferenceservice-config ConfigMap, from the pinned KServe Go module (`go mod download`, no build). v0.20.0 is the
# newest KServe release on the Go module proxy. Prints the directory holding them.
source "$(dirname "$0")/lib.sh"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
dest="$HOME/.cache/ml-pipeline/kserve/$KSERVE_VERSION"
if [ -f "$dest/.done" ]; then echo "$dest"; exit 0; fi
need_go
dir=$(cd /tmp && go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
mkdir -p "$dest/crds"
cp "$dir"/config/crd/full/serving.kserve.io_*.yaml "$dest/crds/"
cp "$dir/config/configmap/inferenceservice.yaml" "$dest/inferenceservice-config.yaml"
chmod -R u+w "$dest"
touch "$dest/.done"
log "KServe $KSERVE_VERSION CRDs in $dest/crds"
echo "$dest"
