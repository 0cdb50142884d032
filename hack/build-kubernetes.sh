#!/usr/bin/env bash
# Build Kubernetes binaries from the Go module proxy (the envtest approach), all at one pinned version:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy. k8s.io/kubernetes cannot be
# `go install`ed: a wrapper module requires it and replaces every staging module (listed in that release's go.mod
# as "=> ./staging/...") with its v0.Y.Z tag.
#   bash hack/build-kubernetes.sh NAME...   (hack/build-kube-apiserver.sh and hack/build-kube-node.sh name theirs)
# Each binary has its own version stamp and is skipped when cached. One `go build` at a time: each peaks at
# up to 2.8 GB on 2 cores (kube-apiserver and kubelet several minutes, scheduler and proxy well under a minute
# once the shared packages are in Go's build cache).
source "$(dirname "$0")/lib.sh"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
names=("$@"); [ ${#names[@]} -gt 0 ] || die "name the binaries to build"
todo=()
for n in "${names[@]}"; do
  case $n in kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy) ;; *) die "unknown binary $n" ;; esac
  if have "$n" "$K8S_VERSION"; then log "$n $K8S_VERSION cached"; else todo+=("$n"); fi
done
[ ${#todo[@]} -gt 0 ] || exit 0
need_go
staging_tag="v0.${K8S_VERSION#v1.}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init kubewrap >/dev/null 2>&1
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go_version=$(awk '$1=="go"{print $2; exit}' "$modfile")
go mod edit -go="$go_version" -require="k8s.io/kubernetes@$K8S_VERSION"
for mod in $(awk '/=> \.\/staging\//{print $1}' "$modfile"); do
  # A staging module published without this release's tag cannot be replaced; leave it out and let the
  # build say so if a binary actually imports it.
  if go list -m "$mod@$staging_tag" >/dev/null 2>&1; then
    go mod edit -replace="$mod=$mod@$staging_tag"
  else
    log "warning: $mod has no $staging_tag tag on the module proxy; not replaced"
  fi
done
{
  echo 'package main'; echo; echo 'import ('
  for n in "${todo[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$n/app\""; done
  echo ')'; echo; echo 'func main() {}'
} > main.go
GOFLAGS=-mod=mod go mod tidy >"$work/tidy.log" 2>&1 || { cat "$work/tidy.log" >&2; die "go mod tidy failed"; }
rm main.go
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
for n in "${todo[@]}"; do
  begin=$SECONDS
  log "building $n $K8S_VERSION"
  GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$TOOLS_DIR/bin/$n.tmp" "k8s.io/kubernetes/cmd/$n"
  got=$("$TOOLS_DIR/bin/$n.tmp" --version)
  [ "$got" = "Kubernetes $K8S_VERSION" ] || die "built $n reports '$got', not $K8S_VERSION"
  mv -f "$TOOLS_DIR/bin/$n.tmp" "$TOOLS_DIR/bin/$n"
  mark "$n" "$K8S_VERSION"
  log "$n: $((SECONDS - begin))s"
done
