"""Write the API reference: one page per public module, one entry per name in its ``__all__``.

Run by ``docs/conf.py`` before Sphinx reads its sources, so the reference always lists exactly
the public names (a name added to ``__all__`` appears; one removed disappears). An object
exported from several modules is described once, where it is first listed, and cross-linked
from the others.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

#: (module, one-line summary) in the order of the reference's table of contents.
MODULES = [
    ("latentgeo", "entry points: the recorder, run stores, errors"),
    ("latentgeo.groups", "groups, their irreps and subgroups"),
    ("latentgeo.actions", "how groups act on inputs"),
    ("latentgeo.record", "recording latents during or after training"),
    ("latentgeo.checkpoints", "saved checkpoints, walked in step order"),
    ("latentgeo.schedules", "when to record"),
    ("latentgeo.reducers", "what to keep of a large layer"),
    ("latentgeo.store", "run stores on disk and object storage"),
    ("latentgeo.callbacks", "Lightning and Hugging Face callbacks"),
    ("latentgeo.geometry", "manifolds, distances, dimension"),
    ("latentgeo.plot", "figures"),
    ("latentgeo.pipeline", "analyze, demo, info: the command line's functions"),
    ("latentgeo.models", "small reference models"),
    ("latentgeo.datasets", "small data sets"),
    ("latentgeo.testing", "assertions for your own models"),
    ("probes", "equivariance, invariance, spectra, subgroups, Lie algebras"),
    ("trajectories", "geometry of training"),
]


def _directive(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj):
        return "autofunction"
    return "autodata"


def _page(modname: str, summary: str, seen: dict[int, str]) -> str:
    module = importlib.import_module(modname)
    title = f"``{modname}``: {summary}"
    lines = [title, "=" * len(title), "", f".. automodule:: {modname}", "   :no-members:", ""]
    names = [n for n in getattr(module, "__all__", []) if not n.startswith("__")]
    documented: list[tuple[str, object]] = []
    submodules: list[str] = []
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            submodules.append(obj.__name__)
        else:
            documented.append((name, obj))
    if submodules:
        lines += ["Modules: " + ", ".join(f":mod:`{m}`" for m in submodules), ""]
    data = [(n, o) for n, o in documented if _directive(o) == "autodata"]
    code = [(n, o) for n, o in documented if _directive(o) != "autodata"]
    if code:
        lines += [".. autosummary::", "   :nosignatures:", ""]
        for name, obj in code:
            home = seen.get(id(obj), f"{modname}.{name}")
            # autosummary wants names relative to the page's module where they live below it.
            if home.startswith(f"{modname}."):
                home = home[len(modname) + 1 :]
            lines.append(f"   {home}")
        lines.append("")
    for name, obj in data:
        # A constant's docstring would be its type's (tuple, dict): show the value instead.
        lines += [f".. py:data:: {modname}.{name}", f"   :value: {obj!r}", ""]
    for name, obj in code:
        if id(obj) in seen:
            continue
        seen[id(obj)] = f"{modname}.{name}"
        directive = _directive(obj)
        lines.append(f".. {directive}:: {modname}.{name}")
        if directive == "autoclass":
            lines.append("   :members:")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_api_pages(folder: Path) -> list[str]:
    """Write ``<module>.rst`` for every module of :data:`MODULES` and an index; return names."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[int, str] = {}
    # Modules first whose objects are the home of re-exported names (latentgeo's entry points
    # live in latentgeo.record and latentgeo.store).
    order = [m for m, _ in MODULES[1:]] + ["latentgeo"]
    summaries = dict(MODULES)
    pages = {m: _page(m, summaries[m], seen) for m in order}
    written = []
    for modname, _ in MODULES:
        path = folder / f"{modname}.rst"
        if not path.exists() or path.read_text() != pages[modname]:
            path.write_text(pages[modname])  # unchanged pages keep their time: no rebuild
        written.append(modname)
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {m}" for m in written]
    text = "\n".join(index) + "\n"
    idx = folder / "index.rst"
    if not idx.exists() or idx.read_text() != text:
        idx.write_text(text)
    return written
