# Every target runs inside .venv (created by `make install`). SPEC and RUN pick what to work on.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FACTORY := $(VENV)/bin/factory
EXTRAS := train,scale,github,treesitter,plots,dev,agents
STAMP := $(VENV)/.installed-stamp
SPEC ?= pypi:cachetools==5.5.0
RUN ?= runs/demo
RERUNS ?= 3

.PHONY: install engine registry demo test lint bench env baseline mine mutate validate publish inspect train clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# Installs (Debian, root) and starts a Docker engine where none runs; says what to do otherwise.
engine: install
	$(FACTORY) engine

# A container registry on localhost:5000 (Debian's docker-registry, installed when root on Debian).
registry: install
	$(PY) -m factory.registry 5000

demo: install engine
	$(FACTORY) run factory/configs/demo.yaml --run-dir $(RUN)

# pytest's exit code 5 means "no tests collected": for a selection (-k) that is not a failure.
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check factory miners mutators verifiers trainer kernels rollouts tests bench

# Benchmarks that run on this machine (the GPU ones, bench/moe_kernels.py, bench/moe_timing.py and
# bench/train_throughput.py, run on a CUDA machine: see bench/RESULTS.md).
bench: install engine
	$(PY) bench/spine.py --spec $(SPEC)
	$(PY) bench/mine_speed.py --commits 2400
	$(PY) bench/mutate_speed.py $(VENV)/lib/python3.11/site-packages/rich --check 100
	$(FACTORY) run factory/configs/demo.yaml --run-dir runs/bench-demo
	$(PY) bench/validate.py --run runs/bench-demo --sample 40
	$(PY) bench/mutation_yield.py --run runs/bench-demo

env: install engine
	$(FACTORY) env build $(SPEC) --run-dir $(RUN)

baseline: install engine
	$(FACTORY) env baseline $(SPEC) --run-dir $(RUN) --reruns $(RERUNS)

mine: install
	$(FACTORY) mine $(SPEC) --run-dir $(RUN)

mutate: install
	$(FACTORY) mutate $(SPEC) --run-dir $(RUN)

validate: install engine
	$(FACTORY) validate $(RUN)

publish: install
	$(FACTORY) publish $(RUN) --dataset-dir $(RUN)/dataset --overwrite

inspect: install
	$(FACTORY) inspect $(RUN)/dataset --run-dir $(RUN)

DATASET ?= $(RUN)/dataset
RECIPE ?= tiny
train: install
	$(FACTORY) train --dataset $(DATASET) --recipe $(RECIPE) --out $(RUN)/train

clean:
	rm -rf runs .pytest_cache
