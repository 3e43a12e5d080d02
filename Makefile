# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-browser test-clock lint bench audit test-proxy chaos test-prometheus

$(STAMP): requirements.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	scripts/run.sh

test: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not browser and not proxy and not prometheus" $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not prometheus"

test-integration: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/python -m pytest -m integration

# Needs Debian's chromium (/usr/bin/chromium); .ci/run installs it. Screenshots land in artifacts/.
test-browser: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/python -m pytest -m browser

# Needs Debian's nginx (/usr/sbin/nginx); .ci/run installs it. deploy/ for real: TLS, two web processes.
test-proxy: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/python -m pytest -m proxy $(PYTEST_ARGS)

# Needs Debian's prometheus (/usr/bin/prometheus, /usr/bin/promtool); .ci/run installs it. The alert rules'
# promtool checks and unit tests, and a real Prometheus scraping a running stack (deploy/prometheus).
test-prometheus: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/python -m pytest -m prometheus $(PYTEST_ARGS)

# The clock-reading tests at each instant of scripts/test_clock.py, under Debian's libfaketime
# (.ci/run installs the faketime package when it is missing).
test-clock: $(STAMP)
	$(BIN)/python scripts/ensure_redis.py
	$(BIN)/python scripts/test_clock.py

# Every pin against the package registry's vulnerability data; each --ignore-vuln is justified in README
# "Dependencies". --strict: a package the service cannot answer for is a failure, not a silent pass.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt --ignore-vuln CVE-2020-35678

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# The fault scenarios end to end (scripts/chaos/): a table of recovered?, time to recover, orders lost or
# duplicated, ticks lost. Each scenario starts its own Redis, kitesim and processes (orders: ports
# 18400-18499; feeds and the host cut: 18500-18599, the host cut in network namespaces it makes, as root).
chaos: $(STAMP)
	$(BIN)/python -m scripts.chaos $(CHAOS_ARGS)
