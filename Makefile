# The README's two commands: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIB := local-kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched

.PHONY: docs help install monitoring-tools lock kafka-jars test lint unit integration demo bench soak kafka-up kafka-down kafka-status clean

# Every target carries a `## what it does` comment; `make help` lists them all from there, so none is left out.
help: ## list the targets (this text)
	@echo "usage: make TARGET [ARGS='...'] [WHICH='...']"
	@awk -F ':.*## ' '/^[a-z-]+:.*## /{printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) $(KAFKA_STAMP) monitoring-tools ## set up .venv, the Kafka jars and Prometheus/Alertmanager (demo and test do it too)

# Every dependency from the lock, each file checked against its sha256; then the project itself,
# editable, which pip cannot hash-check: --no-deps (the lock already installed everything) and no
# build isolation (the locked setuptools builds it, nothing unhashed is downloaded).
$(STAMP): pyproject.toml requirements-dev.lock scripts/check-prereqs
	@scripts/check-prereqs python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# The Debian packages prometheus and prometheus-alertmanager, when missing and run as root.
monitoring-tools: ## install the Debian packages prometheus and prometheus-alertmanager when missing (as root)
	@scripts/install-monitoring-tools

lock: ## regenerate requirements.lock and requirements-dev.lock (with hashes) from pyproject.toml
	scripts/lock

$(KAFKA_STAMP): local-kafka/pom.xml
	@scripts/check-prereqs java maven
	rm -rf $(KAFKA_LIB)
	@# Maven writes colour resets even in batch mode (-B) and with style.color=never: strip them.
	set -o pipefail; mvn -q -B -Dstyle.color=never -f local-kafka/pom.xml dependency:copy-dependencies \
	  -DoutputDirectory=lib -DincludeScope=runtime 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
	@touch $@

kafka-jars: $(KAFKA_STAMP) ## fetch the Kafka jars with Maven into local-kafka/lib

docs: $(STAMP) ## write the README's settings tables from the settings code (what --help prints)
	$(BIN)/python scripts/settings-docs

lint: $(STAMP) ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint ## lint, type-check and run the whole suite against a real local Kafka cluster
	scripts/with-local-kafka scripts/run-pytest tests

unit: $(STAMP) ## the fast unit tests only (no cluster)
	scripts/run-pytest tests/unit

integration: install ## the integration tests against the local cluster
	scripts/with-local-kafka scripts/run-pytest tests/integration

demo: install ## the whole pipeline in the foreground, Ctrl-C stops it; options: ARGS='--duration 60 --until-alerts 3'
	@$(BIN)/python scripts/demo.py $(ARGS)

bench: install ## benchmarks on a freshly reset cluster, then their targets (exit 1 if one is NOT MET); one part: WHICH=publisher|alerter|forecast|state
	$(BIN)/python -m bench $(WHICH)

soak: install ## bounded soak of the whole pipeline (SOAK_MINUTES, default 10)
	scripts/with-local-kafka $(BIN)/python -m bench.soak

kafka-up: install ## start the local cluster (127.0.0.1:9092,9093) and leave it running
	scripts/local-kafka up

kafka-down: ## stop the local cluster
	scripts/local-kafka down

# A stopped cluster is an answer, not a failure (the script itself exits 3 then, for scripts to test).
kafka-status: ## say which node of the local cluster runs
	@scripts/local-kafka status || [ $$? -eq 3 ]

clean: ## stop and delete the local cluster, the venv, the jars and every cache
	-scripts/local-kafka reset
	rm -rf $(VENV) $(KAFKA_LIB) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
