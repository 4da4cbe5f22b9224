# Everything runs from the project's own virtualenv (.venv) and PyPI packages: no Docker, no
# network beyond PyPI. `make demo` and `make test` are the two commands; see README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SCALE ?= 1
BENCH_ARGS ?=
AIRFLOW_PORT ?= 8080
CELERY_BROKER_URL ?= redis://127.0.0.1:6379/0
# The whole tree is held to `ruff format` (line length 120, pyproject.toml).
FORMAT_PATHS := .

.PHONY: help venv demo test lint airflow airflow-celery bench services-up services-down services-status clean distclean

help:
	@echo "make demo             seed a small shop, audit, sweep and audit again through Airflow (embedded services)"
	@echo "make test             ruff + pytest against real PostgreSQL, S3 (moto server) and Airflow (PYTEST_ARGS=...)"
	@echo "make airflow          the Airflow UI (airflow standalone) over the same services; prints the login"
	@echo "make airflow-celery   the same on the CeleryExecutor: scheduler, DAG processor, API server, triggerer,"
	@echo "                      two Celery workers; Redis at CELERY_BROKER_URL=$(CELERY_BROKER_URL)"
	@echo "make bench            the benchmark: ratios against baselines in one run (SCALE=$(SCALE), BENCH_ARGS=...)"
	@echo "make services-up      start the embedded PostgreSQL, moto S3 server and SMTP sink; write .local/env"
	@echo "make services-down    stop them"
	@echo "make venv             create .venv and install requirements-dev.txt and the package"
	@echo "make clean            stop the services, remove .local/ and .airflow/ (distclean: .venv too)"

# The stamp makes a second `make` instant; it is redone when a requirements file changes.
venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  echo "Creating $(VENV) with $(PYTHON)"; \
	  $(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version' ; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

# Types: mypy --strict on the library (the files and settings are in pyproject.toml [tool.mypy]).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check $(FORMAT_PATHS)
	$(BIN)/mypy

# pytest's exit code 5 (no test collected) is a failure here, not a pass.
test: lint
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "make test: no /usr/bin/chromium and /usr/bin/chromedriver: the Governance page's browser tests are skipped;" \
	       "install them with: sudo apt-get install -y chromium chromium-driver (.ci/run does it as root)" >&2; \
	fi
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

airflow: venv
	$(BIN)/python scripts/devservices.py airflow --port $(AIRFLOW_PORT)

# Redis must answer at CELERY_BROKER_URL (the script says how to start it); the metadata database is
# `airflow` on the same PostgreSQL server. Ctrl-C or `make services-down` stops every component.
airflow-celery: venv
	$(BIN)/python scripts/devservices.py airflow-celery --port $(AIRFLOW_PORT) --broker $(CELERY_BROKER_URL)

# The benchmark brings its own services (GOVERNANCE_DB_URL, else 127.0.0.1:5432, else embedded).
bench: venv
	$(BIN)/python bench/run.py --scale $(SCALE) $(BENCH_ARGS)

services-up: venv
	$(BIN)/python scripts/devservices.py up

services-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/devservices.py down; fi

services-status: venv
	$(BIN)/python scripts/devservices.py status

clean: services-down
	rm -rf .local .airflow .pytest_cache .ruff_cache .hypothesis

distclean: clean
	rm -rf $(VENV)
