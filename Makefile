# The README's two commands: `make demo` and `make test`.

PYTHON ?= python3

# Keep an installed torch; where there is none, take the CPU build instead of gigabytes of CUDA wheels.
setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[test]"

demo: setup
	$(PYTHON) -m toma_fx demo

# One worker per core (at most 4: each holds compiled models in memory).
test: setup
	$(PYTHON) -m pytest -n auto --maxprocesses 4 --durations 15

.PHONY: setup demo test
