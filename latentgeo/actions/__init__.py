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

Actions: :class:`ImageRotations` (rot90/flips: C4, D4, C2, ...), :class:`ImageTranslations`
(cyclic shifts), :class:`ImageRotationAngles` (any angle, by interpolation),
:class:`TokenShift` (tokens modulo p), :class:`SetPermutation` (set elements / graph nodes),
:class:`PointCloudRotations` (point clouds under sampled elements of SO(3), O(3), O(2)).

One-parameter families ``t ↦ T_t`` (differentiable in ``t``, for Lie derivatives; not group
actions over a stored orbit): :class:`PointCloudFamily` (``x ↦ x expm(tG)ᵀ``, e.g.
:func:`point_cloud_rotation`), :class:`ImageAffineFamily` (:func:`image_translation`,
:func:`image_scaling`, :func:`image_shear`, :func:`image_rotation`); :func:`so3_basis`.
:class:`SO3AxisRotations` records point clouds under small rotations about each axis (the
orbit :class:`probes.LieAlgebraProbe` fits generators from).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from latentgeo.actions._tokens import TokenShift

__all__ = [
    "Action",
    "ActionCheck",
    "ActionCheckError",
    "ImageAffineFamily",
    "ImageRotationAngles",
    "ImageRotations",
    "ImageTranslations",
    "OneParameterFamily",
    "PointCloudFamily",
    "PointCloudRotations",
    "SO3AxisRotations",
    "SetPermutation",
    "TokenShift",
    "from_spec",
    "image_rotation",
    "image_scaling",
    "image_shear",
    "image_translation",
    "point_cloud_rotation",
    "so3_basis",
]

# The parameters each spec type accepts (beyond "type"); a fixed table, never extended at
# runtime.
_SPEC_FIELDS: dict[str, tuple[type[Action], tuple[str, ...]]] = {
    "ImageRotations": (ImageRotations, ("group",)),
    "ImageTranslations": (ImageTranslations, ("h", "w", "stride")),
    "ImageRotationAngles": (
        ImageRotationAngles,
        ("n", "interpolation", "padding_mode", "group"),  # D1: "group" (SO2/O2)
    ),
    "TokenShift": (TokenShift, ("p", "position", "independent")),
    "SetPermutation": (SetPermutation, ("n", "kind", "axes", "permutations")),
    # D1 (issue 11)
    "PointCloudRotations": (
        PointCloudRotations,
        ("group", "n_elements", "seed", "vectors", "scalars"),
    ),
    # D2 (issue 11): the small-rotation orbit of the Lie-algebra probe
    "SO3AxisRotations": (SO3AxisRotations, ("ts", "vectors", "scalars")),
}


def from_spec(spec: Mapping[str, Any]) -> Action:
    """Rebuild an action from :meth:`Action.to_spec`'s dict.

    Parameters
    ----------
    spec : mapping
        ``{"type": <action class name>, **parameters}`` as written by ``to_spec`` (for
        instance read back from a run store's attrs).

    Returns
    -------
    Action
        An action equal to the one that wrote ``spec``.

    Examples
    --------
    >>> act = TokenShift(7, position=(0, 1))
    >>> from_spec(act.to_spec()) == act
    True
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__!r}: {spec!r}")
    kind = spec.get("type")
    if kind not in _SPEC_FIELDS:
        raise ValueError(
            f"unknown action type {kind!r} in spec {dict(spec)!r}; known: {sorted(_SPEC_FIELDS)}"
        )
    cls, fields = _SPEC_FIELDS[kind]
    extra = set(spec) - {"type", *fields}
    if extra:
        raise ValueError(f"unexpected keys {sorted(extra)} in {kind} spec; allowed: {fields}")
    kwargs = {f: spec[f] for f in fields if f in spec}
    # JSON turns tuples into lists; the constructors normalise them back.
    if kind == "SetPermutation" and kwargs.get("axes") is not None:
        kwargs["axes"] = tuple(kwargs["axes"])
    return cls(**kwargs)
