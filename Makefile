# Sluice: the two commands a new user needs are `make demo` and `make test`.
# Everything runs from a virtualenv in .venv that these targets create on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sluice-installed
PYTEST_ARGS ?=

.PHONY: demo test test-all lint typecheck format bench install clean help

help:  ## List targets.
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)  ## Create .venv and install Sluice with its dev tools.

demo: $(STAMP)  ## Run support triage end to end on the shipped sample (SQLite, local models).
	$(BIN)/sluice demo support-triage

test: $(STAMP)  ## Run the test suite on SQLite and PostgreSQL (benchmarks excluded).
	$(BIN)/python -m pytest -m "not bench" $(PYTEST_ARGS)

test-all: $(STAMP)  ## Run every test, benchmark smoke tests included.
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff (lint + format check) and mypy --strict on the package.
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

format: $(STAMP)  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)  ## Run the benchmarks and update docs/benchmarks.md.
	$(BIN)/python -m bench.triage_banking77
	$(BIN)/python -m bench.lineage
	$(BIN)/python -m bench.gateway
	$(BIN)/python -m bench.retrieval --dataset scifact

clean:  ## Remove the virtualenv, local state and caches.
	rm -rf $(VENV) .sluice .pytest_cache .mypy_cache .ruff_cache build dist
