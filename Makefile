# Two commands on a fresh clone: `make run` (the default GRPO job) and `make test` (the whole suite).
# TORCH_SPEC is installed first and pinned, so no later install can swap it for another build.
# GPU users: make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PIN := $(VENV)/torch-pin.txt
ARGS ?=

.PHONY: run test lint bench clean

run: $(VENV)/.installed
	$(BIN)/grpo train $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

$(PIN):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip freeze | grep -i '^torch==' > $(PIN)

$(VENV)/.installed: pyproject.toml $(PIN)
	$(BIN)/pip install -q -c $(PIN) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(PIN)
	$(BIN)/pip install -q -c $(PIN) -e ".[dev]"
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
