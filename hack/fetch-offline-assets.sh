#!/usr/bin/env bash
# Offline data and model for the embedded default and the tests (no Hugging Face hub at run time).
# The logic lives in mlpipeline_cli/assets.py, so `mlpipeline demo` and this script fetch the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m mlpipeline_cli.assets
