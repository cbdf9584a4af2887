# ECR Portal: `make run` starts everything, `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
DEMO_STAMP := $(VENV)/.demo-installed
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: help install run demo test lint format lock clean screenshots run-ports demo-ports

# make run PORT=8001: another port for the portal (ECRPORTAL_BIND and ECRPORTAL_SITE_URL,
# unless set in the environment).
PORT ?= 8000

help:
	@echo "make run    set up .venv, migrate, start web + worker + beat on http://127.0.0.1:8000 (PORT=8001: another port)"
	@echo "make install  set up .venv with the runtime dependencies only (make run does this first)"
	@echo "make demo   like run, against a local AWS stand-in with a seeded demo task"
	@echo "make test   set up .venv, run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, import contracts, mypy, makemigrations --check"
	@echo "make format ruff format and ruff check --fix"
	@echo "make lock   re-resolve requirements*.lock from pyproject.toml"
	@echo "make screenshots  take the browser tests' screenshots and copy the README's to docs/screenshots"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "ECR Portal needs Python 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The runtime lock is installed on its own, always: the dev lock is a superset that would
# hide a package missing from it (.ci/run and tests/integration/test_make_run.py prove it
# alone).
$(RUNTIME_STAMP): requirements.lock | $(BIN)/python
	$(PIP_INSTALL) -r requirements.lock
	@touch $@

$(DEV_STAMP): requirements-dev.lock $(RUNTIME_STAMP)
	$(PIP_INSTALL) -r requirements-dev.lock
	@touch $@

# The AWS stand-in's few packages (moto, flask), not the development tools.
$(DEMO_STAMP): requirements-demo.lock $(RUNTIME_STAMP)
	$(PIP_INSTALL) -r requirements-demo.lock
	@touch $@

install: $(RUNTIME_STAMP)

run demo run-ports demo-ports: export ECRPORTAL_BIND ?= 127.0.0.1:$(PORT)
run demo run-ports demo-ports: export ECRPORTAL_SITE_URL ?= http://127.0.0.1:$(PORT)
# Told how to choose another port: PORT=, unless ECRPORTAL_BIND comes from the environment.
PORT_HINT = $(if $(filter environment%,$(origin ECRPORTAL_BIND)),,--port-variable PORT)

# Before installing or starting anything: is a port taken, and by what?
run-ports:
	@$(PYTHON) -m devtools.serve --check-ports $(PORT_HINT) run

# devtools/serve.py prints the address and the one-time password once all is up, and
# stops all on Ctrl-C.
run: run-ports $(RUNTIME_STAMP)
	@$(BIN)/python manage.py init_data
	@$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/python -m devtools.serve Procfile

# The portal against a local AWS stand-in (moto on 127.0.0.1), in its own data folder.
demo demo-ports: export ECRPORTAL_DATA_DIR ?= $(abspath var/demo)
demo demo-ports: export ECRPORTAL_DEMO_AWS_PORT ?= 5000
demo: export ECRPORTAL_AWS_ENDPOINT_URL = http://127.0.0.1:$(ECRPORTAL_DEMO_AWS_PORT)

demo-ports:
	@$(PYTHON) -m devtools.serve --check-ports $(PORT_HINT) --aws-port $(ECRPORTAL_DEMO_AWS_PORT) demo

demo: demo-ports $(DEMO_STAMP)
	@$(BIN)/python manage.py init_data
	@$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/python -m devtools.serve --demo Procfile.demo

# In parallel: a pytest-xdist worker per core, each test to the next free worker (a few files
# whole), the longest first (tests/conftest.py). PYTEST_XDIST= runs in one process;
# PYTEST_ARGS adds options (e.g. -k, a folder).
PYTEST_XDIST ?= -n auto --dist loadgroup
test: $(DEV_STAMP)
	$(BIN)/python manage.py init_data --verbosity 0
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python manage.py init_data --verbosity 0
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(DEV_STAMP)
	$(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --generate-hashes \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --generate-hashes \
		--no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml
	$(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --generate-hashes \
		--no-emit-index-url --no-emit-find-links --extra demo -o requirements-demo.lock pyproject.toml

# The README's pictures: the browser tests take them; these are copied to docs/.
DOC_SCREENSHOTS = dashboard task task-form connector connector-web-identity runs audit-log phone-dashboard phone-task team users task-failed-run-aws-answer api-reference task-every-error-at-once confirm-phone job-revealed
screenshots: $(DEV_STAMP)
	$(BIN)/python -m pytest -q tests/browser/test_browser_main_flow.py \
		tests/browser/test_browser_connectors.py tests/browser/test_accessibility.py \
		tests/browser/test_browser_teams.py tests/browser/test_browser_people.py \
		tests/browser/test_browser_plain_language.py tests/browser/test_browser_states.py \
		tests/browser/test_browser_confirmations.py tests/browser/test_browser_api_and_scopes.py
	for name in $(DOC_SCREENSHOTS); do cp test-artifacts/screenshots/$$name.png docs/screenshots/; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var/static test-artifacts
