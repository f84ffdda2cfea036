# mlcycle — the two commands that matter are `make demo` and `make test`; both set up .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test test-fast lint compile manifests bench bench-serving bench-drift bench-batch clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlcycle demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration and not slow"

# ruff's S rules are the static security lint (findings fixed or justified inline with `# noqa: Sxxx (why)`);
# pip-audit checks the installed dependencies against PyPI's advisory data (the project itself is skipped).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pip-audit --skip-editable --progress-spinner off

compile: $(STAMP)
	$(BIN)/mlcycle compile

# Rendered YAML per environment (and the team profiles) under manifests/ (git-ignored), for review or
# `kubectl apply -f`. Needs kubectl (its built-in kustomize); no cluster.
manifests:
	@command -v kubectl >/dev/null || { echo "make manifests needs kubectl (kubectl kustomize)"; exit 1; }
	mkdir -p manifests
	for env in dev staging prod; do kubectl kustomize kustomize/overlays/$$env > manifests/$$env.yaml || exit 1; done
	kubectl kustomize profiles > manifests/profiles.yaml
	@ls -l manifests/

# Every benchmark that runs in minutes; each prints its figures side by side with its baseline.
bench: bench-pipeline bench-drift $(if $(wildcard benchmarks/bench_batch.py),bench-batch)

bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

# Serving benchmark of issue 3 (< 15 min; installs MLServer into benchmarks/.venv-mlserver on first run).
# BENCH_ARGS=--quick for a smoke run of a few seconds per cell.
bench-serving: $(STAMP)
	bash scripts/install-debian-deps.sh
	$(BIN)/python benchmarks/bench_serving.py $(BENCH_ARGS)

# Drift benchmark of issue 5: 1,000,000 rows x 20 columns, mlcycle's check vs plain Evidently (a few minutes).
bench-drift: $(STAMP)
	$(BIN)/python benchmarks/bench_drift.py $(BENCH_ARGS)

# Batch benchmark of issue 6: 1,000,000 wine-shaped rows, the batch job vs raw predict_proba, peak RSS
# (about two minutes). BENCH_ARGS=--csv to also score from CSV, --repeat N to keep the best of N.
bench-batch: $(STAMP)
	$(BIN)/python benchmarks/bench_batch.py $(BENCH_ARGS)

clean:
	rm -rf .mlcycle .pytest_cache
