"""Point clouds under small rotations about the three coordinate axes (an so(3) probe orbit)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from latentgeo.actions._families import so3_basis
from latentgeo.actions._pointcloud import PointCloudRotations
from latentgeo.actions._spec import register

__all__ = ["SO3AxisRotations"]


@register
@dataclasses.dataclass(frozen=True)
class SO3AxisRotations(PointCloudRotations):
    """Point clouds rotated by ``exp(t X_i)`` about each axis ``i`` for given angles ``t``.

    The orbit the Lie-algebra probe needs (:class:`probes.LieAlgebraProbe`): element 0 the
    identity, then ``exp(t X_x)`` for every ``t`` in ``ts``, then the same about y and z
    (``X_i`` the so(3) basis of :func:`so3_basis`), so ``1 + 3·len(ts)`` elements of SO(3)
    named ``"g0"``, ``"g1"``, ....  Record it like any action; ``Run.element_values`` then
    holds the rotation matrices that ``LieAlgebraProbe.fit(Z, run.element_values)`` reads.
    Acts as :class:`PointCloudRotations` does (``x ↦ x Rᵀ``, vector channels too).

    Parameters
    ----------
    ts : sequence of float
        Non-zero angles in radians (small ones identify the generators; include a few
        larger ones to test ``expm`` away from the identity).
    vectors, scalars : int
        Per-point vector and scalar feature channels, as for :class:`PointCloudRotations`.

    Examples
    --------
    >>> act = SO3AxisRotations((0.05, -0.05, 0.2))
    >>> act.order, act.element_values.shape
    (10, (10, 3, 3))
    """

    ts: Any = (0.05, -0.05, 0.1, -0.1, 0.3)

    def __init__(self, ts: Any = (0.05, -0.05, 0.1, -0.1, 0.3), vectors: int = 0, scalars: int = 0):
        try:
            t = np.asarray(ts, dtype=np.float64).ravel()
        except (TypeError, ValueError) as err:
            raise TypeError(f"ts must be a sequence of angles, got {ts!r}") from err
        if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t == 0):
            raise ValueError(f"ts must be non-empty, finite and non-zero (radians), got {ts!r}")
        object.__setattr__(self, "ts", tuple(float(v) for v in t))
        object.__setattr__(self, "group", "SO3")
        object.__setattr__(self, "n_elements", 1 + 3 * t.size)
        object.__setattr__(self, "seed", 0)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "scalars", scalars)
        self.__post_init__()

    @property
    def element_values(self) -> np.ndarray:
        """Identity, then ``exp(t X_i)`` per axis and angle: float64 (1 + 3·len(ts), 3, 3)."""

        def make() -> np.ndarray:
            t = np.asarray(self.ts)
            a = np.zeros((1 + 3 * t.size, 3))
            for i in range(3):
                a[1 + i * t.size : 1 + (i + 1) * t.size, i] = t
            A = torch.as_tensor(np.einsum("ni,iab->nab", a, so3_basis()))
            values = torch.linalg.matrix_exp(A).numpy()
            values[0] = np.eye(3)
            values.flags.writeable = False
            return values

        return self._cached("_values", make)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "SO3AxisRotations",
            "ts": list(self.ts),
            "vectors": self.vectors,
            "scalars": self.scalars,
        }
