# Two commands for a fresh machine: `make run` (demo app) and `make test` (whole suite).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PORT    ?= 8501

.PHONY: run test install models bench bench-quick docs lint browser-deps clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.fileWatcherType none --server.headless true \
		--server.address 127.0.0.1 --server.port $(PORT)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed; the browser test will be skipped"

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest -q

models: $(STAMP)
	$(BIN)/python -m xmark_core.cli models build --out models

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --out results

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --out results

docs: $(STAMP)
	$(BIN)/python -m xmark_core.cli data figure --out docs/phantom_findings.png

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
