#!/usr/bin/env bash
# skaffold's custom builder for skaffold.yaml's `node` profile (the cluster of hack/cluster-up.sh): builds one image
# with hack/build-images.sh (cached by its inputs, smoke-run; this machine's base image, wheelhouse and legacy
# builder stay in hack/, out of the Dockerfiles) and tags it as the $IMAGE skaffold asks for. skaffold then tags a
# local, unpushed image by its image ID and deploys that tag: load the tags `skaffold build --file-output` lists
# into the node with hack/cluster-load-images.sh before `skaffold deploy` (what skaffold does itself for kind).
# skaffold sets IMAGE (the full reference) and PUSH_IMAGE.
#   bash hack/skaffold-build.sh operator|predictor|drift-cronjob|training-job
source "$(dirname "$0")/lib.sh"
name=${1:?which image: operator, predictor, drift-cronjob or training-job}
: "${IMAGE:?skaffold sets IMAGE to the reference to build}"
[ "${PUSH_IMAGE:-false}" = false ] || die "the node profile never pushes: there is no registry here"
here="$(cd "$(dirname "$0")" && pwd)"
tag="$(awk -F'"' '/^appVersion:/{print $2}' "$REPO_ROOT/charts/ml-pipeline/Chart.yaml")"
IMAGES="$name" IMAGE_TAG="$tag" bash "$here/build-images.sh" >&2
"${DOCKER:-/usr/bin/docker}" tag "ml-pipeline/$name:$tag" "$IMAGE"
