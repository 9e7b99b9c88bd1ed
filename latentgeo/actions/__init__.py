"""How a group acts on a batch of inputs.

Every action is an immutable value object with the same interface:

- ``action(element, x)``: act with one element (an index or a name) on a batch ``x``
  (torch tensor, or numpy array which comes back as numpy);
- ``action.orbit(x)``: shape ``(order, n, ...)``, ``orbit[g] = action(g, x)``;
- ``action.group``: the finite group (``latentgeo.groups``), element order as in its
  ``elements``; ``action(g, action(h, x)) == action(group.compose(g, h), x)``;
- ``action.check(x)``: verifies that law (and the identity) on real data;
- ``action.exact``: whether the action only moves entries (error exactly zero);
- ``action.sample(x, generator=...)``: a random element per sample (augmentation);
- ``action.to_spec()`` / :func:`from_spec`: a JSON-serialisable description and back.

Your own action: subclass :class:`Action`, give it a ``to_spec`` whose ``"type"`` is the
class name, and decorate it with :func:`register` (or declare it in the
``latentgeo.actions`` entry-point group of an installed package); :func:`from_spec` and
:func:`latentgeo.open_run` then rebuild it, in a fresh process too.

Actions: :class:`ImageRotations` (rot90/flips: C4, D4, C2, ...), :class:`ImageTranslations`
(cyclic shifts), :class:`ImageRotationAngles` (any angle, by interpolation),
:class:`GroupTokens` (tokens indexing a finite group's elements: group-composition tasks),
:class:`TokenShift` (tokens modulo p, the cyclic case), :class:`SetPermutation` (set
elements / graph nodes).

Groups too large to record whole orbits: :class:`ElementSubset` (a fixed random subset of
any finite action's elements, identity first; ``element_values`` their indices) and
:class:`RandomPermutations` (random permutations of ``n`` items for ``n`` beyond an
enumerable ``S_n``; ``element_values`` the permutations).  The recorder records exactly
these elements; ``probes.run`` gives r2 per recorded element and invariance over them, and
the spectrum on a finite subgroup they contain (``subgroup=``).

Continuous groups: :class:`PointCloudRotations` (point clouds under a fixed sample of
elements of SO(3), O(3), O(2), identity first) and :class:`ImageRotationAngles` with
``group="SO2"``/``"O2"``; their ``element_values`` are the sampled matrices.

One-parameter families ``t ↦ T_t`` (differentiable in ``t``, for Lie derivatives; not group
actions over a stored orbit): :class:`PointCloudFamily` (``x ↦ x expm(tG)ᵀ``, e.g.
:func:`point_cloud_rotation`), :class:`ImageAffineFamily` (:func:`image_translation`,
:func:`image_scaling`, :func:`image_shear`, :func:`image_rotation`); :func:`so3_basis`.
:class:`SO3AxisRotations` records point clouds under small rotations about each axis (the
orbit :class:`probes.LieAlgebraProbe` fits generators from).
"""

from __future__ import annotations

from latentgeo._registry import MissingExtensionError
from latentgeo.actions._axis_rotations import SO3AxisRotations
from latentgeo.actions._base import Action, ActionCheck, ActionCheckError
from latentgeo.actions._families import (
    ImageAffineFamily,
    OneParameterFamily,
    PointCloudFamily,
    image_rotation,
    image_scaling,
    image_shear,
    image_translation,
    point_cloud_rotation,
    so3_basis,
)
from latentgeo.actions._images import ImageRotationAngles, ImageRotations, ImageTranslations
from latentgeo.actions._pointcloud import PointCloudRotations
from latentgeo.actions._sets import SetPermutation
from latentgeo.actions._spec import from_spec, register
from latentgeo.actions._subsets import ElementSubset, RandomPermutations
from latentgeo.actions._tokens import GroupTokens, TokenShift

__all__ = [
    "Action",
    "ActionCheck",
    "ActionCheckError",
    "ElementSubset",
    "GroupTokens",
    "ImageAffineFamily",
    "ImageRotationAngles",
    "ImageRotations",
    "ImageTranslations",
    "MissingExtensionError",
    "OneParameterFamily",
    "PointCloudFamily",
    "PointCloudRotations",
    "RandomPermutations",
    "SO3AxisRotations",
    "SetPermutation",
    "TokenShift",
    "from_spec",
    "image_rotation",
    "image_scaling",
    "image_shear",
    "image_translation",
    "point_cloud_rotation",
    "register",
    "so3_basis",
]
