# mlcycle — the two commands that matter are `make demo` and `make test`; both set up .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup lock demo test test-fast lint compile manifests images bench bench-serving bench-payload-log bench-drift bench-batch bench-compiled clean

LOCK := requirements/dev.txt
LOCK_RUNTIME := requirements/runtime.txt
LOCK_PYTHON := 3.11
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --python-version $(LOCK_PYTHON) \
	--python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet

# The venv is exactly the lock: every package pinned and hash-checked, nothing resolved at install time
# (--no-deps), then mlcycle itself as an editable install built by the locked hatchling.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(LOCK_PYTHON)" else \
	  f"the lock ($(LOCK)) is for Python $(LOCK_PYTHON), .venv has {v}: make PYTHON=python$(LOCK_PYTHON) setup")'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml (needs the package index). The runtime lock (the images) is the
# dev lock's subset: same versions, fewer packages. tests/test_lock.py fails until this is re-run.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet "$$(grep -m1 -o '^uv==[^ ]*' $(LOCK))"
	$(UV_COMPILE) --extra dev -o $(LOCK) $(LOCK_ARGS)
	$(UV_COMPILE) -c $(LOCK) -o $(LOCK_RUNTIME)
	$(BIN)/python scripts/lock_digest.py --write $(LOCK) $(LOCK_RUNTIME)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlcycle demo

# TEST_WORKERS pytest-xdist workers (CI has 2 cores; 0 runs serially); each takes whole test directories
# (tests/conftest.py), so a directory's fixtures are made once.
TEST_WORKERS ?= 2
# Installs (as root or with passwordless sudo) the Debian packages whose servers the tests start, or stops
# with one line naming them: nothing is skipped for a missing server.
test: $(STAMP)
	bash scripts/install-debian-deps.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration and not slow"

# ruff's S rules are the static security lint (findings fixed or justified inline with `# noqa: Sxxx (why)`);
# pip-audit checks the installed dependencies against PyPI's advisory data (the project itself is skipped).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pip-audit --skip-editable --progress-spinner off

# Both images (Dockerfile targets component and predictor) with docker or podman; without a reachable
# registry the base is built offline from Debian's packages. Prints the image sizes. See scripts/images.sh.
images: $(STAMP)
	bash scripts/images.sh

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
bench: bench-pipeline bench-drift bench-compiled $(if $(wildcard benchmarks/bench_batch.py),bench-batch)

# In-process: a compiled forest's predict (ONNX Runtime, Treelite) vs scikit-learn's (issue 19; ~1 min).
bench-compiled: $(STAMP)
	$(BIN)/python benchmarks/bench_compiled.py

bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

# Serving benchmark of issue 3 (< 15 min; installs MLServer into benchmarks/.venv-mlserver on first run).
# BENCH_ARGS=--quick for a smoke run of a few seconds per cell.
bench-serving: $(STAMP)
	bash scripts/install-debian-deps.sh
	$(BIN)/python benchmarks/bench_serving.py $(BENCH_ARGS)

# Issue 16: the predictor's p99 with payload logging on vs off at 32 and 1 connections (~3 min);
# BENCH_ARGS="--baseline main" also runs main's predictor in the same run (this checkout / main ratios).
bench-payload-log: $(STAMP)
	bash scripts/install-debian-deps.sh
	$(BIN)/python benchmarks/bench_payload_log.py $(BENCH_ARGS)

# Drift benchmark of issue 5: 1,000,000 rows x 20 columns, mlcycle's check vs plain Evidently (a few minutes).
bench-drift: $(STAMP)
	$(BIN)/python benchmarks/bench_drift.py $(BENCH_ARGS)

# Batch benchmark of issue 6: 1,000,000 wine-shaped rows, the batch job vs raw predict_proba, peak RSS
# (about two minutes). BENCH_ARGS=--csv to also score from CSV, --repeat N to keep the best of N.
bench-batch: $(STAMP)
	$(BIN)/python benchmarks/bench_batch.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_batch_shards.py

clean:
	rm -rf .mlcycle .pytest_cache
