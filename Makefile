# Ringfence: `make demo` runs the product on embedded defaults; `make test` runs every test.
# Both install what they need first (`make setup`), and setup is a no-op when nothing changed.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ringfence-installed
DATA_DIR ?= var
PROFILE ?= default
SEED ?= 7
PYTEST_ARGS ?=

.PHONY: setup demo test lint format schemas bench clean help java go native

help:
	@echo "make demo   - generate data, ingest it, print the reconciled summary (embedded, no servers)"
	@echo "make test   - lint, then the whole test suite with coverage"
	@echo "make lint   - ruff (lint + format check) and mypy"
	@echo "make bench  - the perf/ benchmarks"
	@echo "make setup  - create .venv and install pinned dependencies (idempotent)"
	@echo "make native - compile the feature state and entity sums with Cython (part of setup; rebuilt when it changes)"
	@echo "make neo4j  - run a local Neo4j 5.26 (Bolt on 127.0.0.1:7687, no auth) in the foreground"

setup: $(STAMP) native

# The hot path's pure-Python modules compiled with Cython (the .py stays the one definition and
# runs as is when not compiled); rebuilt whenever its source changes.
NATIVE_SRC := gnn/features.py gnn/sums.py
EXT_SUFFIX := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
native: $(STAMP)
	@command -v cc >/dev/null || { \
	  echo "installing a C compiler (Debian package) ..."; \
	  apt-get update -qq && apt-get install -y -qq gcc; }
	@$(MAKE) --no-print-directory $(NATIVE_SRC:.py=$(EXT_SUFFIX))

%$(EXT_SUFFIX): %.py $(STAMP)
	$(BIN)/cythonize -i -3 -q $<

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Ringfence needs Python 3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Java 17 and Maven run the real servers the tests start (Neo4j from Maven Central jars).
java:
	@command -v javac >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing OpenJDK 17 and Maven (Debian packages) ..."; \
	  apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven; }

# Go builds the load generator (perf/loadgen; standard library only), tested by the suite.
go:
	@command -v go >/dev/null || { \
	  echo "installing Go (Debian package) ..."; \
	  apt-get update -qq && apt-get install -y -qq golang-go; }

demo: setup
	RINGFENCE_DATA_DIR=$(DATA_DIR) $(BIN)/ringfence demo --profile $(PROFILE) --seed $(SEED)

test: setup java go lint
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml:coverage.xml $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: setup
	$(BIN)/ringfence schemas --out docs/schemas --doc docs/events.md

bench: setup
	$(BIN)/python perf/ingest_bench.py
	$(BIN)/python perf/bus_bench.py
	$(BIN)/python perf/graph_bench.py
	$(BIN)/python perf/rings_bench.py
	$(BIN)/python perf/graph_neo4j_bench.py

.PHONY: neo4j
neo4j: setup java
	$(BIN)/python -m tests.services.neo4j --data-dir $(DATA_DIR)/neo4j $(if $(NEO4J_PORT),--port $(NEO4J_PORT))

# Pack a model version for TorchServe: $(MAR_DIR)/<version>.mar (docs/torchserve.md).
MAR_DIR ?= $(DATA_DIR)/model-store
.PHONY: torchserve-archive
torchserve-archive: setup
	@test -n "$(MODEL)" || { echo "usage: make torchserve-archive MODEL=models/<version>" >&2; exit 1; }
	$(BIN)/python -m tests.services.torchserve archive --model $(MODEL) --out $(MAR_DIR)

clean:
	rm -rf $(DATA_DIR) .pytest_cache .ruff_cache .mypy_cache coverage.xml .coverage build
	rm -f $(NATIVE_SRC:.py=.c) $(NATIVE_SRC:.py=.cpython-*.so)
