# The two commands of the README: `make run` (set up + main job) and `make test` (set up + checks).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_ENABLE_TELEMETRY := false
# write bytecode: a process that compiles every module it imports spends about 9 s doing it here
export PYTHONDONTWRITEBYTECODE :=
# uv fetched by scripts/get_uv.py is not on PATH; `bentoml build` looks for `uv` there (or as a module
# of .venv's Python) and otherwise runs `pip install uv` in .venv, which has no pip. Appended: a uv
# already on PATH comes first.
export PATH := $(PATH):$(CURDIR)/.tools/bin

.PHONY: help setup run test test-all test-docs lint typecheck unit bench bento serve clean

help:
	@echo "make run    set up from nothing, then the main job: simulate a CRM, ingest it, train and promote"
	@echo "           lead scoring, deal win and time to close, score leads and deals, forecast revenue"
	@echo "make test   set up from nothing, then ruff, mypy and the tests; the slow ones (model-quality gates,"
	@echo "           the HTTP service) only when CI or FORECAST_ALL_TESTS is set"
	@echo "make test-all  make test with every test (what CI runs)"
	@echo "make test-docs every command block of README.md and docs/*.md, run as written (~15 min)"
	@echo "make bench  benchmarks (results go to benchmarks/RESULTS.md by hand)"
	@echo "make serve  the HTTP service on 127.0.0.1:3000 (after make run)"
	@echo "make bento  build a Bento of the HTTP service"

setup:
	@scripts/bootstrap.sh >/dev/null

run:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen forecast run

test:
	@UV="$$(scripts/bootstrap.sh)" && \
	$$UV run --frozen ruff check src tests benchmarks && \
	$$UV run --frozen ruff format --check src tests benchmarks && \
	$$UV run --frozen mypy && \
	case "$${CI:-}$${FORECAST_ALL_TESTS:-}" in \
	  ""|false|0) \
	    $$UV run --frozen pytest -q -n 2 --dist loadfile -m "not slow" && \
	    echo "The tests marked slow (model-quality gates, the HTTP service) were deselected (counted above);" && \
	    echo "run every test with: make test-all (or FORECAST_ALL_TESTS=1 make test). CI runs them all." ;; \
	  *) $$UV run --frozen pytest -q -n 2 --dist loadfile --durations=15 ;; \
	esac

# every command block of README.md and docs/*.md, run as written (about 15 minutes)
test-docs:
	@UV="$$(scripts/bootstrap.sh)" && FORECAST_DOC_BLOCKS=1 $$UV run --frozen pytest -q tests/docs

# every test, slow ones included (CI: .ci/run sets CI=true)
test-all:
	@FORECAST_ALL_TESTS=1 $(MAKE) --no-print-directory test

lint:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen ruff check src tests benchmarks && $$UV run --frozen ruff format --check src tests benchmarks

typecheck:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen mypy

bench:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen python benchmarks/bench_simulate.py && $$UV run --frozen python benchmarks/bench_ingest.py

bento:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen bentoml build -f bentofile.yaml src

serve:
	@UV="$$(scripts/bootstrap.sh)" && $$UV run --frozen forecast serve --warehouse

clean:
	rm -rf data mlruns mlartifacts mlflow.db .pytest_cache .mypy_cache .ruff_cache .tools
	find models -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
