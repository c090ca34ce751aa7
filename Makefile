# extproc task runner. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install up test lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# xds-protos ships an older copy of the OTLP protocol files; whichever package pip
	@# installs last wins, so opentelemetry-proto's own files are put back after it.
	$(BIN)/pip install --quiet --force-reinstall --no-deps \
	  "opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	$(BIN)/python -c 'from extproc.tracing.settings import opentelemetry_problem as p; import sys; sys.exit(p())'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install extproc with its test and dev tools

up: $(STAMP) ## run Envoy, authz, the processor, approvals, the demo model and OIDC issuer on embedded defaults
	$(BIN)/extproc up

test: $(STAMP) ## run the test suite (unit, in-process gRPC, and e2e through the real Envoy)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff, mypy --strict and the import contract (the core never imports gRPC)
	$(BIN)/ruff check extproc tests bench
	$(BIN)/ruff format --check extproc tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## format and auto-fix
	$(BIN)/ruff format extproc tests bench
	$(BIN)/ruff check --fix extproc tests bench

bench: $(STAMP) ## the benchmark through the real Envoy, recorded in bench/RESULTS.md (about 3 min)
	$(BIN)/python bench/run.py

clean: ## remove the virtualenv and demo state
	rm -rf $(VENV) .extproc
