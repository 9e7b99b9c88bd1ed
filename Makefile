# Two commands, each self-sufficient on a fresh clone: `make demo` and `make test`.
#
# Set-up installs from a pinned lock (requirements/dev.lock, written by `make lock`), so it
# never resolves against what the registry released last week: pip puts uv and the machine's
# CPU build of torch in the venv, then uv installs the locked versions and the package itself
# without its dependencies. The package's own ranges (pyproject.toml) stay ranges;
# `make test-lowest` checks their lower bounds.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock
# The CPU wheel of torch this kind of machine keeps in pip's find-links folder (pinned in
# requirements/torch-cpu.txt); uv does not
# read pip's configuration, so uv is pointed at the same folder where it needs torch.
TORCH_PIN  := requirements/torch-cpu.txt
WHEELS     ?= /opt/wheels
UV_VERSION ?= uv==0.13.9
TEST_ENV   := OMP_NUM_THREADS=1 MPLBACKEND=Agg

.PHONY: demo test lint docs doctest lock test-lowest bench dist clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(UV_VERSION)
	# The CPU build of torch this machine keeps on disk (its own dependencies at the lock's
	# versions; uv unpacks it in seconds where pip byte-compiles it for minutes). Elsewhere uv
	# resolves torch from the index as a dependency of the locked packages.
	$(UV) pip install --python $(PY) -q --find-links $(WHEELS) -c $(TORCH_PIN) -c $(LOCK) torch \
		|| echo "the torch of $(TORCH_PIN) is not in $(WHEELS); using the index"
	$(UV) pip install --python $(PY) -q -r $(LOCK)
	$(UV) pip install --python $(PY) -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latentgeo demo

# CI runs `.ci/run`: `make test` (linters, then the suite with the docstring examples, the
# wheel test among them), then `make docs`.
# The notebooks' test leaves executed copies in docs/_build/executed for `make docs` to render.
test: lint
	$(TEST_ENV) LATENTGEO_NB_OUTPUT_DIR=$(CURDIR)/docs/_build/executed \
		$(PY) -m pytest -n 2 --dist loadfile -q --doctest-modules \
		tests latentgeo probes trajectories

lint: $(STAMP)
	$(VENV)/bin/ruff check latentgeo probes trajectories tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/mypy latentgeo probes trajectories

# Only the docstring examples (they also run inside `make test`).
doctest: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q --doctest-modules latentgeo probes trajectories

# The documentation site, warnings as errors; the notebooks execute on their small settings.
docs: $(STAMP)
	$(TEST_ENV) $(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "site: docs/_build/html/index.html"

# Wheel and sdist into dist/.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .

# Refresh the lock: the newest versions the ranges in pyproject.toml allow, for Python 3.11 on
# x86_64 Linux, against the machine's CPU torch (kept out of the lock: pip installs it).
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --extra docs --upgrade \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--find-links $(WHEELS) -c $(TORCH_PIN) --no-emit-package torch \
		--custom-compile-command "make lock" -q -o $(LOCK)

# The lowest versions the package's ranges allow (torch stays the machine's build), in a venv
# of their own, then the suite. Not part of CI: see README ("Lower bounds").
LOWEST := .venv-lowest
TESTS  ?= tests
test-lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q $(UV_VERSION)
	$(LOWEST)/bin/uv pip install --python $(LOWEST)/bin/python -q --find-links $(WHEELS) \
		-c $(TORCH_PIN) torch
	$(LOWEST)/bin/uv pip install --python $(LOWEST)/bin/python -q --resolution lowest-direct \
		--find-links $(WHEELS) -c $(TORCH_PIN) -e ".[dev]"
	$(LOWEST)/bin/uv pip list --python $(LOWEST)/bin/python > $(LOWEST)/versions.txt
	$(TEST_ENV) $(LOWEST)/bin/python -m pytest -n 2 --dist loadfile -q \
		-p no:cacheprovider $(TESTS)

bench: $(STAMP)
	$(PY) benchmarks/geometry.py
	$(PY) benchmarks/probes.py
	$(PY) benchmarks/record.py
	$(PY) benchmarks/continuous.py

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache demo_out dist docs/_build docs/api/generated
