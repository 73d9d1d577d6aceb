# The README's two commands: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIB := local-kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched

.PHONY: help install monitoring-tools lock kafka-jars test lint unit integration demo bench soak kafka-up kafka-down kafka-status clean

help:
	@echo "make demo    run the whole pipeline locally (cluster, publisher, alerter, Slack stand-in)"
	@echo "make test    lint, type-check and run the whole suite against a real local Kafka cluster"
	@echo "make bench   throughput and latency benchmarks (prints tables)"
	@echo "make soak    bounded soak run (SOAK_MINUTES, default 10)"
	@echo "make install set up .venv, the Kafka jars and Prometheus/Alertmanager (both commands do this)"
	@echo "make lock    regenerate requirements.lock and requirements-dev.lock (hashes) from pyproject.toml"

install: $(STAMP) $(KAFKA_STAMP) monitoring-tools

# Every dependency from the lock, each file checked against its sha256; then the project itself,
# editable, which pip cannot hash-check: --no-deps (the lock already installed everything) and no
# build isolation (the locked setuptools builds it, nothing unhashed is downloaded).
$(STAMP): pyproject.toml requirements-dev.lock scripts/check-prereqs
	@scripts/check-prereqs python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# The Debian packages prometheus and prometheus-alertmanager, when missing and run as root.
monitoring-tools:
	@scripts/install-monitoring-tools

lock:
	scripts/lock

$(KAFKA_STAMP): local-kafka/pom.xml
	@scripts/check-prereqs java maven
	rm -rf $(KAFKA_LIB)
	mvn -q -B -f local-kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime
	@touch $@

kafka-jars: $(KAFKA_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	scripts/with-local-kafka scripts/run-pytest tests

unit: $(STAMP)
	scripts/run-pytest tests/unit

integration: install
	scripts/with-local-kafka scripts/run-pytest tests/integration

demo: install
	scripts/with-local-kafka $(BIN)/python scripts/demo.py

bench: install
	scripts/with-local-kafka $(BIN)/python -m bench

soak: install
	scripts/with-local-kafka $(BIN)/python -m bench.soak

kafka-up: install
	scripts/local-kafka up

kafka-down:
	scripts/local-kafka down

# A stopped cluster is an answer, not a failure (the script itself exits 3 then, for scripts to test).
kafka-status:
	@scripts/local-kafka status || [ $$? -eq 3 ]

clean:
	-scripts/local-kafka reset
	rm -rf $(VENV) $(KAFKA_LIB) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
