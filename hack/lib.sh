# Shared helpers for the hack/ build and install scripts: one cache directory for every pinned tool.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${MLP_TOOLS_DIR:-$HOME/.cache/ml-pipeline/tools}"
mkdir -p "$TOOLS_DIR/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

# The project's venv has pip; a bare Debian python3 may not. Only `pip download` is used: nothing from
# these helpers is ever installed into a Python environment.
if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PY="$REPO_ROOT/.venv/bin/python"; else PY="$(command -v python3)"; fi
# free_port: a loopback TCP port free now (cluster health and metrics listeners, the images' wheelhouse fallback).
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# have NAME VERSION: true when the pinned build is already cached.
have() { [ -x "$TOOLS_DIR/bin/$1" ] && [ "$(cat "$TOOLS_DIR/bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$TOOLS_DIR/bin/.$1.version"; }
log() { printf '[hack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# A command's whole output (stdout + stderr), whatever its exit status. Check it with `grep -q ... <<<"$(output_of ...)"`,
# never `cmd | grep -q`: under pipefail, grep -q exits at its first match and the command, still writing, dies of
# SIGPIPE, which fails the pipeline although the pattern was found (seen: a good etcd build refused on a cold run).
output_of() { "$@" 2>&1 || true; }

# need_go: the Go builds need a toolchain; say so plainly instead of failing deep inside a build.
need_go() { command -v go >/dev/null 2>&1 || die "go is not on PATH (install Go >= the version in the module's go.mod)"; }

# build_in_module NAME MODULE@VERSION PACKAGE [GO BUILD ARGS...]: `go build` PACKAGE inside the module's own
# (read-only) directory in Go's module cache, so its go.mod, replace directives included, is the one used (they
# apply only to the main module); the binary goes to $TOOLS_DIR/bin/NAME.tmp for the caller to check, then
# install_built moves it in place with its version stamp.
build_in_module() {
  local name=$1 module=$2 package=$3; shift 3
  local work dir
  need_go
  work=$(mktemp -d)
  dir=$(cd "$work" && go mod download -json "$module" 2>"$work/get.log" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || { cat "$work/get.log" >&2; rm -rf "$work"; die "go mod download $module failed"; }
  rm -rf "$work"
  log "building $name from $module (minutes on 2 cores)"
  (cd "$dir" && go build -trimpath "$@" -o "$TOOLS_DIR/bin/$name.tmp" "$package")
}
# install_built NAME VERSION: the checked NAME.tmp becomes NAME, stamped with VERSION.
install_built() { mv -f "$TOOLS_DIR/bin/$1.tmp" "$TOOLS_DIR/bin/$1"; mark "$1" "$2"; }

# pip_download DIR SPEC: fetch one wheel (no dependencies) into DIR, reusing one already there.
pip_download() {
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check -d "$1" "$2" >&2
}
