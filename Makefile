# salesloop — every target installs what it needs first (uv, then the locked environment).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
UV ?= $(PY_UV)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_RUNTIME_PACKAGE_CACHE_ROOT ?= $(CURDIR)/.jsii-cache
export UV_LINK_MODE ?= copy

.PHONY: help setup chromium demo test test-fast lint bench synth policy infra-diff images clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --all-groups
	@touch $@

setup: .venv/.synced ## Install the locked environment (uv + .venv)

demo: setup ## Run the whole local loop (real local parts), print the summary
	$(UV) run --frozen salesloop demo

chromium: ## Install Debian's headless Chromium (the report rendering test needs it)
	bash scripts/install-chromium.sh || echo "chromium unavailable: the report rendering test will be skipped"

test: setup chromium ## Run the test suite (unit, integration, e2e, infra)
	$(UV) run --frozen pytest -q -n 2 --dist loadgroup

test-fast: setup ## Unit tests only
	$(UV) run --frozen pytest -q -m "not integration and not e2e and not infra and not slow"

lint: setup ## ruff + mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy salesloop functions stacks modules training benchmarks

bench: setup ## Run the benchmarks; JSON results under benchmarks/results/
	@mkdir -p benchmarks/results
	$(UV) run --frozen python benchmarks/run_all.py --out benchmarks/results

synth: setup ## Synthesize the dev and prod stacks into cdktf.out/
	$(UV) run --frozen python -m stacks

policy: synth ## checkov on the synthesized stacks (prod: 0 failed checks)
	$(UV) run --frozen bash scripts/policy.sh

infra-diff: setup ## Readable diff of dev vs prod synthesized stacks (exit 1 means "they differ")
	$(UV) run --frozen salesloop infra diff dev prod || test $$? -eq 1

images: ## Build the serving and training images (needs a Docker engine)
	bash scripts/images.sh

clean: ## Remove runs, caches and synthesized output
	rm -rf runs cdktf.out .pytest_cache .mypy_cache .ruff_cache
