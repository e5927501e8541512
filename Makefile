# The two commands of the README: `make run` (install the server + start on embedded defaults) and
# `make test` (install the server with the test extras + run the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The SageMaker Python SDK 3.x beside the 2.x of the test extra, for tests/sdk3 (run by the main
# pytest through tests/integration/test_sagemaker_sdk3.py).
SDK3_VENV ?= .venv-sdk3

# The Kubernetes API server of the operator's tests (tools/k8s-crdserver): built once, ~8 minutes and
# ~4 GB of scratch space, into a cache later runs reuse.
STRATUM_CRDSERVER_DIR ?= $(HOME)/.cache/stratum/k8s-crdserver
export STRATUM_CRDSERVER_DIR

.PHONY: install install-test run test lint bench crdserver

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# One stamp per extra set: `make run` installs only what the server needs.
$(BIN)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(BIN)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

install-test: $(BIN)/.installed-test

$(SDK3_VENV)/.installed: tests/sdk3/requirements.txt
	$(PYTHON) -m venv $(SDK3_VENV)
	$(SDK3_VENV)/bin/pip install --quiet --upgrade pip
	$(SDK3_VENV)/bin/pip install --quiet -r tests/sdk3/requirements.txt
	touch $@

$(STRATUM_CRDSERVER_DIR)/bin/crdserver:
	tmp=$$(mktemp -d) && bash tools/k8s-crdserver/build.sh "$$tmp" \
	  && mkdir -p "$(STRATUM_CRDSERVER_DIR)/bin" && cp "$$tmp/bin/crdserver" "$$tmp/bin/etcd" "$(STRATUM_CRDSERVER_DIR)/bin/"; \
	  rc=$$?; rm -rf "$$tmp"; exit $$rc

crdserver: $(STRATUM_CRDSERVER_DIR)/bin/crdserver

run: install
	$(BIN)/stratum serve $(ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench tools

test: install-test $(SDK3_VENV)/.installed crdserver
	bash scripts/ensure-services.sh
	$(BIN)/ruff check src tests bench tools
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: $(BIN)/.installed-bench
	$(BIN)/python bench/api.py
