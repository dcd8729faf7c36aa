# Every target builds .venv from the project's own files, so a fresh clone needs one command.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lint browser test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

# Debian's chromium for the dashboard's browser tests (tests/devnet/dashboard), installed
# only where it can be (root with apt); elsewhere those tests skip with one line saying how.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get install -y -qq chromium >/dev/null 2>&1 \
	      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
	      || echo "make browser: could not install chromium; the dashboard browser tests will skip"; \
	  else \
	    echo "make browser: no chromium (apt-get install chromium); the dashboard browser tests will skip"; \
	  fi; }

test: lint browser
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/python -m blocks_devnet.demo

bench: $(STAMP)
	$(BIN)/python bench/realtime_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
