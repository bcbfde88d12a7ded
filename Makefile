# cmfq: the two set-up commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check -q
export DVC_NO_ANALYTICS := 1
export PIP_PROGRESS_BAR := off

.PHONY: demo test test-spark test-thorough torture bench bench-peers lint wheel clean help

help:
	@echo "make demo   - create .venv, install cmfq, build a sample warehouse in demo/ and query it"
	@echo "make test   - install the test extras (and system packages the tests need), run the suite"
	@echo "make torture - the crash torture test at full size: 100 SIGKILLs (50 per remote kind)"
	@echo "make bench  - run the benchmarks; JSON results land in bench/results/"
	@echo "make bench-peers - the same workload through cmfq, cmflib, ML Metadata and MLflow (cmflib alone ~45 min on 2 cores; see bench/README.md)"
	@echo "make lint   - ruff and mypy"
	@echo "make test-thorough - the longer hostile-input, failure and paging checks left out of make test"
	@echo "make test-spark - every Spark-vs-DuckDB comparison (make test runs the core views and walks)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

demo: $(BIN)/python
	$(PIP) install -e ".[demo]"
	rm -rf demo
	$(BIN)/cmfq demo demo
	@echo; echo "== cmfq pipelines"; $(BIN)/cmfq -w demo/.cmfq pipelines
	@echo; echo "== train runs with n_est >= 50: cmfq executions --stage train --param 'n_est>=50' --limit 5"
	@$(BIN)/cmfq -w demo/.cmfq executions --stage train --param 'n_est>=50' --limit 5
	@echo; echo "== lineage of the latest tumor-classifier model"
	@$(BIN)/cmfq -w demo/.cmfq lineage artifacts/tumor-classifier/model/model.pkl
	@echo; echo "== SQL: roc_auc per pipeline"
	@$(BIN)/cmfq -w demo/.cmfq sql "SELECT x.pipeline, count(*) AS runs, round(max(m.value), 4) AS best_roc_auc \
	  FROM executions x JOIN final_metrics m ON m.execution_id = x.id AND m.name = 'roc_auc' GROUP BY 1 ORDER BY 1"
	@echo; echo "Next: cd demo && ../$(BIN)/cmfq --help"
	@echo "Open the app on the demo warehouse: $(BIN)/cmfq ui -w demo/.cmfq   (then http://127.0.0.1:8501)"

# Tests run against the installed package (editable here; tests/test_packaging.py also builds
# the wheel and runs it from a temp folder). git is needed by the git/DVC tests, Debian's
# chromium by the browser tests (Playwright drives it; its own browser download is unreachable),
# a Java runtime by the Spark tests.
test: $(BIN)/python
	@command -v git >/dev/null || { echo "installing git"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq git; }
	@command -v chromium >/dev/null || { echo "installing chromium for the browser tests"; \
	  $(SUDO) apt-get install -y -qq chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }; }
	@# Java for the Spark tests (pyspark 4 needs 17+): Debian's headless JRE
	@command -v java >/dev/null || { echo "installing a Java runtime for the Spark tests"; \
	  $(SUDO) apt-get install -y -qq default-jre-headless || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq default-jre-headless; }; }
	$(PIP) install -e ".[test]"
	@# cmflib and mlflow in cached virtualenvs of their own, and the stores they write for the
	@# interop tests: minutes on a cold cache, so here rather than inside timed tests
	$(BIN)/python -m tests.interop.peers
	$(BIN)/pytest

# Every Spark-vs-DuckDB comparison (the default run keeps the issue's core views and walks).
test-spark: $(BIN)/python
	$(PIP) install -e ".[test]"
	$(BIN)/pytest tests/spark -m "spark_full or not spark_full"

# The longer reliability checks kept out of `make test` (about 2 minutes more): every
# listing paged through, hostile names as a property through the CLI, permission denied as
# another user, a stalled S3 server, the app console refusing writes.
test-thorough: $(BIN)/python
	$(PIP) install -e ".[test]"
	$(BIN)/pytest -m thorough

# `make test` kills the busy site a few times per remote; this kills it 50 times per remote
# (folder and local S3), each at a named crash point or a random moment. Summaries land in
# tests/artifacts/torture-*.json.
torture: $(BIN)/python
	$(PIP) install -e ".[test]"
	CMFQ_TORTURE_KILLS=50 $(BIN)/pytest tests/reliability -k torture -s -p no:cacheprovider --timeout 3600

bench: $(BIN)/python
	$(PIP) install -e ".[test]"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Each peer in a throwaway virtualenv of its own under bench/.venvs/ (built on first use, a few
# minutes each); BENCH_ARGS e.g. "--sizes 50 --systems cmfq,mlmd".
bench-peers: $(BIN)/python
	$(PIP) install -e .
	$(BIN)/python bench/peers/run.py $(BENCH_ARGS)

lint: $(BIN)/python
	$(BIN)/ruff check .
	$(BIN)/mypy cmfq warehouse ingest sql

clean:
	rm -rf demo build dist *.egg-info .pytest_cache tests/artifacts

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
