# The two commands: `make run` starts the service, `make test` runs the test suite.
# Both set everything up first (virtual environment, pinned dependencies, llama.cpp's
# converters, the default base model) and skip whatever is already done.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GPTQ   := $(VENV)/gptq/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
LINTED := api tests scripts load_base_model.py

.PHONY: setup run test lint bench gpu-check gpu-bundle audit model llamacpp chromium clean-venv

setup: $(STAMP) $(GPTQ) llamacpp model

$(STAMP): pyproject.toml
	@echo "==> creating the virtual environment in $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> installing torch 2.13.0 (CPU build)"
	@$(PY) -m pip install --disable-pip-version-check --progress-bar on torch==2.13.0
	@echo "==> installing pinned dependencies (the first time, llama-cpp-python compiles llama.cpp: about 5 minutes on 2 cores)"
	@$(PY) -m pip install --disable-pip-version-check --progress-bar on -e '.[test]'
	@touch $(STAMP)

# GPTQ bases (api/finetune/gptq.py): own directory, --no-deps (why: requirements-gptq.txt)
$(GPTQ): requirements-gptq.txt | $(STAMP)
	@echo "==> installing the GPTQ packages into $(VENV)/gptq (the first time about 2 minutes: pypcre compiles)"
	@rm -rf $(VENV)/gptq.partial
	@$(PY) -m pip install --disable-pip-version-check --quiet --no-deps --target $(VENV)/gptq.partial -r requirements-gptq.txt
	@rm -rf $(VENV)/gptq && mv $(VENV)/gptq.partial $(VENV)/gptq && touch $(GPTQ)

llamacpp: $(STAMP)
	@PYTHON=$(PY) scripts/setup_llamacpp.sh
	@PYTHON=$(PY) scripts/build_llamacpp.sh

# Debian's chromium, which the browser test drives (only `make test` needs it).
chromium:
	@scripts/setup_chromium.sh

model: $(STAMP)
	@echo "==> provisioning the default base model"
	@$(PY) load_base_model.py

run: setup
	@echo "==> starting the API on http://$(HOST):$(PORT) (Swagger UI at /docs)"
	@$(PY) -m uvicorn --factory api.main:app --host $(HOST) --port $(PORT)

# The lint gate: ruff (rules and format) and mypy on api/ (config in pyproject.toml).
lint: $(STAMP)
	@echo "==> lint: ruff check, ruff format --check, mypy"
	@$(PY) -m ruff check $(LINTED)
	@$(PY) -m ruff format --check --quiet $(LINTED)
	@$(PY) -m mypy

test: setup chromium lint
	@echo "==> running the test suite"
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@echo "==> running the benchmarks (about 45 minutes on 2 cores; results in docs/benchmarks.md, written only from a quiet machine)"
	@$(PY) scripts/bench.py
	@$(PY) scripts/bench_export.py
	@$(PY) scripts/bench_load.py
	@$(PY) scripts/bench_extra_buffers.py
	@$(PY) scripts/bench_retrieval_scale.py
	@$(PY) scripts/bench_merge.py
	@$(PY) scripts/bench_answer_loss.py
	@$(PY) scripts/bench_jobs.py
	@$(PY) scripts/bench_replicas.py

# The GPU check (README "GPU check"): QLoRA fine-tune -> export -> serve through the API, the
# same on a GPTQ base (skipped, saying why, without the GPTQ packages), and
# the 7B-shaped benchmark, into docs/benchmarks.md; "skipped: no CUDA" where there is no GPU.
# GPU_PY=python3 runs it with another interpreter and skips the set-up (the device machine,
# where scripts/gpu_device.sh calls the script directly with the carried bundle).
GPU_PY ?= $(PY)
gpu-check: $(if $(filter $(PY),$(GPU_PY)),setup)
	@echo "==> GPU check (about 6 minutes on one H200, estimated)"
	@$(GPU_PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

# What the GPU machine (no network) must be given: .gpu-bundle/, under 64 MiB.
gpu-bundle: setup
	@$(PY) scripts/gpu_bundle.py build

# Known vulnerabilities in the installed packages (pip-audit); fails when the advisory
# database cannot be reached instead of passing without having checked anything.
audit: $(STAMP)
	@PYTHON=$(PY) scripts/audit.sh

clean-venv:
	rm -rf $(VENV)
