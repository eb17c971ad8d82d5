# inferstack: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK ?= dev

.PHONY: help demo test lint check bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# torch first, pinned: the project's own requirement is a range that 2.13.0 satisfies, and a
# bare range would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: $(STAMP) ## preview the default stack offline: resources, sizing with reasons, cost
	$(BIN)/inferstack preview --stack $(STACK)

# tests/servers.py installs the servers the integration tests start (Debian packages) when it
# can, and otherwise says what is missing and the command; .ci/run takes the same path.
test: $(STAMP) ## run every test (installs redis-server and prometheus first when root or sudo)
	$(BIN)/python tests/servers.py --install
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy cannot follow setuptools' package-dir mapping: give it the installed layout as links.
	@mkdir -p .typecheck/inferstack
	@for f in inferstack/*; do ln -sfn ../../$$f .typecheck/$$f; done
	@for d in components runtime policies; do ln -sfn ../../$$d .typecheck/inferstack/$$d; done
	MYPYPATH=.typecheck $(BIN)/mypy -p inferstack

check: $(STAMP) ## run the policy pack against the default stack offline
	$(BIN)/inferstack check --stack $(STACK)

bench: $(STAMP) ## measure the runtime against raw torch (see README)
	$(BIN)/python benchmarks/run.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
