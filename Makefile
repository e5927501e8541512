# The two commands of the README: `make run` (install + start on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/stratum serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench tools

test: install
	bash scripts/ensure-services.sh
	$(BIN)/ruff check src tests bench tools
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/api.py
