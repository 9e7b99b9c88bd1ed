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

import inspect
from collections.abc import Mapping
from typing import Any

from latentgeo._registry import ACTIONS as _ACTIONS
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

#: Class decorator registering an :class:`Action` subclass under its class name (the
#: ``"type"`` of its spec), so :func:`from_spec` rebuilds it: ``@register`` or
#: ``@register("Name")``.  Installed packages may declare actions in the
#: ``latentgeo.actions`` entry-point group instead.
register = _ACTIONS.register

# The built-in actions register the same way as a user's.
for _cls in (
    ImageRotations,
    ImageTranslations,
    ImageRotationAngles,
    TokenShift,
    SetPermutation,
    GroupTokens,
    ElementSubset,
    RandomPermutations,
    PointCloudRotations,
    SO3AxisRotations,
):
    register(_cls)
del _cls


def from_spec(spec: Mapping[str, Any]) -> Action:
    """Rebuild an action from :meth:`Action.to_spec`'s dict.

    The class is looked up by ``spec["type"]`` in the action registry (built-ins, classes
    decorated with :func:`register`, then the ``latentgeo.actions`` entry points).  A class
    with its own ``from_spec`` classmethod gets the whole dict; any other is called with the
    remaining keys as keyword arguments (JSON turns tuples into lists; constructors normalise
    them back).

    Parameters
    ----------
    spec : mapping
        ``{"type": <action class name>, **parameters}`` as written by ``to_spec`` (for
        instance read back from a run store's attrs).

    Returns
    -------
    Action
        An action equal to the one that wrote ``spec``.

    Raises
    ------
    MissingExtensionError
        (a ``ValueError``) If no action class of that type is registered or installed.
    ValueError
        If the spec has keys the class's constructor does not take.
    TypeError
        If ``spec`` is not a mapping.

    Examples
    --------
    >>> act = TokenShift(7, position=(0, 1))
    >>> from_spec(act.to_spec()) == act
    True
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__!r}: {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"action spec {dict(spec)!r} has no 'type' naming the action class")
    try:
        cls = _ACTIONS.get(kind)
    except MissingExtensionError as err:
        raise MissingExtensionError(f"cannot rebuild action spec {dict(spec)!r}: {err}") from None
    own = cls.__dict__.get("from_spec")
    if isinstance(own, classmethod):
        return cls.from_spec(dict(spec))
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = set(kwargs) - set(params)
    if extra and not takes_any:
        raise ValueError(
            f"unexpected keys {sorted(extra)} in {kind} spec; allowed: {tuple(params)}"
        )
    return cls(**kwargs)
