# The native stack and its checks. The same targets run locally and in CI (.ci/run).
SHELL := /bin/bash
# The same directory heartbeat-ops uses (HEARTBEAT_VAR_DIR, default var/).
VAR   ?= $(or $(HEARTBEAT_VAR_DIR),var)
VENV  := $(VAR)/venv
OPS   := $(VENV)/bin/heartbeat-ops
PY    := $(VENV)/bin/python

.PHONY: help install up infra down clean status logs test test-unit lint bench soak compose-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## install Debian packages, the virtualenv and JVM jars (skips what is current)
	@bash ops/install.sh

up: install  ## start the whole stack and wait until every part is healthy
	@$(OPS) up

infra: install  ## start only PostgreSQL and Kafka (what the tests need)
	@$(OPS) up --infra-only

down:  ## stop every process `make up` started; data is kept
	@if [ -x $(OPS) ]; then $(OPS) down; else echo "stack was not installed"; fi

clean:  ## stop the stack and delete its data, logs and checkpoints
	@if [ -x $(OPS) ]; then $(OPS) clean; fi

status:  ## each component up or down, with its address
	@$(OPS) status

logs:  ## where each component writes its log
	@$(OPS) logs

TEST_WORKERS ?= 3
test: install  ## the whole suite in TEST_WORKERS processes, each on a PostgreSQL and Kafka of its own (tests/support/world.py); then the live-stack check
	@$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
	@$(VENV)/bin/pytest -p no:xdist --live-snapshot tests/test_live_stack_untouched.py

test-unit: install  ## only the tests that need no services
	@$(VENV)/bin/pytest -m unit

lint: install  ## ruff
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

bench: infra  ## measure throughput and latency; prints figures
	@$(PY) -m benchmarks $(BENCH)

SOAK_RATE    ?= 100
SOAK_MINUTES ?= 30
soak: infra  ## steady load for SOAK_MINUTES at SOAK_RATE/s: lag, memory over time, ledger (not in CI)
	@$(PY) -m tests.soak --rate $(SOAK_RATE) --minutes $(SOAK_MINUTES)

compose-test:  ## the stack in docker compose, end to end (installs Docker; see docker/compose-test.sh)
	@bash docker/compose-test.sh
