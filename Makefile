# The workbench's everyday commands. Each target creates .venv and installs when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 3
export MLFLOW_DISABLE_TELEMETRY ?= true
export PYTHONWARNINGS ?= ignore::DeprecationWarning,ignore::FutureWarning

.PHONY: help install run test lab dashboards mlflow bench docs docs-serve lint clean plotly-bundle

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,browser,distributed]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the workbench with its dev, browser and distributed extras

run: $(STAMP) ## Run the main job on the bundled sample data (offline)
	$(BIN)/workbench run

test: $(STAMP) ## Run the whole test suite (unit, notebooks, pipelines, browser)
	$(BIN)/python -m pytest

lab: $(STAMP) ## Start JupyterLab on 127.0.0.1
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser notebooks/

dashboards: $(STAMP) ## Serve the Voila dashboards on 127.0.0.1
	$(BIN)/workbench dashboards

mlflow: $(STAMP) ## Start the MLflow UI on 127.0.0.1
	$(BIN)/workbench mlflow

bench: $(STAMP) ## Run every benchmark script and print the figures
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

plotly-bundle: ## Rebuild the dashboards' partial plotly.js bundle (traces in research/viz/static/plotly-bundle/entry.js); needs npm and the registry
	@cd research/viz/static/plotly-bundle && npm install --silent --no-audit --no-fund --no-save >/dev/null \
	  && node build.js "$$PWD/../plotly-workbench.min.js" && cd .. \
	  && gzip -9n -f plotly-workbench.min.js && cp plotly-bundle/node_modules/plotly.js/LICENSE LICENSE-plotly.js.txt \
	  && rm -rf plotly-bundle/node_modules plotly-bundle/package-lock.json \
	  && echo "sha256 (record it in research/viz/static/README.md):" && gzip -dc plotly-workbench.min.js.gz | sha256sum

docs: $(STAMP) ## Build the documentation site strictly into site/ (executes the tutorials)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## Serve the documentation site on http://127.0.0.1:8000/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check research tests benchmarks

clean: ## Remove the virtualenv and generated data (keeps nothing generated)
	rm -rf $(VENV) data runs site .cache mlruns/mlflow.db mlruns/artifacts
