#!/usr/bin/env bash
# Copy images from the local Docker engine into the cluster's containerd (what `kind load docker-image` does):
#   bash hack/cluster-load-images.sh ml-pipeline/operator:0.1.0 ...
# Skips an image whose Docker image ID was already imported (a stamp kept in containerd's own root), and only tags
# one whose image is already there under another name (skaffold's input-digest tags of an unchanged image).
source "$(dirname "$0")/cluster-env.sh"
stamps="$CTR_ROOT/.mlp-imported"; by_id="$stamps/by-id"; mkdir -p "$by_id"
for ref in "$@"; do
  id=$("$DOCKER" image inspect -f '{{.Id}}' "$ref") || die "no image $ref in Docker (hack/build-images.sh builds them)"
  stamp="$stamps/$(echo "$ref" | tr '/:' '__')"
  # The name containerd (and so kubelet) knows it by: Docker's normalisation of a short reference.
  case $ref in
    */*) case ${ref%%/*} in *.*|*:*|localhost) full="$ref" ;; *) full="docker.io/$ref" ;; esac ;;
    *) full="docker.io/library/$ref" ;;
  esac
  if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && [ -n "$(ctr_ images ls -q "name==$full")" ]; then
    log "$ref already in the cluster"; continue
  fi
  known=$(cat "$by_id/${id#sha256:}" 2>/dev/null || true)
  if [ -n "$known" ] && [ "$known" != "$full" ] && [ -n "$(ctr_ images ls -q "name==$known")" ]; then
    ctr_ images tag --force "$known" "$full" >/dev/null
    echo "$id" > "$stamp"
    log "$ref tagged in the cluster (the same image as $known)"; continue
  fi
  begin=$SECONDS
  "$DOCKER" save "$ref" | ctr_ images import - >/dev/null
  echo "$id" > "$stamp"
  echo "$full" > "$by_id/${id#sha256:}"
  log "$ref imported into the cluster in $((SECONDS - begin))s"
done
