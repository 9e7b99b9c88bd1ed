"""The package as a user gets it: sdist -> wheel, installed into a clean venv outside the checkout.

``python -m build`` writes the sdist and builds the wheel *from the sdist*, so a file the
package needs but the sdist lacks fails here. The wheel goes into a fresh virtual environment
(no system site-packages) in a temporary folder, with its dependencies pinned by the
development lock (``requirements/dev.lock``: no resolution against the registry) and the
running interpreter's torch build. Everything then runs from a folder outside the checkout,
without ``PYTHONPATH``: the console script, the demo, ``analyze`` on the store the demo wrote,
every import line of the notebooks, and the three packages with their ``py.typed`` markers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
# Where this kind of machine keeps its CPU build of torch (pip's find-links; uv needs it named).
TORCH_WHEELS = Path(os.environ.get("LATENTGEO_TORCH_WHEELS", "/opt/wheels"))

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env


def notebook_imports() -> list[str]:
    """Every top-level ``import``/``from ... import`` line of the notebooks' code cells."""
    lines: list[str] = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for line in "".join(cell["source"]).splitlines():
                if re.match(r"(import|from)\s+[\w.]+", line) and line not in lines:
                    lines.append(line)
    return lines


def _third_party(imports: list[str]) -> set[str]:
    ours = {"latentgeo", "probes", "trajectories"}
    tops = {re.split(r"[\s.]", line.split(maxsplit=1)[1])[0] for line in imports}
    return {t for t in tops if t not in ours and t not in sys.stdlib_module_names}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # The build backend of the lock (setuptools) is in this environment: no isolated build
    # environment to download.
    _run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        cwd=ROOT,
        env=dict(os.environ),
    )
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    import torch

    where = tmp_path_factory.mktemp("wheel_venv")
    assert not where.resolve().is_relative_to(ROOT)
    env = _clean_env(where / "venv")
    _run([sys.executable, "-m", "venv", str(where / "venv")], cwd=where, env=env)
    python = where / "venv" / "bin" / "python"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    # The torch build this interpreter runs (the machine's CPU wheel), then the wheel with its
    # dependencies at the lock's versions, and the third-party packages the notebooks import.
    extras = sorted(_third_party(notebook_imports()) - {"torch", "numpy", "pandas", "matplotlib"})
    torch_req = f"torch=={torch.__version__}"
    find_links = ["--find-links", str(TORCH_WHEELS)] if TORCH_WHEELS.is_dir() else []
    if uv:
        base = [uv, "pip", "install", "--python", str(python), "-q"]
    else:
        base = [str(python), "-m", "pip", "install", "-q"]
    _run([*base, *find_links, "-c", str(LOCK), torch_req], cwd=where, env=env)
    _run([*base, "-c", str(LOCK), str(dist["wheel"]), *extras], cwd=where, env=env)
    return where / "venv"


def test_wheel_and_sdist_contents(dist):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert dist["wheel"].name.startswith(f"latentgeo-{version}-")
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    for package in ("latentgeo", "probes", "trajectories"):
        assert f"{package}/py.typed" in names and f"{package}/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "docs/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert (
        "latentgeo = latentgeo.cli:main"
        in zipfile.ZipFile(dist["wheel"]).read(entry_points).decode()
    )


def test_installed_wheel_runs_outside_the_checkout(venv, tmp_path):
    env = _clean_env(venv)
    bin_ = venv / "bin"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    out = _run([str(bin_ / "latentgeo"), "--version"], cwd=tmp_path, env=env)
    assert out.strip() == f"latentgeo {version}"

    code = "\n".join(
        [
            "import importlib.resources, pathlib",
            "import latentgeo, probes, trajectories",
            f"root = pathlib.Path({str(ROOT)!r})",
            "for m in (latentgeo, probes, trajectories):",
            "    here = pathlib.Path(m.__file__).resolve()",
            "    assert not here.is_relative_to(root), here",
            "    assert importlib.resources.files(m.__name__).joinpath('py.typed').is_file()",
            "assert latentgeo.__version__ == " + repr(version),
            *notebook_imports(),
            "print('imports ok')",
        ]
    )
    out = _run([str(bin_ / "python"), "-c", code], cwd=tmp_path, env=env)
    assert out.strip().endswith("imports ok")

    out = _run(
        [str(bin_ / "latentgeo"), "demo", "--quick", "--out", "demo", "--no-progress"],
        cwd=tmp_path,
        env=env,
    )
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(summary["models"]) == {"cnn", "cnn_aug", "cnn_flip", "p4cnn"}
    assert (tmp_path / "demo" / "report.html").is_file()

    store = tmp_path / "demo" / "stores" / "cnn_flip.zarr"
    out = _run(
        [str(bin_ / "latentgeo"), "analyze", str(store), "--out", "analysis", "--no-progress"],
        cwd=tmp_path,
        env=env,
    )
    analysis = json.loads((tmp_path / "analysis" / "summary.json").read_text())
    assert set(analysis["layers"]) == {"conv1", "conv2", "conv3", "fc"}
    assert (tmp_path / "analysis" / "report.html").is_file()
