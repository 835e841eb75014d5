# The two commands of the README: `make run` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PRODUCTS ?= 1000

.PHONY: run test lint bench bench-smoke bench-budget install install-dev install-bench clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,otel]"
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,otel,bench]"
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

# axe-core for the browser tests (tests/browser/), pinned by its package-lock.json. Without
# it the accessibility checks are skipped and say why (with CI=true they fail instead).
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package-lock.json
	@if ! command -v npm >/dev/null; then echo "npm not found: no axe-core for the browser tests"; \
	elif npm ci --prefix tests/browser --no-audit --no-fund --silent; then touch $@; \
	else echo "npm ci failed: no axe-core for the browser tests"; fi

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(AXE)
install-bench: $(VENV)/.installed-bench

## Serve on SQLite (./catalog.db) with demo data: the shop at http://$(HOST):$(PORT)/, the API docs at /docs
run: install
	$(BIN)/catalog db upgrade
	$(BIN)/catalog seed --products $(DEMO_PRODUCTS) --if-empty
	@echo "The shop: http://$(HOST):$(PORT)/ · the API: http://$(HOST):$(PORT)/docs"
	@echo "To manage products: $(BIN)/catalog user create you@example.com --admin, then sign in."
	$(BIN)/catalog serve --host $(HOST) --port $(PORT)

## The whole test suite: SQLite always, PostgreSQL and MariaDB when reachable
test: install-dev
	$(BIN)/pytest

lint: install-dev  ## ruff and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## The README's screenshots of the pages, into docs/img/ (needs Debian's chromium)
screenshots: install-dev
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) catalog.db catalog.db-wal catalog.db-shm .pytest_cache .mypy_cache .ruff_cache

## The speed suite against its baselines; results into docs/benchmarks.md and docs/img/
bench: install-bench
	$(BIN)/python bench/suite.py --write-docs

## CI's short run of the suite: every configuration answers correctly (not a speed check)
bench-smoke: install-bench
	$(BIN)/python bench/suite.py --smoke
	$(BIN)/python bench/pages.py --smoke
	$(BIN)/python bench/shop_scale.py --smoke

## CI's budget check of the pages at a million products on each backend it can reach
## (drops the benchmark databases' tables): a page over 1 s or 10x its JSON route fails
BUDGET_BACKENDS ?= sqlite postgresql mariadb
bench-budget: install-bench
	$(BIN)/python bench/shop_scale.py --products 1000000 --rounds 3 --requests 10 --budget \
		--backends $(BUDGET_BACKENDS)
