# Two commands do all set-up on a fresh machine:
#   make demo   generate the sample worlds, train, evaluate and report the lineage locally on CPU
#               (config/demo.yaml; a real run edits config/config.yaml and runs `snakemake --profile slurm`)
#   make test   run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The embedded demo's configuration: a whole configuration of its own, used instead of the template.
DEMO_CONFIG := config/demo.yaml

.PHONY: setup demo test lint dag clean quality slurm-profile slurm-deps graphviz-deps browser-deps

setup: $(VENV)/.installed slurm-profile graphviz-deps

# Teachers: sam2 builds against the installed torch (no CUDA kernels), depth-anything-3 installs
# without its declared dependencies (numpy<2, app extras); see the teachers extra in pyproject.toml.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev,teachers]"
	$(BIN)/pip install --quiet setuptools==84.2.1
	SAM2_BUILD_CUDA=0 $(BIN)/pip install --quiet --no-build-isolation sam2==1.1.0
	$(BIN)/pip install --quiet --no-deps depth-anything-3==0.1.1
	touch $@

# The demo: the sample worlds, teachers, manifest, all nine versions of the lineage (short CPU runs),
# their evaluation and the report; it also deploys V5 and V9 (deploy.versions in config/demo.yaml).
demo: setup
	$(BIN)/snakemake --configfile $(DEMO_CONFIG)
	@echo
	@$(BIN)/distillery info results/manifest/manifest.h5
	@echo "manifest:   $(CURDIR)/results/manifest/manifest.h5"
	@echo "index:      $(CURDIR)/results/manifest/manifest.jsonl"
	@echo "quarantine: $(CURDIR)/results/manifest/quarantine.jsonl"
	@echo "students:   $(CURDIR)/results/train/<version>/ (best.pt, metrics.jsonl, tensorboard/)"
	@echo "evaluation: $(CURDIR)/results/evaluation/<version>/<set>.json"
	@echo "report:     $(CURDIR)/results/report/lineage.html (open in a browser; lineage.md beside it)"
	@echo "deployment: $(CURDIR)/results/deploy/<version>/ (student.onnx, student.int8.onnx, fused.onnx, model_card.json, jetson_bundle.tar.gz)"
	@echo "logs:       $(CURDIR)/logs/"

# Evidence that distillation pays (not in CI; about 19 minutes on two idle cores): teacher-trained vs
# ToF-trained vs best-constant student, and 20 % frame selections, on a generated world with held-out test
# sequences; figures in benchmarks/out/bench_quality.json (README "What the student learns").
quality: setup
	$(BIN)/python benchmarks/bench_quality.py

# Two workers, one test file each at a time: the Slurm tests mostly wait on the scheduler while the other
# worker runs the rest (module fixtures stay in their file's worker).
test: setup slurm-deps browser-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: setup
	$(BIN)/snakemake --configfile $(DEMO_CONFIG) --lint

# The job graph and the rule graph as SVG (DAG_SVG, RULES_SVG name the files), of the demo unless
# DAG_CONFIG names another config (DAG_CONFIG=config/config.yaml: your real run). Snakemake writes
# the graph first, so a failing Snakemake stops here instead of leaving an empty picture.
DAG_SVG ?= dag.svg
RULES_SVG ?= rules.svg
DAG_CONFIG ?= $(DEMO_CONFIG)
dag: setup
	$(BIN)/snakemake --configfile $(DAG_CONFIG) --dag > $(DAG_SVG).dot
	dot -Tsvg $(DAG_SVG).dot -o $(DAG_SVG) && rm -f $(DAG_SVG).dot
	$(BIN)/snakemake --configfile $(DAG_CONFIG) --rulegraph > $(RULES_SVG).dot
	dot -Tsvg $(RULES_SVG).dot -o $(RULES_SVG) && rm -f $(RULES_SVG).dot
	@echo "job graph: $(DAG_SVG)   rule graph: $(RULES_SVG)"

clean:
	rm -rf results logs .snakemake

# `snakemake --profile slurm` looks for a profile named slurm in the working directory and in
# the user's config directory: link this project's profile there (a folder of your own is kept).
SNAKEMAKE_CONFIG := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
slurm-profile:
	@mkdir -p $(SNAKEMAKE_CONFIG)
	@if [ -L $(SNAKEMAKE_CONFIG)/slurm ] || [ ! -e $(SNAKEMAKE_CONFIG)/slurm ]; then \
	  ln -sfn $(CURDIR)/profiles/slurm $(SNAKEMAKE_CONFIG)/slurm; \
	else echo "note: $(SNAKEMAKE_CONFIG)/slurm is a profile of your own; use --profile profiles/slurm"; fi

# The local Slurm cluster of the tests (as root): Debian's slurm-wlm, slurmdbd, munge, MariaDB.
# Without root the Slurm tests are skipped, saying why. policy-rc.d keeps the packages from
# starting daemons; the tests start and stop their own.
SLURM_PACKAGES := slurm-wlm slurmdbd munge mariadb-server
slurm-deps:
	@if [ "$$(id -u)" = 0 ] && ! dpkg -s $(SLURM_PACKAGES) >/dev/null 2>&1; then \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SLURM_PACKAGES) >/dev/null; \
	  rm -f /usr/sbin/policy-rc.d; fi

# $(call apt_tool,COMMAND,PACKAGES,NOTE): nothing when COMMAND exists; as root, install Debian's
# PACKAGES; otherwise print NOTE and the apt-get line to run (NOTE must hold no comma).
define apt_tool
	@if command -v $(1) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	else echo "note: $(3): sudo apt-get install $(2)"; fi
endef

# Graphviz's `dot` draws the job and rule graphs (`make dag`, `snakemake --dag | dot -Tsvg`). As root,
# Debian's graphviz package; otherwise a note saying what to install.
GRAPHVIZ_PACKAGES := graphviz
graphviz-deps:
	$(call apt_tool,dot,$(GRAPHVIZ_PACKAGES),the DAG pictures need Graphviz)

# A headless browser opens the lineage report in the tests (tests/test_report.py): Debian's chromium
# as root; otherwise that test is skipped, saying why.
BROWSER_PACKAGES := chromium
browser-deps:
	$(call apt_tool,chromium,$(BROWSER_PACKAGES),the report's browser test needs Chromium)
