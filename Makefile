# Every target runs inside .venv (created by `make install`). SPEC and RUN pick what to work on.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FACTORY := $(VENV)/bin/factory
EXTRAS := train,scale,github,treesitter,plots,dev
STAMP := $(VENV)/.installed-stamp
SPEC ?= pypi:cachetools==5.5.0
RUN ?= runs/demo
RERUNS ?= 3

.PHONY: install engine demo test lint bench env baseline clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# Installs (Debian, root) and starts a Docker engine where none runs; says what to do otherwise.
engine: install
	$(FACTORY) engine

demo: install engine
	$(FACTORY) run factory/configs/demo.yaml --run-dir $(RUN)

# pytest's exit code 5 means "no tests collected": for a selection (-k) that is not a failure.
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check factory miners mutators verifiers trainer kernels tests bench

bench: install engine
	$(PY) bench/spine.py --spec $(SPEC)

env: install engine
	$(FACTORY) env build $(SPEC) --run-dir $(RUN)

baseline: install engine
	$(FACTORY) env baseline $(SPEC) --run-dir $(RUN) --reruns $(RERUNS)

clean:
	rm -rf runs .pytest_cache
