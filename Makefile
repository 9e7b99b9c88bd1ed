# Two commands, each self-sufficient on a fresh clone: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Prefer the CPU build of torch where this machine has it on disk; elsewhere the
	# plain install below resolves torch from the index as usual.
	$(PY) -m pip install -q torch==2.13.0 || echo "torch==2.13.0 not available here; using the index"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latentgeo demo

# CI runs `make test`: the linters first (ruff, then mypy), then the suite.
test: lint
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(PY) -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(VENV)/bin/ruff check latentgeo probes trajectories tests benchmarks
	$(VENV)/bin/mypy latentgeo probes trajectories

bench: $(STAMP)
	$(PY) benchmarks/geometry.py
	$(PY) benchmarks/probes.py
	$(PY) benchmarks/record.py
	$(PY) benchmarks/continuous.py

clean:
	rm -rf $(VENV) .pytest_cache demo_out
