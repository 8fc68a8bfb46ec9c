# Every target creates the virtualenv first if it is missing (uv, from PyPI only).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The Airflow a virtualenv gets: the newest 3.3.x by default. `make test-floor` builds a second
# virtualenv on the declared floor, the newest 3.1.x (pyproject.toml: apache-airflow>=3.1).
AIRFLOW_SPEC ?= apache-airflow==3.3.*
FLOOR_VENV ?= .venv-af31
FLOOR_AIRFLOW_SPEC ?= apache-airflow==3.1.*
# One stamp per Airflow spec, so that changing AIRFLOW_SPEC reinstalls.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(AIRFLOW_SPEC)' | cksum | cut -d' ' -f1)
# Where `make screenshot` writes the form the README shows.
SCREENSHOT ?= docs/connection-form.png

# pytest options of `make system`: each scenario may wait minutes (the first one also starts
# Airflow); the thread method can stop a test whatever signal handlers Airflow installed.
SYSTEM_PYTEST_ARGS ?= -rs --durations=0 -o timeout=600 -o timeout_method=thread

.PHONY: env test test-floor check lint typecheck unit system system-floor screenshot demo bench clean docs

env: $(STAMP)

$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[dev,ui,docs]' '$(AIRFLOW_SPEC)'
	@rm -f $(VENV)/.installed*
	@touch $@

## The whole suite (what .ci/run calls): lint, format, types, the tests on the newest Airflow
## 3.3.x, then the tests again on the declared floor, Airflow 3.1.x, in its own virtualenv.
test: env lint typecheck docs unit test-floor

## The test suite alone, in $(VENV).
unit: env
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The test suite again, in its own virtualenv on the floor Airflow (3.1.x). Lint and types are
## checked once, by `make test`, against the newest Airflow.
test-floor:
	$(MAKE) --no-print-directory unit VENV=$(FLOOR_VENV) AIRFLOW_SPEC='$(FLOOR_AIRFLOW_SPEC)'

## The system tests alone (tests/system): a real Airflow as separate processes (api-server,
## scheduler with the Local and Celery executors, dag-processor, two triggerers, two Celery
## workers) on Debian's PostgreSQL and Redis (apt-get install postgresql redis-server), driving
## the example DAGs through the REST API against the rack emulator. `.ci/run` runs it after
## `make test`.
system: env
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[dev,ui,system]' '$(AIRFLOW_SPEC)'
	CONVOX_SYSTEM_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider $(SYSTEM_PYTEST_ARGS) tests/system

## The system tests on the floor Airflow (3.1.x), in $(FLOOR_VENV). Not part of CI (see
## tests/system/README.md for what it costs).
system-floor:
	$(MAKE) --no-print-directory system VENV=$(FLOOR_VENV) AIRFLOW_SPEC='$(FLOOR_AIRFLOW_SPEC)'

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: env
	$(BIN)/mypy

## The documentation site, into site/ (warnings fail the build).
docs: env
	PYTHONPATH=$(CURDIR) $(BIN)/mkdocs build --strict --quiet --site-dir site

## Refresh the README's screenshot of the Convox connection form (real browser, tests/ui).
screenshot: env
	CONVOX_UI_SCREENSHOT='$(abspath $(SCREENSHOT))' $(BIN)/pytest -q tests/ui

## Deploy a sample app through the bundled rack emulator and print what happened.
demo: env
	$(BIN)/python demo/run_demo.py

bench: env
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[dev,bench]' '$(AIRFLOW_SPEC)'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .mypy_cache .ruff_cache .pytest_cache site
