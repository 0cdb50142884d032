#!/usr/bin/env bash
# Build kube-apiserver from the Go module proxy (the envtest approach). k8s.io/kubernetes
# cannot be `go install`ed: a wrapper module requires it and replaces every staging module
# (listed in that release's go.mod as "=> ./staging/...") with its v0.Y.Z tag.
source "$(dirname "$0")/lib.sh"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
have kube-apiserver "$K8S_VERSION" && { log "kube-apiserver $K8S_VERSION cached"; exit 0; }
need_go
staging_tag="v0.${K8S_VERSION#v1.}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init apiserverwrap >/dev/null 2>&1
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go_version=$(awk '$1=="go"{print $2; exit}' "$modfile")
go mod edit -go="$go_version" -require="k8s.io/kubernetes@$K8S_VERSION"
for mod in $(awk '/=> \.\/staging\//{print $1}' "$modfile"); do
  # A staging module published without this release's tag cannot be replaced; leave it out and let the
  # build say so if kube-apiserver actually imports it.
  if go list -m "$mod@$staging_tag" >/dev/null 2>&1; then
    go mod edit -replace="$mod=$mod@$staging_tag"
  else
    log "warning: $mod has no $staging_tag tag on the module proxy; not replaced"
  fi
done
cat > main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
GOFLAGS=-mod=mod go mod tidy >"$work/tidy.log" 2>&1 || { cat "$work/tidy.log" >&2; die "go mod tidy failed"; }
rm main.go
log "building kube-apiserver $K8S_VERSION (several minutes on 2 cores)"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$TOOLS_DIR/bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
got=$("$TOOLS_DIR/bin/kube-apiserver.tmp" --version)
[ "$got" = "Kubernetes $K8S_VERSION" ] || die "built kube-apiserver reports '$got', not $K8S_VERSION"
mv -f "$TOOLS_DIR/bin/kube-apiserver.tmp" "$TOOLS_DIR/bin/kube-apiserver"
mark kube-apiserver "$K8S_VERSION"
