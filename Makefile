# drillbook: `make serve` serves the site, `make test` runs every test.
# Both set up what they need on a fresh Debian machine: OS packages, a
# virtualenv with pinned dependencies (constraints.txt), the sandbox.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3
# auto: docker compose when a Docker engine answers, local processes otherwise
SANDBOX_DRIVER ?= auto
# test processes for `make test`, each with its own sandbox (they mostly wait on
# Prometheus's rate windows, so more than the number of cores pays off)
TEST_WORKERS ?= 4
# where `make serve` listens
SERVE_ADDR ?= 127.0.0.1:8000
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test test-compose lint unit runbooks drills site vendor offline print sandbox-up sandbox-down \
	sandbox-logs os-packages os-packages-site lock clean

## The virtualenv, rebuilt when the dependencies or their pins change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || { $(PYTHON) scripts/check-python && $(PYTHON) -m venv $(VENV); }
	@$(PY) scripts/check-python
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

os-packages:
	@scripts/install-os-packages test

os-packages-site:
	@scripts/install-os-packages site

## Serve the site on http://127.0.0.1:8000 (SERVE_ADDR) with live reload.
serve: os-packages-site $(STAMP) vendor
	$(VENV)/bin/mkdocs serve --dev-addr $(SERVE_ADDR)

## Everything: lint, types, then the tests against sandboxes that are stopped
## again however the tests end. The tests run on TEST_WORKERS processes, each with
## a sandbox of its own (replica K for worker K), so drills run side by side.
## The sandboxes start while lint runs; however either ends, they are stopped.
test: os-packages $(STAMP) vendor
	@trap 'wait; $(PY) -m sandbox down --replicas $(TEST_WORKERS)' EXIT; \
	$(PY) -m sandbox up --replicas $(TEST_WORKERS) & sandboxes=$$!; \
	$(MAKE) --no-print-directory lint; \
	wait $$sandboxes; \
	$(PY) -m pytest --sandbox=external -n $(TEST_WORKERS)

## Style, types, and the runbooks' own lint (pages, notebooks, alerts, faults, templates).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/drillbook lint

## The tests that need no sandbox.
unit: $(STAMP)
	$(PY) -m pytest --no-runbooks -m "not sandbox" tests/unit tests/lint tests/architecture tests/docs

## Every runbook notebook against the running sandbox; executed copies land in build/executed.
runbooks: $(STAMP)
	$(PY) -m pytest --sandbox=external notebooks

## Inject every fault and prove its runbook detects and fixes it (needs the running sandbox).
drills: $(STAMP)
	$(PY) -m pytest --sandbox=external -m drill tests/drills

## Optional, not part of `make test` (about 8 minutes, 9 the first time): the notebooks and
## the drills against the compose sandbox, its images built from a Debian base image made
## here (DRILLBOOK_BASE_IMAGE, default drillbook-debian:bookworm). scripts/compose-engine
## installs what is missing, starts a Docker engine of drillbook's own when none answers and
## makes that image (root or sudo). The sandbox has a directory of its own, .sandbox-compose/,
## and is stopped however the tests end; both test runs go ahead, the worse exit code wins.
test-compose: $(STAMP)
	@export DRILLBOOK_BASE_IMAGE="$${DRILLBOOK_BASE_IMAGE:-drillbook-debian:bookworm}"; \
	host=$$(scripts/compose-engine); \
	if [ -n "$$host" ]; then export DOCKER_HOST="$$host"; fi; \
	export DRILLBOOK_SANDBOX_DIR="$(CURDIR)/.sandbox-compose"; unset DRILLBOOK_SANDBOX_STATE; \
	trap '$(PY) -m sandbox down --driver compose' EXIT; \
	project=$$($(PY) -c 'from sandbox._compose import project_name; print(project_name())'); \
	docker compose -f compose.yaml -p "$$project" build; \
	$(PY) -m sandbox up --driver compose; \
	status=0; \
	$(PY) -m pytest --sandbox=external notebooks || status=$$?; \
	$(PY) -m pytest --sandbox=external -m drill tests/drills || status=$$?; \
	exit $$status

## Build the site into site/.
site: $(STAMP) vendor
	$(VENV)/bin/mkdocs build --strict

VENDOR := docs/overrides/vendor
VENDOR_STAMP := docs/assets/vendor/.installed

## Browser libraries the site serves itself, never from a CDN (pinned by package-lock.json),
## and axe-core, which only the browser tests load (from node_modules; never published).
vendor: $(VENDOR_STAMP)
$(VENDOR_STAMP): $(VENDOR)/package.json $(VENDOR)/package-lock.json
	npm ci --prefix $(VENDOR) --ignore-scripts --no-audit --no-fund --loglevel=error
	install -D -m 0644 $(VENDOR)/node_modules/mermaid/dist/mermaid.min.js docs/assets/vendor/mermaid.min.js
	install -D -m 0644 $(VENDOR)/node_modules/@highlightjs/cdn-assets/highlight.min.js docs/assets/vendor/highlight.min.js
	install -D -m 0644 $(VENDOR)/node_modules/iframe-worker/shim/index.js docs/assets/vendor/iframe-worker/shim.js
	@touch $@

## A zip of the site that works from file://, search included: build/drillbook-offline.zip,
## which unpacks into one folder, drillbook-offline/.
offline: vendor $(STAMP)
	rm -rf build/offline-site build/drillbook-offline.zip
	DRILLBOOK_OFFLINE=true $(VENV)/bin/mkdocs build --strict --site-dir build/offline-site
	$(PY) -m drillbook.site.bundle build/offline-site build/drillbook-offline.zip

## Every runbook in one printable PDF, build/runbooks.pdf: page numbers at the foot, a contents
## page with the page of each section, the severity matrix and escalation first, then the
## runbooks, most severe first. Chromium prints it twice (drillbook/site/pdf.py says why).
print: offline
	$(PY) -m drillbook.site.pdf build/offline-site build/runbooks.pdf

sandbox-up: os-packages $(STAMP)
	$(PY) -m sandbox up --driver $(SANDBOX_DRIVER)

sandbox-down: $(STAMP)
	$(PY) -m sandbox down --driver $(SANDBOX_DRIVER)

## Every service's recent log, for a failed CI run.
sandbox-logs: $(STAMP)
	@for service in $$($(PY) -m sandbox status --driver $(SANDBOX_DRIVER) | cut -d' ' -f1); do \
		echo "=== $$service"; $(PY) -m sandbox logs $$service --driver $(SANDBOX_DRIVER) || true; \
	done

## Re-pin every dependency to the newest release (review the diff). `make unit` then fails when
## a new pin no longer admits the oldest Python of requires-python (Debian 12 has 3.11.2):
## pin that package back, or raise requires-python and say so in the README.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^drillbook' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf site build .sandbox $(VENV)
