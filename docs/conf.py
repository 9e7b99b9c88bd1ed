"""Sphinx configuration of latentgeo's documentation site (``make docs``).

Markdown pages through MyST, the notebooks under ``notebooks/`` executed on their small
settings through MyST-NB, and an API reference generated from each public module's
``__all__`` (``docs/_api.py`` writes one page per module before the build reads its sources).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
EXECUTED = DOCS / "_build" / "executed"
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))

from _api import write_api_pages  # noqa: E402

import latentgeo  # noqa: E402

# The notebooks run on the settings the test suite uses, headless, one thread per process.
os.environ["LATENTGEO_NB_SMALL"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

project = "latentgeo"
author = "the latentgeo authors"
copyright = "the latentgeo authors"
release = latentgeo.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "_templates"]
templates_path = ["_templates"]

# Markdown
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# Notebooks and the getting-started page: executed during the build (the notebooks are
# committed without outputs), in a temporary folder, each cell's error failing the build.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_in_temp = True
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# API reference: numpydoc docstrings through napoleon; signatures without the type noise.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"show-inheritance": True}
autosummary_generate = False
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False
# Attributes sections as fields of their class, not separate entries (a property documented
# both ways would be described twice).
napoleon_use_ivar = True
# Bare names in docstrings ("order", "n") are linked where unambiguous; where several classes
# have an attribute of that name Sphinx warns about the ambiguity and picks none. Those are
# not broken references, so they do not fail the build; broken ones are not looked for
# (nitpicky is off) as docstrings name numpy/torch types without an inventory to link to.
suppress_warnings = ["ref.python"]

html_theme = "furo"
html_title = f"latentgeo {release}"
html_static_path: list[str] = []


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _copy_notebooks(app: object) -> None:
    # The notebooks live in notebooks/ (the test suite runs them there); the site renders a
    # copy inside its source folder. Where `make test` left an executed copy of the same code
    # (tests/test_notebooks.py, LATENTGEO_NB_OUTPUT_DIR), that copy is rendered with its
    # outputs and not executed again (per-notebook execution_mode "off"); otherwise the build
    # executes it.
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        source = json.loads(path.read_text())
        executed = EXECUTED / path.name
        done = json.loads(executed.read_text()) if executed.is_file() else None
        if done is not None and _code(done) == _code(source):
            # Rendered as it ran; a cell without output (an import) is not a missing one.
            done.setdefault("metadata", {})["mystnb"] = {"execution_mode": "off"}
            text = json.dumps(done, indent=1)
        else:
            text = path.read_text()
        dest = target / path.name
        if not dest.is_file() or dest.read_text() != text:
            dest.write_text(text)


def _skip_foreign_members(app, what, name, obj, skip, options):
    # scikit-learn adds its own methods (metadata routing, set_output) to the probe estimators;
    # their docstrings refer to scikit-learn's site. Document only what the packages define.
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] in {"sklearn", "torch", "builtins"}:
        return True
    return skip


def setup(app):
    write_api_pages(DOCS / "api")
    _copy_notebooks(app)
    app.connect("autodoc-skip-member", _skip_foreign_members)
