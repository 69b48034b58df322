# Two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint format install install-dev serve migrate seed clean browser-deps messages

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps make a second run reuse what is installed; they change with pyproject.toml.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	mkdir -p var
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 $(PY) manage.py seed_demo

demo: seed
	@echo "Serving the registry at http://$(HOST):$(PORT)/ (Ctrl+C to stop)"
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# Browser tests drive Debian's Chromium; Playwright cannot download its own browser here.
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 chromium; }

test: install-dev browser-deps
	REGISTRY_TESTING=1 $(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Vietnamese catalogue: new strings into locale/vi/LC_MESSAGES/django.po, then compiled
# (needs gettext's msgfmt; the compiled .mo is committed, so installing never needs it).
messages: install
	DEBUG=1 $(PY) manage.py makemessages -l vi --no-obsolete --ignore=$(VENV) --ignore=tests --ignore=benchmarks --ignore=var --ignore=staticfiles
	DEBUG=1 $(PY) manage.py compilemessages -l vi --ignore=$(VENV)

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
