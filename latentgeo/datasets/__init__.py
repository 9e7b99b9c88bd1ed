"""Embedded data for demos and tests (nothing is downloaded).

- :func:`digits`: scikit-learn's 8×8 digits as (n, 1, 8, 8) float tensors in [0, 1], with a
  seeded stratified train/test split and optional random rot90s;
- :func:`group_composition`: all pairs ``(x, y)`` of a finite group's elements with labels
  ``x∘y``, split (the group-composition task);
- :func:`modular_addition`: all pairs ``(a, b)`` with labels ``(a + b) mod p``, split (its
  cyclic case);
- :func:`planted_latents`: synthetic orbit latents with a planted representation (from
  :mod:`latentgeo.datasets.planted`, loaded on first use).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from latentgeo.datasets._digits import LabelledTensors, digits
from latentgeo.datasets._modular import TrainTest, group_composition, modular_addition

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.datasets.planted import planted_latents

__all__ = ["LabelledTensors", "TrainTest", "digits", "group_composition", "modular_addition"]
# Listed only when its module is present, so that ``from latentgeo.datasets import *`` works
# (find_spec locates the file without importing it).
if importlib.util.find_spec("latentgeo.datasets.planted") is not None:
    __all__ += ["planted_latents"]


def __getattr__(name: str) -> Any:
    # PEP 562: planted.py lives with the probes; import it only when asked for.
    if name == "planted_latents":
        return importlib.import_module("latentgeo.datasets.planted").planted_latents
    raise AttributeError(f"module 'latentgeo.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
