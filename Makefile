# Dumas developer commands. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY = $(VENV)/bin/python
# python3.11 is what the pins are tested with; python3 is the fallback.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYTEST_ARGS ?=

# Re-installs when a requirements file or the project metadata changes.
VENV_STAMP = $(VENV)/.dumas-installed

.PHONY: help venv run up down status test test-unit test-integration test-e2e lint clean

help: ## List the targets
	@echo "Dumas: make <target>   (VENV=$(VENV); PYTEST_ARGS passes options to pytest)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV_STAMP) ## Create/refresh the virtualenv from requirements-dev.txt

$(VENV_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 (or python3) not found" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e . --no-deps
	touch $@

run: venv ## Run the four services in the foreground (Ctrl-C stops them)
	$(PY) -m services.supervisor run

up: venv ## Start the four services in the background; returns when all are healthy
	$(PY) -m services.supervisor up

down: venv ## Stop the services started by `make up`
	$(PY) -m services.supervisor down

status: venv ## Show pid and /health of each service
	$(PY) -m services.supervisor status

test: venv ## Run all tests (tests/); e.g. make test PYTEST_ARGS="-x -k routing"
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: venv ## Unit tests only (no broker, no database)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-integration: venv ## Integration tests (RabbitMQ, PostgreSQL)
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

test-e2e: venv ## End-to-end tests (the four services as processes)
	$(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)

lint: venv ## ruff check
	$(VENV)/bin/ruff check services shared tests bench deploy

.PHONY: bench
BENCH_ARGS ?=
bench: venv ## Benchmark the whole flow on PostgreSQL (bounded: <= 15 min); BENCH_ARGS=--quick
	timeout --signal=TERM --kill-after=30 900 $(PY) -m bench.run $(BENCH_ARGS)

.PHONY: audit
# Known vulnerabilities in what `make venv` installed from requirements*.txt (pip-audit, PyPI
# advisory data). AUDIT_ARGS=--strict also fails when a package could not be checked; ignored
# advisories (each justified in docs/security.md) go in AUDIT_IGNORE as --ignore-vuln ID.
AUDIT_IGNORE ?=
AUDIT_ARGS ?=
audit: venv ## Audit the installed dependencies for known vulnerabilities (pip-audit; network)
	$(VENV)/bin/pip-audit --local --skip-editable --vulnerability-service pypi \
		--progress-spinner off $(AUDIT_IGNORE) $(AUDIT_ARGS)

clean: ## Stop services started by `make up`, remove var/ and caches
	@if [ -x $(PY) ]; then $(PY) -m services.supervisor down; fi
	rm -rf var .pytest_cache .ruff_cache build *.egg-info test-artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: chaos
# Faults under load (docs/reliability.md, "make chaos"): every service SIGKILLed twice, RabbitMQ
# stopped once (rabbitmqctl stop_app: every user of the broker notices; --broker-outage proxy
# touches only this run), this run's databases made unavailable once (--db-outage restart: a
# real pg_ctlcluster restart). CHAOS_ARGS e.g. "--duration 600 --seed 42 --rate 5", "--short".
CHAOS_ARGS ?=
chaos: venv ## Complaints under SIGKILLs, broker and database outages; lost/duplicated table
	timeout --signal=TERM --kill-after=60 1800 $(PY) -m tests.chaos.run $(CHAOS_ARGS)
