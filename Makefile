# The README's two commands: `make demo` and `make test`.

PYTHON ?= python3

# Keep an installed torch; where there is none, take the CPU build instead of gigabytes of CUDA wheels.
setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install --no-compile torch==2.13.0
	$(PYTHON) -m pip install --no-compile -e ".[test]"  # modules compile to bytecode when first imported

demo: setup
	$(PYTHON) -m toma_fx demo

# One worker per core (at most 4: each holds compiled models in memory); an idle worker takes queued
# tests from the busy one, so a long test near the end does not leave a core waiting.
test: setup
	$(PYTHON) -m pytest -n auto --maxprocesses 4 --dist worksteal --durations 15

# The GPU headline (docs/benchmarks.md, "GPU"), one command on an H100 / H200: `toma-fx bench gpu`.
# A device machine has torch and Triton but no package registry: run `make gpu-wheels` here first, so
# diffusers travels in .wheels/ (git-ignored); toma-fx installs there without dependencies.
gpu-wheels:
	$(PYTHON) -m pip download --no-deps -d .wheels diffusers==0.42.1 importlib-metadata expecttest

bench-gpu:
	$(PYTHON) -m pip install -q --no-index --no-deps .wheels/*.whl
	$(PYTHON) -m pip install -q --no-deps --no-build-isolation -e .
	$(PYTHON) -m toma_fx bench gpu --out $(or $(OUT),toma-fx-out)/gpu

.PHONY: setup demo test gpu-wheels bench-gpu
