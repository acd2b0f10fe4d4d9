# Run and test the platform on a plain Debian machine (no Docker): `make up`, `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# This machine's pip config names local index folders that do not exist; pip warns about each.
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither" || true; }

.PHONY: venv install broker up test lint clean

venv: $(BIN)/pip

$(BIN)/pip:
	@if ! $(PY) -c 'import ensurepip, venv' 2>/dev/null; then \
	    if [ "$$(id -u)" -ne 0 ]; then \
	        echo "$(PY) has no venv module: install python3-venv (apt-get)" >&2; exit 1; \
	    fi; \
	    apt-get update -q >/dev/null; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; \
	fi
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools<82' wheel $(PIP_QUIET)

install: $(VENV)/.installed

# Reinstall only when pyproject.toml changed since the last install. PYTHONWARNINGS hides
# setuptools' notice about editable installs, printed on every build.
$(VENV)/.installed: pyproject.toml | $(BIN)/pip
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[test,bench]' $(PIP_QUIET)
	@touch $@

broker:
	@bash scripts/ensure-rabbitmq.sh

up: venv install broker
	$(BIN)/grassroots up

test: venv install broker
	@bash scripts/ensure-postgres.sh
	@bash scripts/ensure-faketime.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

clean:
	rm -rf var/
