# The two commands of the README: `make run` (install the server + start on embedded defaults) and
# `make test` (install the server with the test extras + run the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test run test lint bench

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

run: install
	$(BIN)/stratum serve $(ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench tools

test: install-test
	bash scripts/ensure-services.sh
	$(BIN)/ruff check src tests bench tools
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: $(BIN)/.installed-bench
	$(BIN)/python bench/api.py
