#!/usr/bin/env bash
# Copy images from the local Docker engine into the cluster's containerd (what `kind load docker-image` does):
#   bash hack/cluster-load-images.sh ml-pipeline/operator:0.1.0 ...
# Skips an image whose Docker image ID was already imported (a stamp kept in containerd's own root).
source "$(dirname "$0")/cluster-env.sh"
stamps="$CTR_ROOT/.mlp-imported"; mkdir -p "$stamps"
for ref in "$@"; do
  id=$("$DOCKER" image inspect -f '{{.Id}}' "$ref") || die "no image $ref in Docker (hack/build-images.sh builds them)"
  stamp="$stamps/$(echo "$ref" | tr '/:' '__')"
  full="$ref"; case ${ref%%/*} in *.*|*:*) ;; *) full="docker.io/$ref" ;; esac
  if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && [ -n "$(ctr_ images ls -q "name==$full")" ]; then
    log "$ref already in the cluster"; continue
  fi
  begin=$SECONDS
  "$DOCKER" save "$ref" | ctr_ images import - >/dev/null
  echo "$id" > "$stamp"
  log "$ref imported into the cluster in $((SECONDS - begin))s"
done
