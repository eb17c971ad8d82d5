# inferstack: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK ?= dev

.PHONY: help demo test test-image lint check bench docs image image-gpu lock lock-gpu scan clean

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

# `make demo` needs only what preview needs, the infra extra (Pulumi and its Kubernetes SDK,
# numpy and numba for the declared day's simulation): no torch, no cloud SDKs, no test servers
# (in a venv that `make test` made, the install finds everything there).
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[infra]'
	@touch $@

demo: $(DEMO_STAMP) ## preview the default stack offline: resources, sizing with reasons, cost
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

bench: $(STAMP) ## measure the runtime against raw torch (docs: Performance)
	$(BIN)/python benchmarks/run.py

# Strict (mkdocs.yml): a broken link, anchor or generated section fails the build.
docs: $(STAMP) ## build the documentation site into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --quiet

# The CUDA image's test (test_model_source_image.py) needs `make image-gpu`'s multi-GB build:
# run it by hand with INFERSTACK_TEST_GPU_IMAGE set.
test-image: $(STAMP) ## build the image, serve inferences from it and bake a model into it (root; minutes)
	$(BIN)/pytest -q -m image tests/runtime/test_image.py \
		tests/runtime/test_model_source_image.py::test_a_baked_model_is_in_the_image_named_by_its_settings

image: ## build the CPU runtime image with buildah (scripts/image.sh; MODEL=PATH bakes a model in)
	scripts/image.sh build

# The image's dependencies, pinned with hashes: the runtime and worker extras and the build
# backend, torch the CPU build from pip's find-links folder. The package index alone, not this
# machine's pip config (its local mirrors would end up in the lock); the project's own line
# (the worker extra names inferstack[runtime]) is dropped: the image installs it with --no-deps.
TORCH_LOCK_PIN ?= torch==2.13.0+cpu
TORCH_WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
lock: $(STAMP) ## pin the image's dependencies with hashes (runtime/requirements.lock, pip-tools)
	$(BIN)/pip install -q pip-tools
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND='make lock' \
	  $(BIN)/pip-compile --quiet \
	  --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	  --extra runtime --extra worker --upgrade-package '$(TORCH_LOCK_PIN)' \
	  --index-url https://pypi.org/simple --find-links $(TORCH_WHEELS) \
	  --no-emit-index-url --no-emit-find-links \
	  --output-file runtime/requirements.lock pyproject.toml 2>/dev/null
	sed -i '/^# WARNING: pip install will require/,/^    # via file:/d' runtime/requirements.lock

# The GPU image's lock: seeded from the CPU lock (pip-compile keeps the pins it finds in its
# output file, so both images carry the same versions of everything else), torch the build PyPI
# serves for Linux x86_64 (a CUDA build, no local version) and the NVIDIA libraries it requires,
# every file with its hashes. pip-compile reads metadata and PyPI's listed hashes only; the
# wheels (several GB) are downloaded by `make image-gpu`.
TORCH_GPU_PIN ?= torch==2.13.0
lock-gpu: $(STAMP) ## pin the CUDA image's dependencies with hashes (runtime/requirements-gpu.lock)
	$(BIN)/pip install -q pip-tools
	@test -f runtime/requirements-gpu.lock || cp runtime/requirements.lock runtime/requirements-gpu.lock
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND='make lock-gpu' \
	  $(BIN)/pip-compile --quiet \
	  --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	  --extra runtime --extra worker --upgrade-package '$(TORCH_GPU_PIN)' \
	  --index-url https://pypi.org/simple --no-emit-index-url \
	  --output-file runtime/requirements-gpu.lock pyproject.toml 2>/dev/null
	sed -i '/^# WARNING: pip install will require/,/^    # via file:/d' runtime/requirements-gpu.lock

image-gpu: ## build the CUDA runtime image from runtime/requirements-gpu.lock (MODEL=PATH bakes one)
	scripts/image.sh build-gpu

# checkov in a virtualenv of its own: its pins would fight the project's.
SCAN_VENV := .venv-scan
CHECKOV_VERSION := 3.3.30
$(SCAN_VENV)/.installed:
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)
	@touch $@

scan: $(STAMP) $(SCAN_VENV)/.installed ## judge every stack's Kubernetes objects with checkov
	$(BIN)/python scripts/scan.py --checkov $(SCAN_VENV)/bin/checkov

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(SCAN_VENV) .mypy_cache .ruff_cache .pytest_cache build site *.egg-info
