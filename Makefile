# Everything a fresh machine needs: `make demo` runs the main job, `make test` the test suite.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install demo test lint unit docs bench bench-gpu gpu-env clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,clouds,lumi,dask,docs]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The main job: a 160-qubit circuit of eight independent 20-qubit blocks on a local cluster.
demo: $(STAMP)
	$(BIN)/qcos run examples/blocks160.qasm --cluster examples/cluster.yaml --shots 4096 --seed 7

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint unit

# The documentation site (docs/site): guides and the API reference, warnings as errors (as tests/test_docs.py
# builds it). Open docs/site/_build/html/index.html.
docs: $(STAMP)
	$(BIN)/python -m sphinx -b html -W --keep-going -d docs/site/_build/doctrees docs/site docs/site/_build/html

bench: $(STAMP)
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.plan
	$(BIN)/python -m bench.partition
	$(BIN)/python -m bench.prefect_overhead
	$(BIN)/python -m bench.sweep
	$(BIN)/python -m bench.cutting
	$(BIN)/python -m bench.cut_allocation
	$(BIN)/python -m bench.cut_distribution

# GPU machines: the GPU environment (.venv-gpu, see the README's "GPU nodes") and its benchmark.
gpu-env:
	bash deployments/gpu_env.sh

bench-gpu: $(if $(wildcard .venv-gpu/bin/python),,$(STAMP))
	$(if $(wildcard .venv-gpu/bin/python),.venv-gpu/bin/python,$(BIN)/python) -m bench.gpu

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
