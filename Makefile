# Airflow 3 on Kubernetes with Azure Blob Storage: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install test test-fast lint format bench bench-large bench-local bench-metrics bench-preview lifecycle-policy lock up down status demo push-dags-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: ## Install every pinned tool into the repo (.venv, node_modules, .tools)
	scripts/bootstrap all

test: install lint ## Install, lint, and run the whole test suite (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

# The tests that need no Docker engine and no cluster (the image, cluster and kind folders): minutes, not most of an hour.
FAST_IGNORE := --ignore=tests/image --ignore=tests/cluster --ignore=tests/kind

test-fast: ## The inner loop: lint and every test but the image, cluster and kind ones (no Docker, no Kubernetes)
	scripts/bootstrap python && scripts/bootstrap node && scripts/bootstrap helm && scripts/bootstrap postgres
	scripts/bootstrap browser && scripts/bootstrap prometheus
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(FAST_IGNORE) $(PYTEST_ARGS)

lint: install ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Local stack without Docker (scripts/local-stack): DB=sqlite|postgres, DETACH=1 to run in the background.
DB ?= sqlite
DETACH ?=

up: install ## Local stack, no Docker: Azurite, a DB, a Git repo of DAGs, Airflow 3 (Ctrl-C stops; DETACH=1)
	scripts/local-stack up --db $(DB) $(if $(DETACH),--detach)

down: ## Stop the local stack started with DETACH=1
	scripts/local-stack down

status: ## Which local-stack processes run, and the UI URL
	scripts/local-stack status

demo: ## Run example_dataframe_pipeline on the local stack; show task states, XCom references, blobs
	scripts/local-stack demo

push-dags-local: ## Commit ./dags to the local stack's Git repository (Airflow picks it up within ~10 s)
	scripts/local-stack push-dags

bench: install ## XCom round-trip benchmark: writes docs/benchmarks/xcom.md and .png
	$(PY) scripts/bench_xcom.py

bench-large: install ## XCom with a 1 GB DataFrame: backend vs floor memory -> docs/benchmarks/xcom-large.md
	$(PY) scripts/bench_xcom.py --large --cold-repeat 3

bench-local: install ## Local stack: git push -> DAG runnable, and the DataFrame DAG's run time -> docs/benchmarks
	$(PY) scripts/bench_local_stack.py

bench-metrics: install ## metrics.enabled's cost: per-task seconds and per XCom call, metrics on vs off -> docs/benchmarks
	$(PY) scripts/bench_metrics.py

bench-preview: install ## XCom preview of 1M/10M-row frames: latency, bytes read, memory vs pulling whole -> docs/benchmarks
	$(PY) scripts/bench_xcom_preview.py

lifecycle-policy: ## Azure lifecycle-management policy (JSON on stdout) for the log and XCom blobs of VALUES=<values.yaml>
	@$(PY) scripts/lifecycle_policy.py $(foreach file,$(VALUES),--values $(file))

# requirements.lock pins the venv and the stand-in base image; requirements-image.lock, what the Dockerfile installs, is
# requirements.txt alone at the same versions with a sha256 of every file (pip's --require-hashes needs them inline).
lock: ## Re-resolve requirements.lock and requirements-image.lock from requirements*.txt (Python 3.11 and 3.12)
	$(VENV)/bin/uv pip compile requirements.txt requirements-dev.txt --universal --python-version 3.11 \
	  --no-python-downloads --no-header --custom-compile-command "make lock" -o requirements.lock
	$(VENV)/bin/uv pip compile requirements.txt --constraint requirements.lock --universal --python-version 3.11 \
	  --generate-hashes --no-python-downloads --no-header --custom-compile-command "make lock" -o requirements-image.lock

# Images, clusters and the one deploy path (docs/cluster.md, docs/kind.md). KIND_ARGS=--dry-run / DEPLOY_ARGS=--dry-run
# print the commands instead of running them.
KIND_ARGS ?=
DEPLOY_ARGS ?=
REMOTE ?=

.PHONY: images cluster-up cluster-down cluster-status cluster-smoke deploy smoke ui push-dags
.PHONY: kind-up kind-down kind-smoke kind-ui bench-cluster bench-cluster-suite bench-lanes bench-cluster-load

images: install ## Build the stand-ins (git-sync from GITSYNC_SOURCE=<its source tarball>) and airflow-azblob:local (root on Debian)
	scripts/localcluster/images build

cluster-up: install ## Local Kubernetes as processes of this machine (root on Debian); prints its KUBECONFIG
	scripts/localcluster/cluster up

cluster-down: ## Stop the local cluster and remove what it added to this machine (PURGE=1: its image cache too)
	scripts/localcluster/cluster down $(if $(PURGE),--purge)

cluster-status: ## Which local-cluster processes run, and the node's state
	scripts/localcluster/cluster status

cluster-smoke: ## Run example_dataframe_pipeline on the local cluster through the REST API
	KUBECONFIG=$(CURDIR)/.local/cluster/kubeconfig scripts/deploy $(DEPLOY_ARGS) smoke

deploy: install ## Install into the cluster KUBECONFIG points at: images, Git server + DAGs, helm --wait, helm test
	scripts/deploy $(DEPLOY_ARGS) $(if $(PROFILE),--profile $(PROFILE)) install

smoke: ## Run example_dataframe_pipeline on the cluster KUBECONFIG points at (REST API, blobs)
	scripts/deploy $(DEPLOY_ARGS) smoke

ui: ## Port-forward the UI of the cluster KUBECONFIG points at to localhost:8080, print the login
	scripts/deploy $(DEPLOY_ARGS) ui

push-dags: ## Commit ./dags and push it: to the in-cluster Git server of the current cluster, or to REMOTE=<git url>
	@if [ -n "$(REMOTE)" ]; then scripts/push-dags --source dags "$(REMOTE)"; else scripts/deploy $(DEPLOY_ARGS) push-dags; fi

bench-cluster: install ## Local cluster: cluster-up, image builds, install, per-task timings, DAG clone cost -> docs
	$(PY) scripts/bench_cluster.py

bench-cluster-suite: install ## The cluster suite as a benchmark: resources per container, failover, rollout -> docs
	$(PY) scripts/bench_cluster_suite.py

bench-lanes: install ## Local cluster: a task pod against its floor, DAGs by git-sync vs in the image, the supervisor's exit, the fast lane -> docs
	$(PY) scripts/bench_lanes.py

bench-cluster-load: install ## Local cluster: a 300-task run per worker_pods_creation_batch_size, pods/s, DB, UI latency -> docs
	$(PY) scripts/bench_cluster_load.py

# kind (docs/kind.md): needs docker, kind, kubectl and helm on your machine.
kind-up: ## kind: create the cluster, then deploy (image build+load, Git server + DAGs, helm --wait, helm test)
	scripts/kind $(KIND_ARGS) up

kind-down: ## kind: delete the cluster
	scripts/kind $(KIND_ARGS) down

kind-smoke: ## kind: run example_dataframe_pipeline via the REST API, show its blobs
	scripts/kind $(KIND_ARGS) smoke

kind-ui: ## kind: port-forward the Airflow UI to localhost:8080, print the login
	scripts/kind $(KIND_ARGS) ui
