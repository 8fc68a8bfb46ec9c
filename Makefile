# Every target creates the virtualenv first if it is missing (uv, from PyPI only).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: env test check lint typecheck unit demo bench clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[dev]'
	@touch $@

## The whole suite: lint, format, types, tests (what .ci/run calls).
test: env lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: env
	$(BIN)/mypy

## Deploy a sample app through the bundled rack emulator and print what happened.
demo: env
	$(BIN)/python -m convox_provider.demo

bench: env
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
