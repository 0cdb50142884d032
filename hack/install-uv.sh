#!/usr/bin/env bash
# Install a pinned uv (the venv installer `make deps` uses) into the tools dir and print its path.
# Why uv, not pip: uv keeps one unpacked copy of each wheel in its cache and hard-links it into every venv, so a
# fresh checkout's 6.6 GB venv (CUDA torch) costs seconds and almost no disk once the cache is warm; pip copied
# all of it into every checkout (a clean-checkout CI run once died of a full disk on that copy).
# Source: PyPI's uv wheel, whose data/scripts carry the static binary.
source "$(dirname "$0")/lib.sh"
UV_VERSION="${UV_VERSION:-0.13.9}"

if ! have uv "$UV_VERSION"; then
  cache="$TOOLS_DIR/cache/pypi"
  mkdir -p "$cache"
  pip_download "$cache" "uv==$UV_VERSION"
  wheel=$(ls "$cache"/uv-"$UV_VERSION"-*.whl | head -1)
  "$PY" - "$wheel" "$TOOLS_DIR/bin/uv.tmp" <<'PY'
import shutil, sys, zipfile
wheel, dest = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
PY
  chmod +x "$TOOLS_DIR/bin/uv.tmp"
  grep -q "uv $UV_VERSION" <<<"$(output_of "$TOOLS_DIR/bin/uv.tmp" --version)" || die "uv.tmp is not uv $UV_VERSION"
  install_built uv "$UV_VERSION"
  log "uv $UV_VERSION installed"
fi
echo "$TOOLS_DIR/bin/uv"
