# Airflow 3 on Kubernetes with Azure Blob Storage: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install test lint format bench lock

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## Install every pinned tool into the repo (.venv, node_modules, .tools)
	scripts/bootstrap all

test: install lint ## Install, lint, and run the whole test suite (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## XCom round-trip benchmark: writes docs/benchmarks/xcom.md and .png
	$(PY) scripts/bench_xcom.py

lock: ## Re-resolve requirements.lock from requirements*.txt (universal: Python 3.11 and 3.12)
	$(VENV)/bin/uv pip compile requirements.txt requirements-dev.txt --universal --python-version 3.11 \
	  --no-header --custom-compile-command "make lock" -o requirements.lock
