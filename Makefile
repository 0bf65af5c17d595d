# Developer entry points for the petition routing platform.
#
#   make up      start Kafka, PostgreSQL, Prometheus and the services (default ports, .run/)
#   make status  one line per part of the local stack
#   make down    stop exactly what `make up` started
#   make lint    ruff check (the rule set in pyproject.toml) and mypy (strict on the pure modules)
#   make test    run the test suite (integration tests use their own ports and folders;
#                tests/ops runs `promtool check rules` and the alert rules' unit tests)
#   make demo    a few minutes of petitions, department actions and zero reports against
#                `make up`, then checks every Grafana panel query returns data
#
# The local stack is driven by deploy/localstack.py; ports and folders come from the
# PETITION_* environment variables documented there.

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

.PHONY: help venv up up-infra down status lint test bench clean demo FORCE

help:
	@echo "targets: venv up up-infra down status lint test demo bench clean"

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml setup.py $(KERNEL_DIR)/_scores.c $(if $(KERNEL_SO),,FORCE)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@test -f "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" || { \
		echo "Python's C headers are missing (Debian: apt-get install python3-dev); the classifier's kernel needs them"; \
		exit 1; }
	$(VPY) -m pip install --quiet -e '.[dev]'
	@touch $@

up: venv
	$(VPY) deploy/localstack.py up

# Kafka, PostgreSQL and Prometheus only (no migrations, no services).
up-infra: venv
	$(VPY) deploy/localstack.py up --infra-only

# down/status need no install: they only read PID files and stop processes.
down:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) deploy/localstack.py down

status:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) deploy/localstack.py status

# Not `ruff format`: the tree keeps its hand layout (line length 120, checked by ruff E501).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv
	$(VPY) -m pytest -q

# Demo load for the dashboards (needs `make up`): DEMO_SECONDS and DEMO_RATE tune it.
DEMO_SECONDS ?= 180
DEMO_RATE    ?= 1
demo: venv
	$(VPY) deploy/demo.py --duration $(DEMO_SECONDS) --rate $(DEMO_RATE) \
		--base-url http://127.0.0.1:$${PETITION_HTTP_PORT:-8080} \
		--kafka-bootstrap 127.0.0.1:$${PETITION_KAFKA_PORT:-9092} --poison 2
	$(VPY) deploy/grafana/check_panels.py --prometheus http://127.0.0.1:$${PETITION_PROMETHEUS_PORT:-9090} --wait 60

bench: venv
	$(VPY) -m bench

# Removes build artefacts and caches. Refuses while the local stack runs, and keeps
# .run/ (data, secrets) and the venv: `rm -rf .run .venv` by hand after `make down`.
clean:
	@if $(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) deploy/localstack.py status | grep -q ' running '; then \
		echo "local stack is running: make down first"; exit 1; fi
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench-results $(KERNEL_SO)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
