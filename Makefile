# fp8sim developer commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.installed-torch

.PHONY: install run test test-all mutation bench gpu-compile lint experiments notebooks clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@echo "compiling the numba kernels once (cached on disk)..."
	$(PY) scripts/warm_numba.py
	touch $(STAMP)

$(TORCH_STAMP): $(STAMP)
	@echo "installing torch (the fp8sim[torch] extra: fp8sim.torch, the training study's tests)..."
	$(PY) -m pip install -q -e '.[test,torch]'
	touch $(TORCH_STAMP)

install: $(STAMP)  ## create .venv and install fp8sim with its test tools

run: $(STAMP)  ## install, then simulate the headline GEMM
	$(VENV)/bin/fp8sim gemm --k 4096 --promote 128
	@echo "next: run '. $(VENV)/bin/activate' to get fp8sim on your PATH (then: fp8sim --help)"

test: $(TORCH_STAMP)  ## fast tests (< 5 min), torch ones included; golden files when ../shared/golden exists
	$(PY) -m pytest -q -m "not slow" -n auto

test-all: $(TORCH_STAMP)  ## everything, the exhaustive checks too
	FP8SIM_EXAMPLES_SCALE=10 $(PY) -m pytest -q -n auto

mutation: $(STAMP)  ## plant each bug of tests/mutants.toml in a copy and check a test fails (slow)
	$(PY) scripts/mutation.py

bench: $(STAMP)  ## speed figures (CPU engine, Dask sweeps, GPU engine where CuPy finds a GPU) -> bench/results.csv
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) scripts/bench.py --csv bench/results.csv

gpu-compile: $(STAMP)  ## compile the GPU engine's CUDA source with NVRTC (no GPU needed)
	$(PY) -m pip install -q nvidia-cuda-nvrtc-cu12
	$(PY) scripts/compile_gpu_source.py

lint: $(STAMP)
	$(PY) -m ruff check fp8sim tests experiments scripts notebooks

experiments: $(STAMP)  ## regenerate every study into experiments/results/
	$(PY) experiments/run_all.py

notebooks: $(STAMP)  ## re-execute the notebooks in place, outputs rendered
	$(PY) scripts/run_notebooks.py --inplace

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
