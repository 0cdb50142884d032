# ml-pipeline developer and CI entry points. `make setup` once, then `make test` (the CI command).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The pinned versions the lead keeps; used when present.
CONSTRAINTS := $(if $(wildcard constraints.txt),-c constraints.txt,)
# Set ALLOW_NO_TESTS=1 to accept a run in which pytest collected nothing (exit 5); by default that fails.
ALLOW_NO_TESTS ?= 0

.PHONY: help setup system deps tools assets test lint format typecheck pytest run manifests

help:
	@echo "make setup  - venv + Python deps + pinned tools (hack/) + offline assets; idempotent"
	@echo "make test   - set up, then ruff check, mypy, pytest -m 'not e2e' with coverage (what CI runs)"
	@echo "make lint   - ruff check + ruff format --check + mypy"
	@echo "make format - ruff format + ruff check --fix"
	@echo "make run    - set up, then the whole loop on the embedded default (mlpipeline demo)"

setup: system deps tools assets

# Debian packages the tests need (PostgreSQL server, make) and a Go check; a no-op when present.
system:
	bash hack/install-system-deps.sh

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), sys.version' \
	  || { echo "need Python 3.11 or 3.12 as $(PYTHON)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency declarations change; the stamp lives inside the venv. uv (pinned, from
# hack/install-uv.sh) installs: it hard-links wheels from its cache, so a second checkout's venv takes seconds and
# almost no disk. It compiles the bytecode once, as pip did: where PYTHONDONTWRITEBYTECODE is set (CI here), every
# process would otherwise recompile torch and transformers on import (10 s each; the tests start dozens). The venv
# keeps its own pip (python -m venv) for the scripts that `pip download` or `pip wheel`.
$(VENV)/.deps-installed: pyproject.toml $(wildcard constraints.txt) | $(BIN)/python
	uv=$$(bash hack/install-uv.sh); "$$uv" pip install --quiet --compile-bytecode --python $(BIN)/python \
	  -e '.[dev]' $(CONSTRAINTS)
	touch $@

deps: $(VENV)/.deps-installed

tools:
	bash hack/install-tools.sh

# Offline data and model assets (training work stream); absent script means nothing to fetch yet.
assets: deps
	if [ -f hack/fetch-offline-assets.sh ]; then bash hack/fetch-offline-assets.sh; fi

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory pytest

typecheck:
	$(BIN)/mypy

pytest:
	rc=0; $(BIN)/pytest -m "not e2e" --cov --cov-report=term || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "pytest collected no tests (exit 5)" >&2; \
	  if [ "$(ALLOW_NO_TESTS)" = 1 ]; then rc=0; else rc=1; fi; \
	fi; \
	exit $$rc

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The README's first command: sets up what it needs (idempotent), then the whole loop on the embedded default;
# the demo's closing table includes how long these set-up steps took. (SUBMAKE, not $(MAKE): `make -n run` only
# prints this line instead of running it.)
SUBMAKE = $(MAKE) --no-print-directory
run:
	t0=$$(date +%s); $(SUBMAKE) deps; t1=$$(date +%s); \
	$(SUBMAKE) assets; t2=$$(date +%s); \
	MLP_SETUP_TIMINGS="venv + dependencies=$$((t1 - t0)),offline assets=$$((t2 - t1))" $(BIN)/mlpipeline demo

# Regenerate manifests/ from the chart after any chart change (a test fails while they are out of sync).
manifests:
	bash hack/generate-manifests.sh

# A real node on this machine (docs/deploy-kubernetes.md, "Local cluster without a registry"); root, Debian.
.PHONY: images cluster-up cluster-down e2e-cluster
images:
	bash hack/build-images.sh

cluster-up:
	bash hack/cluster-up.sh

cluster-down:
	bash hack/cluster-down.sh

e2e-cluster: images cluster-up
	bash hack/cluster-load-images.sh ml-pipeline/operator:0.1.0
	$(BIN)/pytest -p no:cacheprovider -m e2e tests/e2e/test_cluster_node.py tests/e2e/test_chart_on_node.py -q
