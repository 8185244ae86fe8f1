# Two commands for a newcomer: `make run` (the whole system) and `make test` (the tests).
# Each creates the virtualenv and installs what it needs on first use.
PYTHON ?= python3
# The services default to production (TRISAM_ENV): the make targets are for a developer's
# machine and ask for development (loopback only), unless TRISAM_ENV is set.
export TRISAM_ENV ?= dev
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test check lock audit backup restore secrets certs faults faults-cluster cluster cluster-stop docs bench bench-followup dead-letters clean

# Every dependency at the version and hash in requirements-dev.lock (`make lock` writes it).
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)  ## start RabbitMQ-backed services (migrates first); Ctrl-C stops all (VERBOSE=1: every log line)
	$(PY) -m tools.launcher $(if $(VERBOSE),--verbose,)

demo: $(STAMP)  ## `make run` with a year of simulated agency traffic (own namespace trisam_demo)
	DEMO=1 $(PY) -m tools.launcher $(if $(VERBOSE),--verbose,)

test: $(STAMP)  ## unit, integration and end-to-end tests on the real RabbitMQ and PostgreSQL
	$(PY) -m pytest

check: $(STAMP)  ## ruff (lint and format), mypy (strict on shared/platform and every domain.py), the alert rules and dashboard
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m tools.check_alerts

lock: $(STAMP)  ## requirements*.lock from pyproject.toml with every file's hash (pins kept; change a version in pyproject.toml)
	$(PY) -m pip install --quiet pip-tools==7.6.2
	$(PY) -m piptools compile --quiet --generate-hashes --extra test --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.lock pyproject.toml
	$(PY) -m piptools compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links -c requirements-dev.lock -o requirements.lock pyproject.toml

audit: $(STAMP)  ## known vulnerabilities in the locked dependencies (pip-audit; needs PyPI's or OSV's vulnerability service)
	$(PY) -m pip install --quiet pip-audit==2.10.1
	$(PY) -m pip_audit --strict --require-hashes --disable-pip -r requirements-dev.lock

secrets: $(STAMP)  ## .env and deploy/rabbitmq/definitions.local.json for docker compose (random; kept if present)
	$(PY) -m tools.secrets

certs: $(STAMP)  ## a local CA, server and client certificates for TLS in .tls/ (kept if present; docs/deployment.md)
	$(PY) -m tools.certs

faults: $(STAMP)  ## fault injection, full size: 10,000 referrals, kills, cuts, broker restarts; then the cluster run (faults-cluster); ledgers in test-artifacts/faults*.json
	TRISAM_FAULTS=full $(PY) -m pytest -s -p no:cacheprovider tests/faults

faults-cluster: $(STAMP)  ## only the cluster fault run: 3,000 referrals on a three-node RabbitMQ cluster, a node killed twice; test-artifacts/faults-cluster.json
	TRISAM_FAULTS=full $(PY) -m pytest -s -p no:cacheprovider tests/faults/test_cluster.py

cluster: $(STAMP)  ## a three-node RabbitMQ cluster on this machine (trisam-c1..c3@localhost, AMQP 5681-5683; idempotent)
	$(PY) -m tools.cluster start

cluster-stop: $(STAMP)  ## stop the three nodes of `make cluster` and remove their data (/tmp/trisam-cluster)
	$(PY) -m tools.cluster stop

backup: $(STAMP)  ## dump the namespace's four databases into backups/<namespace>-<time>/ (TRISAM_NAMESPACE; docs/operations.md)
	$(PY) -m tools.backup dump backups/$${TRISAM_NAMESPACE:-trisam}-$$(date -u +%Y%m%dT%H%M%SZ)

restore: $(STAMP)  ## FROM=backups/<dir>: restore into TRISAM_NAMESPACE (databases must not exist; then make run on it)
	$(PY) -m tools.backup restore $(FROM)

docs: $(STAMP)  ## regenerate docs/asyncapi/*.json from the code
	$(PY) -m tools.catalogue

bench: $(STAMP)  ## the platform's figures against a baseline of the same run (prints, writes bench/results.json)
	$(PY) -m bench.run

bench-followup: $(STAMP)  ## follow-up scheduler tick with 1,000 vs 100,000 pending (prints, writes bench/)
	$(PY) -m bench.followup_scheduler

dead-letters: $(STAMP)  ## dead-letter operations: make dead-letters ARGS="list metrics" (list|show|replay|discard|history; docs/operations.md)
	$(PY) -m tools.dead_letters $(ARGS)

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
