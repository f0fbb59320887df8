# Two commands do all set-up on a fresh machine:
#   make demo   generate the sample world and run the whole workflow locally on CPU
#   make test   run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint dag clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/snakemake
	@echo
	@$(BIN)/distillery info results/manifest/manifest.h5
	@echo "manifest:   $(CURDIR)/results/manifest/manifest.h5"
	@echo "index:      $(CURDIR)/results/manifest/manifest.jsonl"
	@echo "quarantine: $(CURDIR)/results/manifest/quarantine.jsonl"
	@echo "logs:       $(CURDIR)/logs/"

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/snakemake --lint

dag: setup
	$(BIN)/snakemake --dag | dot -Tsvg > dag.svg

clean:
	rm -rf results logs .snakemake
