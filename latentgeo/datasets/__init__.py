"""Embedded data for demos and tests (nothing is downloaded).

- :func:`digits`: scikit-learn's 8×8 digits as (n, 1, 8, 8) float tensors in [0, 1], with a
  seeded stratified train/test split and optional random rot90s;
- :func:`group_composition`: all pairs ``(x, y)`` of a finite group's elements with labels
  ``x∘y``, split (the group-composition task);
- :func:`modular_addition`: all pairs ``(a, b)`` with labels ``(a + b) mod p``, split (its
  cyclic case);
- :func:`planted_latents`: synthetic orbit latents with a planted representation (from
  :mod:`latentgeo.datasets.planted`).
"""

from __future__ import annotations

from latentgeo.datasets._digits import LabelledTensors, digits
from latentgeo.datasets._modular import TrainTest, group_composition, modular_addition
from latentgeo.datasets.planted import planted_latents

__all__ = [
    "LabelledTensors",
    "TrainTest",
    "digits",
    "group_composition",
    "modular_addition",
    "planted_latents",
]
