# The README's two commands: `make demo` (run everything locally) and `make test`.
# Each installs what it needs: virtual environment, packages, models and sample videos.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS := models/.fetched
SAMPLES := samples/vtest.avi
QUANTIZED := models/.quantized
# Real Prometheus and promtool for the monitoring tests (Debian package).
PROMETHEUS := /usr/bin/promtool
# The dashboard (spa/): node modules from the lock file, and the built bundle the gateway serves.
SPA_MODULES := spa/node_modules/.installed
SPA := spa/dist/index.html
SPA_SOURCES := $(shell find spa/src -type f 2>/dev/null) spa/index.html spa/vite.config.js
# Debian's Chromium for the dashboard's browser tests (playwright-core drives it; no download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench soak lint typecheck unit venv models samples prometheus spa chromium clean

demo: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(SPA)
	$(VENV)/bin/ei up

test: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(PROMETHEUS) $(SPA) $(CHROMIUM) lint typecheck
	$(VENV)/bin/pytest

# The worker's speed beside its limits (doc/benchmarks.md); BENCH_FLAGS=--quick for a first look.
bench: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED)
	$(VENV)/bin/ei bench $(BENCH_FLAGS)

# The whole system under churn and faults (doc/reliability.md); not part of `make test`.
# SOAK_MINUTES=5 for a short run; SOAK_FLAGS="--out DIR" to choose where the report goes.
SOAK_MINUTES ?= 30
soak: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(SPA)
	$(PY) -m tests.soak --minutes $(SOAK_MINUTES) $(SOAK_FLAGS)

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check apps tests container

typecheck: $(STAMP)
	$(VENV)/bin/mypy

venv: $(STAMP)
models: $(MODELS)
samples: $(SAMPLES)
prometheus: $(PROMETHEUS)
spa: $(SPA)
chromium: $(CHROMIUM)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(MODELS): $(STAMP) apps/elastic_inference/engine/fetch.py
	PYTHON=$(PY) tools/download-models.sh -d models
	touch $@

$(SAMPLES):
	tools/download-samples.sh -d samples

$(QUANTIZED): $(MODELS) $(SAMPLES) apps/elastic_inference/engine/quantize.py
	$(VENV)/bin/ei models quantize -d models -s samples
	touch $@

$(PROMETHEUS):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus

# npm ci only when the lock changes (it empties node_modules first); a build when sources do.
$(SPA_MODULES): spa/package.json spa/package-lock.json
	cd spa && npm ci --no-audit --no-fund
	touch $@

$(SPA): $(SPA_MODULES) $(SPA_SOURCES)
	cd spa && npm run build

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache spa/dist spa/node_modules
