# Developer entry points for the petition routing platform.
#
#   make prepare install or fetch what the local stack and the browser tests need and this machine
#                lacks (Debian's postgresql, prometheus and chromium packages, a Chinese font, the
#                Kafka jars, axe-core); the only step that changes the machine, run first by
#                `make up`, `make test` and `make bench` (quick when everything is there)
#   make up      start Kafka, PostgreSQL, Prometheus and the services (default ports, .run/)
#   make status  one line per part of the local stack
#   make down    stop exactly what `make up` started
#   make lint    ruff check (the rule set in pyproject.toml), mypy (strict on the pure modules) and
#                import-linter (the architecture's contracts: no service imports another, pure layers stay pure)
#   make test    run the test suite (integration tests use their own ports and folders;
#                tests/ops runs `promtool check rules` and the alert rules' unit tests)
#   make demo    a few minutes of petitions, department actions and zero reports against
#                `make up`, then checks every Grafana panel query returns data
#
# The local stack is the package deploy/stack (python -m deploy.stack prepare|up|down|status);
# ports and folders come from the PETITION_* environment variables (deploy/stack/config.py).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# Stamp: the editable install is redone when pyproject.toml or setup.py changes, when the
# classifier's C kernel changes (the install compiles it into a module beside its source),
# and when that module is missing.
VENV_STAMP := $(VENV)/.installed
KERNEL_DIR := services/router/classification
KERNEL_SO  := $(wildcard $(KERNEL_DIR)/_scores.*.so)

.PHONY: help venv prepare up up-infra down status lint test bench chaos clean demo FORCE

help:
	@echo "targets: venv prepare up up-infra down status lint test chaos demo bench clean"

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml setup.py $(KERNEL_DIR)/_scores.c $(if $(KERNEL_SO),,FORCE)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@test -f "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" || { \
		echo "Python's C headers are missing (Debian: apt-get install python3-dev); the classifier's kernel needs them"; \
		exit 1; }
	$(VPY) -m pip install --quiet -e '.[dev]'
	@touch $@

# prepare/down/status need no install (the standard library only): prepare installs Debian
# packages and fetches the Kafka jars and axe-core where missing, down/status read PID files.
prepare:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) -m deploy.stack prepare

up: venv prepare
	$(VPY) -m deploy.stack up

# Kafka, PostgreSQL and Prometheus only (no migrations, no services).
up-infra: venv prepare
	$(VPY) -m deploy.stack up --infra-only

down:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) -m deploy.stack down

status:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) -m deploy.stack status

# Not `ruff format`: the tree keeps its hand layout (line length 120, checked by ruff E501).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The integration tests' broker and database (deploy/stack/pytest_plugin.py) need what
# `prepare` installs; the fixtures only find it.
test: venv prepare
	$(VPY) -m pytest -q

# Demo load for the dashboards (needs `make up`): DEMO_SECONDS and DEMO_RATE tune it.
DEMO_SECONDS ?= 180
DEMO_RATE    ?= 1
demo: venv
	$(VPY) -m deploy.demo --duration $(DEMO_SECONDS) --rate $(DEMO_RATE) \
		--base-url http://127.0.0.1:$${PETITION_HTTP_PORT:-8080} \
		--kafka-bootstrap 127.0.0.1:$${PETITION_KAFKA_PORT:-9092} --poison 2
	$(VPY) -m deploy.grafana.check_panels --prometheus http://127.0.0.1:$${PETITION_PROMETHEUS_PORT:-9090} --wait 60

bench: venv prepare
	$(VPY) -m bench

# Chaos under load for MINUTES (default 20): tests/integration/test_chaos.py at full length,
# printing its counts (accepted, routed, lost, duplicated, kills of each kind, recovery times).
MINUTES ?= 20
chaos: venv prepare
	PETITION_CHAOS_SECONDS=$$(( $(MINUTES) * 60 )) $(VPY) -m pytest -q -s -p no:cacheprovider \
		tests/integration/test_chaos.py

# Removes build artefacts and caches. Refuses while the local stack runs, and keeps
# .run/ (data, secrets) and the venv: `rm -rf .run .venv` by hand after `make down`.
clean:
	@if $(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) -m deploy.stack status | grep -q ' running '; then \
		echo "local stack is running: make down first"; exit 1; fi
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench-results $(KERNEL_SO)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
