# Two commands for a newcomer: `make run` (the demo on the embedded default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --quiet --disable-pip-version-check
PYTEST_WORKERS ?= auto

.PHONY: run test lint install install-dev migrate seed worker clean help

help:
	@echo "make run   - install, migrate, seed the demo, serve http://127.0.0.1:8000 with a Celery worker + beat"
	@echo "make test  - install and run the whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)"
	@echo "make lint  - ruff and mypy"

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade "pip>=24"

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_pricing_demo

run: seed
	VENV=$(VENV) bash deploy/run-local.sh

test: install-dev
	# One BLAS/OpenMP thread per worker: xdist already uses every core, and oversubscribed
	# scikit-learn threads made the model tests ten times slower.
	OMP_NUM_THREADS=1 DJANGO_TESTING=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
