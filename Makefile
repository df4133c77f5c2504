# drillbook: `make serve` serves the site, `make test` runs every test.
# Both set up what they need on a fresh Debian machine: OS packages, a
# virtualenv with pinned dependencies (constraints.txt), the sandbox.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test lint site sandbox-up sandbox-down os-packages os-packages-site lock clean

## The virtualenv, rebuilt when the dependencies or their pins change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

os-packages:
	@scripts/install-os-packages test

os-packages-site:
	@scripts/install-os-packages site

## Serve the site on http://127.0.0.1:8000 with live reload.
serve: os-packages-site $(STAMP)
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

## Everything: lint, types, then the tests against a sandbox that is stopped
## again however the tests end.
test: os-packages $(STAMP) lint
	@trap '$(PY) -m sandbox down' EXIT; \
	$(PY) -m sandbox up; \
	$(PY) -m pytest --sandbox=external

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Build the site into site/.
site: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

sandbox-up: os-packages $(STAMP)
	$(PY) -m sandbox up

sandbox-down: $(STAMP)
	$(PY) -m sandbox down

## Re-pin every dependency to the newest release (review the diff).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^drillbook' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf site build .sandbox $(VENV)
