"""The getting-started page runs as written, and its claims about the result hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"


def code_cells(path: Path) -> list[str]:
    """The ``{code-cell}`` blocks of a MyST notebook page, in order."""
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", path.read_text(), flags=re.S)


def test_getting_started_has_the_ten_lines():
    cells = [c for c in code_cells(PAGE) if not c.startswith(":tags: [remove-cell]")]
    assert len(cells) >= 3
    first = [line for line in cells[0].splitlines() if line.strip() and not line[0].isspace()]
    # Imports aside, record + probe + geometry fit in about ten statements.
    body = [line for line in first if not line.startswith(("import", "from"))]
    assert len(body) <= 12, body


@pytest.mark.slow
def test_getting_started_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    for cell in code_cells(PAGE):
        # Cell options and IPython magics (%matplotlib) are not Python.
        cell = "\n".join(x for x in cell.splitlines() if not x.startswith((":tags:", "%")))
        exec(compile(cell, str(PAGE), "exec"), namespace)
    run, results, traj = namespace["run"], namespace["results"], namespace["traj"]
    assert (tmp_path / "quickstart.zarr").is_dir()
    assert run.steps[0] == 0 and run.steps[-1] <= 100 and len(run.steps) == len(traj)
    assert set(results["layer"].values) == {"conv2", "fc"}
    assert np.all(results["r2"].values <= 1.0) and np.all(np.isfinite(results["r2"].values))
    # Shares of the C4 spectrum sum to one, and the trivial irrep's is the invariance.
    spectrum = results["spectrum"]
    np.testing.assert_allclose(spectrum.sum("irrep"), 1.0, atol=1e-9)
    np.testing.assert_allclose(spectrum.sel(irrep="A"), results["invariance"], atol=1e-9)
    assert traj.distance_to("final").values[-1] == 0.0


def test_every_skipped_docstring_example_says_why():
    # `make test` runs the docstring examples (--doctest-modules); one that cannot run on a
    # CPU in seconds is marked +SKIP, and its example opens with a comment giving the reason.
    unexplained = []
    for package in ("latentgeo", "probes", "trajectories"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for i, line in enumerate(lines):
                if "doctest: +SKIP" not in line:
                    continue
                block = [x.strip() for x in lines[max(0, i - 12) : i]]
                if not any(x.startswith(">>> # Not run here:") for x in block):
                    unexplained.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert not unexplained, unexplained
