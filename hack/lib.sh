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

# have NAME VERSION: true when the pinned build is already cached.
have() { [ -x "$TOOLS_DIR/bin/$1" ] && [ "$(cat "$TOOLS_DIR/bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$TOOLS_DIR/bin/.$1.version"; }
log() { printf '[hack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# need_go: the Go builds need a toolchain; say so plainly instead of failing deep inside a build.
need_go() { command -v go >/dev/null 2>&1 || die "go is not on PATH (install Go >= the version in the module's go.mod)"; }

# pip_download DIR SPEC: fetch one wheel (no dependencies) into DIR, reusing one already there.
pip_download() {
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check -d "$1" "$2" >&2
}
