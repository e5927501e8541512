# The two commands of the README: `make run` (install + start on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The SageMaker Python SDK 3.x beside the 2.x of the test extra, for tests/sdk3 (run by the main
# pytest through tests/integration/test_sagemaker_sdk3.py).
SDK3_VENV ?= .venv-sdk3

.PHONY: install run test lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

$(SDK3_VENV)/.installed: tests/sdk3/requirements.txt
	$(PYTHON) -m venv $(SDK3_VENV)
	$(SDK3_VENV)/bin/pip install --quiet --upgrade pip
	$(SDK3_VENV)/bin/pip install --quiet -r tests/sdk3/requirements.txt
	touch $@

run: install
	$(BIN)/stratum serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench tools

test: install $(SDK3_VENV)/.installed
	bash scripts/ensure-services.sh
	$(BIN)/ruff check src tests bench tools
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/api.py
