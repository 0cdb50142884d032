#!/usr/bin/env bash
# Fetch skaffold's published JSON schema for the apiVersion skaffold.yaml uses, without compiling skaffold:
# `go mod download` brings the pinned skaffold module (its source carries docs-v2/content/en/schemas/*.json)
# into the Go module cache, and the one schema file is copied into the tools dir. Nothing is committed.
# Prints the schema's path.
source "$(dirname "$0")/lib.sh"
SKAFFOLD_VERSION="${SKAFFOLD_VERSION:-v2.16.1}"        # its latest config version is skaffold/v4beta13
SCHEMA_VERSION="${SKAFFOLD_SCHEMA_VERSION:-v4beta13}"
dest_dir="$TOOLS_DIR/skaffold-schema"
dest="$dest_dir/$SCHEMA_VERSION.json"
stamp="$dest_dir/.version"
if [ -s "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$SKAFFOLD_VERSION/$SCHEMA_VERSION" ]; then
  echo "$dest"; exit 0
fi
need_go
mkdir -p "$dest_dir"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# A throwaway wrapper module: `go mod download` of a module path needs a module context.
(cd "$work" && go mod init skaffold-schema-fetch >/dev/null 2>&1)
log "downloading github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION (module source, no build)"
json=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION")
dir=$("$PY" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])' <<<"$json")
src="$dir/docs-v2/content/en/schemas/$SCHEMA_VERSION.json"
[ -s "$src" ] || die "$src not found in the skaffold module"
# The latest config version must be the one we validate against, or skaffold would ask for `skaffold fix`.
grep -q "const Version string = \"skaffold/$SCHEMA_VERSION\"" "$dir/pkg/skaffold/schema/latest/config.go" \
  || log "note: skaffold $SKAFFOLD_VERSION's latest config version is not $SCHEMA_VERSION"
install -m 0644 "$src" "$dest.tmp" && mv -f "$dest.tmp" "$dest"   # the module cache is read-only
echo "$SKAFFOLD_VERSION/$SCHEMA_VERSION" > "$stamp"
log "skaffold schema $SCHEMA_VERSION from skaffold $SKAFFOLD_VERSION"
echo "$dest"
