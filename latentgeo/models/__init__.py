"""Reference models for demos and tests (plain ``torch.nn.Module`` objects).

- :class:`SmallCNN`: a plain CNN (``conv1``, ``conv2``, ``conv3``, ``fc``) for 8×8 digits;
- :class:`P4CNN`: a C4 group-convolutional network (``lift``, ``gconv1``, ``gconv2``,
  ``pool``, ``fc``), exactly rotation-equivariant, with its building blocks
  :class:`LiftingConv2d`, :class:`GroupConv2d`, :class:`RotationPool`,
  :class:`SpatialMaxPool` and the feature-map action :func:`p4_rotate`;
- :class:`ModularMLP`: ``embed``, ``hidden``, ``out`` for ``(a + b) mod p`` or any finite
  group's composition table ``x∘y``.

Every model takes ``seed=`` (default 0) or ``generator=`` and initialises deterministically
without touching torch's global random state.
"""

from __future__ import annotations

from latentgeo.models._cnn import SmallCNN
from latentgeo.models._modular import ModularMLP
from latentgeo.models._p4 import (
    P4CNN,
    GroupConv2d,
    LiftingConv2d,
    RotationPool,
    SpatialMaxPool,
    p4_rotate,
)

__all__ = [
    "P4CNN",
    "GroupConv2d",
    "LiftingConv2d",
    "ModularMLP",
    "RotationPool",
    "SmallCNN",
    "SpatialMaxPool",
    "p4_rotate",
]
