"""latentgeo: how the latent representations of a network acquire symmetry while it trains.

Three stages, one data flow: *record* latents of chosen layers on a probe set and its group
orbit into a zarr run store, *probe* them for invariance, equivariance and irreps, and follow
that structure as *geometry* over training.  Heavy dependencies (torch, zarr, geomstats,
matplotlib) are imported only where used: ``import latentgeo`` stays light.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from latentgeo._errors import LatentgeoError as LatentgeoError

try:
    # One source of truth: the version in pyproject.toml, as the installed metadata has it.
    __version__ = importlib.metadata.version("latentgeo")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_SUBMODULES = {
    "actions",
    "callbacks",
    "datasets",
    "geometry",
    "groups",
    "models",
    "plot",
    "schedules",
    "store",
    "record",
    "reducers",
    "testing",
    "pipeline",
}

_ATTRIBUTES = {
    "LatentRecorder": "latentgeo.record",
    "record_checkpoints": "latentgeo.record",
    "open_run": "latentgeo.store",
    "Run": "latentgeo.store",
}

__all__ = sorted([*_SUBMODULES, *_ATTRIBUTES, "LatentgeoError", "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.record import LatentRecorder, record_checkpoints  # noqa: F401
    from latentgeo.store import Run, open_run  # noqa: F401


def __getattr__(name: str) -> Any:
    # PEP 562: submodules and the main entry points load on first use.
    if name in _SUBMODULES:
        return importlib.import_module(f"latentgeo.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'latentgeo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
