"""Rotations (and reflections) of point clouds by sampled elements of SO(3), O(3) or O(2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.actions._base import Action, ActionCheck, as_tensor, like_input
from latentgeo.actions._continuous import check_continuous, sampled_names
from latentgeo.actions._spec import register

__all__ = ["PointCloudRotations"]


@register
@dataclasses.dataclass(frozen=True)
class PointCloudRotations(Action):
    """A compact matrix group acting on point clouds by ``x ↦ x Rᵀ`` (exact up to rounding).

    Point clouds have shape ``(..., N, c)`` with ``c = n + n·vectors + scalars`` channels
    per point (``n = 3`` for SO(3)/O(3), ``n = 2`` for O(2)): the coordinates, then
    ``vectors`` per-point vector features (forces, velocities, normals), which rotate the same
    way, then ``scalars`` features (charges, atom types) that do not move.  The action runs
    over a fixed set of ``n_elements`` elements drawn from the Haar measure with ``seed``,
    element 0 exactly the identity (:attr:`element_values`, named ``"g0"``, ``"g1"``, ...);
    :meth:`act_value` acts with any element value.

    Parameters
    ----------
    group : SO3, O3 or O2, or its spec (``"SO3"``, ``"O3"``, ``"O2"``)
    n_elements : int
        Number of elements along the orbit axis (``>= 1``).  The harmonic spectrum needs
        more than twice as many as basis functions (512 for SO(3) up to degree 4).
    seed : int
        Seed of the sampled elements: the same seed gives the same elements.
    vectors, scalars : int
        Per-point vector and scalar feature channels after the coordinates.

    Examples
    --------
    >>> act = PointCloudRotations("SO3", n_elements=8)
    >>> x = torch.randn(5, 10, 3)
    >>> act.orbit(x).shape
    torch.Size([8, 5, 10, 3])
    >>> bool(torch.equal(act(0, x), x))
    True
    """

    group: Any = "SO3"
    n_elements: int = 256
    seed: int = 0
    vectors: int = 0
    scalars: int = 0

    def __post_init__(self) -> None:
        from latentgeo.groups import MatrixGroup, parse

        group = parse(self.group) if isinstance(self.group, str) else self.group
        if not isinstance(group, MatrixGroup):
            raise ValueError(
                f"PointCloudRotations acts by matrices of SO3, O3 or O2; got {self.group!r}"
            )
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "n_elements", check_int(self.n_elements, "n_elements", minimum=1))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", minimum=0))
        object.__setattr__(self, "vectors", check_int(self.vectors, "vectors", minimum=0))
        object.__setattr__(self, "scalars", check_int(self.scalars, "scalars", minimum=0))

    @property
    def dim(self) -> int:
        """Dimension of the space the points live in (3, or 2 for O(2))."""
        return int(self.group.n)

    @property
    def channels(self) -> int:
        """Channels per point: ``dim * (1 + vectors) + scalars``."""
        return self.dim * (1 + self.vectors) + self.scalars

    @property
    def element_values(self) -> np.ndarray:
        """The sampled elements, float64 (n_elements, dim, dim), element 0 the identity."""

        def make() -> np.ndarray:
            rest = self.group.sample(self.n_elements - 1, np.random.default_rng(self.seed))
            values = np.concatenate([self.group.identity[None], rest])
            values.flags.writeable = False
            return values

        return self._cached("_values", make)

    @property
    def elements(self) -> tuple[str, ...]:
        """``"g0", "g1", ...``: names of the sampled elements."""
        return sampled_names(self.n_elements)

    def _validate(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[-1] != self.channels:
            raise ValueError(
                f"{self!r} acts on point clouds of shape (..., N, {self.channels}) "
                f"({self.dim} coordinates + {self.vectors} vectors x {self.dim} + "
                f"{self.scalars} scalars); got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"point clouds must be floating point, got {x.dtype}")

    def _apply(self, R: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x Rᵀ`` on the coordinates and vector channels; R of shape (..., d, d) whose
        leading axes are prepended to ``x``'s."""
        d = self.dim
        moving = d * (1 + self.vectors)
        pts = x[..., :moving].unflatten(-1, (1 + self.vectors, d))
        lead = R.shape[:-2]
        Rb = R.reshape(*lead, *([1] * (pts.ndim - 1)), d, d)
        moved = (Rb @ pts.unsqueeze(-1)).squeeze(-1).flatten(-2)
        if not self.scalars:
            return moved
        rest = x[..., moving:].expand(*lead, *x.shape[:-1], self.scalars)
        return torch.cat([moved, rest], dim=-1)

    def _matrices(self, values: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(np.array(values, dtype=np.float64), dtype=x.dtype, device=x.device)

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        if k == 0:
            return x.clone()
        return self._apply(self._matrices(self.element_values[k], x), x)

    def _orbit(self, x: torch.Tensor) -> torch.Tensor:
        out = self._apply(self._matrices(self.element_values, x), x)
        out[0] = x  # the identity, untouched by rounding
        return out

    def act_value(self, value: Any, x: Any) -> Any:
        """Act with any element value (a (dim, dim) matrix of the group) on ``x``.

        Raises
        ------
        ValueError
            If ``value`` is not an element of the group.
        """
        t, was_numpy = as_tensor(x)
        self._validate(t)
        g = self.group.check_elements(value)
        if g.shape != (self.dim, self.dim):
            raise ValueError(f"value must be one {self.dim}x{self.dim} matrix, got {g.shape}")
        return like_input(self._apply(self._matrices(g, t), t), was_numpy)

    def check(self, x: Any, **kwargs: Any) -> ActionCheck:
        """:meth:`Action.check` for sampled elements: ``act(g, act(h, x))`` against
        :meth:`act_value` of ``g∘h`` for seeded random pairs (``max_pairs``, default 256)."""
        return check_continuous(self, x, **kwargs)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "PointCloudRotations",
            "group": self.group.spec,
            "n_elements": self.n_elements,
            "seed": self.seed,
            "vectors": self.vectors,
            "scalars": self.scalars,
        }
