# 数字乡村一张图 — two commands do everything: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DVMAP := $(BIN)/dvmap
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml 2>/dev/null | cut -c1-8)
# Debian packages the project needs: PostgreSQL 15 + PostGIS 3 (embedded cluster),
# Chromium (browser tests), Mosquitto (sensors), a CJK font (readable screenshots).
DEB_PACKAGES := postgresql-15 postgresql-15-postgis-3 chromium mosquitto fonts-wqy-microhei libjs-leaflet

.PHONY: help demo test setup sysdeps pydeps db bench serve clean

help:
	@echo "make demo   – install what is missing, start PostGIS, migrate, load the demo county, serve on :8050"
	@echo "make test   – the same set-up, then unit, integration and browser tests"
	@echo "make bench  – benchmarks (not part of the tests)"

sysdeps:
	@missing=""; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15"; \
	[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing="$$missing postgresql-15-postgis-3"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	[ -f /usr/share/javascript/leaflet/leaflet.js ] || missing="$$missing libjs-leaflet"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else \
	    echo "Please install as root: apt-get install -y$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

pydeps: $(STAMP)

setup: sysdeps pydeps
	$(DVMAP) db start
	$(DVMAP) migrate

db: setup

demo: setup
	$(DVMAP) demo-data
	@# 180 days of demo events taken through the loop (idempotent): the map, the event
	@# table and the big screen open on a county with a history, not an empty one.
	$(DVMAP) bigscreen-demo
	$(DVMAP) sensors broker start
	@echo; echo "Open http://127.0.0.1:$${DVMAP_PORT:-8050}"; echo
	@# Sensors: the ingest worker and the simulator run beside the app and stop with it;
	@# so does the events' overdue check (超期/督办), every 5 minutes.
	@trap 'kill $$ingest $$simulate $$watch 2>/dev/null; wait' EXIT INT TERM; \
	$(DVMAP) sensors ingest & ingest=$$!; \
	$(DVMAP) sensors simulate & simulate=$$!; \
	$(DVMAP) events watch --every 300 & watch=$$!; \
	$(DVMAP) serve

test: setup
	$(DVMAP) migrate --check
	$(BIN)/python -m pytest tests -p no:cacheprovider

bench: setup
	$(DVMAP) demo-data
	$(DVMAP) bigscreen-demo
	$(BIN)/python -m bench $(BENCH)

clean:
	-$(DVMAP) db stop
	rm -rf .dvmap test-artifacts
