# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PICO_VERSION := 2.1.1
UPLOT_VERSION := 1.6.32
# `make run` serves here; `PORT=8000 make run` or `make run PORT=8000` picks another.
PORT ?= 5000
export FLASK_APP := wsgi

.PHONY: install run test lint vendor worker bench clean

NODE_CLIENTS := tests/clients/node

install: $(VENV)/.installed $(NODE_CLIENTS)/node_modules/.package-lock.json

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# The npm WhatsApp client the client tests drive, at the version package-lock.json pins (none without node).
$(NODE_CLIENTS)/node_modules/.package-lock.json: $(NODE_CLIENTS)/package.json $(NODE_CLIENTS)/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix $(NODE_CLIENTS) --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the node client tests will be skipped"; fi

run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask seed
	$(BIN)/flask rates rules data/rates/rules-2025-07-01.csv
	$(BIN)/flask rates load data/rates/meta-2025-07-01.csv
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

# Test files run side by side, one process per core (each with its own databases); TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= auto

test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# The layers of saas/ (.importlinter): an import that points up a layer fails.
lint: install
	$(BIN)/lint-imports

worker: install
	$(BIN)/python worker.py

# Refresh the committed copies of Pico.css and uPlot (the broadcast report's and the analytics page's charts) from the npm registry
# (the app never uses a CDN).
vendor:
	rm -rf .vendor-tmp && mkdir .vendor-tmp
	cd .vendor-tmp && npm pack --silent @picocss/pico@$(PICO_VERSION)
	tar -xzf .vendor-tmp/picocss-pico-$(PICO_VERSION).tgz -C .vendor-tmp
	mkdir -p saas/static/vendor/pico
	cp .vendor-tmp/package/css/pico.min.css .vendor-tmp/package/LICENSE.md saas/static/vendor/pico/
	rm -rf .vendor-tmp/package
	cd .vendor-tmp && npm pack --silent uplot@$(UPLOT_VERSION)
	tar -xzf .vendor-tmp/uplot-$(UPLOT_VERSION).tgz -C .vendor-tmp
	mkdir -p saas/static/vendor/uplot
	cp .vendor-tmp/package/dist/uPlot.iife.min.js .vendor-tmp/package/dist/uPlot.min.css \
	   .vendor-tmp/package/LICENSE saas/static/vendor/uplot/
	rm -rf .vendor-tmp

# Load benchmark of the send endpoint and the broadcast worker (about 25 minutes, 15 of them the broadcast
# workload's 100,000 recipients twice; needs PostgreSQL); writes bench/RESULTS.md.
# Options: make bench BENCH_ARGS="--seconds 5 --only new forwarder"
bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
