"""Execute the notebooks top to bottom with their small settings (LATENTGEO_NB_SMALL=1)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_committed_without_outputs():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 10)]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, path.name
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, path.name
        assert any('os.environ.get("LATENTGEO_NB_SMALL") == "1"' in c.source for c in code)


def test_notebooks_import_only_public_modules():
    # Users copy notebook cells: a private module there breaks when the package is refactored
    # (a module split moved ``Grassmann`` out of ``latentgeo.geometry._geomstats_bridge``).
    private = re.compile(
        r"^\s*(?:from|import)\s+((?:latentgeo|probes|trajectories)\S*\._\w+)", re.M
    )
    found = {
        path.name: private.findall(cell.source)
        for path in NOTEBOOKS
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code" and private.search(cell.source)
    }
    assert not found, f"notebooks import private modules: {found}"


@pytest.fixture
def kernel_env(monkeypatch):
    # The kernel inherits this process's environment: small settings, headless matplotlib,
    # one thread per process (CI has 2 cores), and the repository on the import path (the
    # package need not be installed).
    monkeypatch.setenv("LATENTGEO_NB_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _kernel_manager():
    """A kernel manager that starts ipykernel with this interpreter (the venv's python),
    whether or not a ``python3`` kernelspec is installed on the machine."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return km


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, kernel_env, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=_kernel_manager(),
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    # The figures render: at least one image output per notebook.
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert images, f"{path.name} displayed no figure"
    # `make test` keeps the executed copy, so that `make docs` renders it instead of running
    # the notebook a second time (docs/conf.py checks that its code is the committed code).
    out_dir = os.environ.get("LATENTGEO_NB_OUTPUT_DIR")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(out_dir) / path.name)
