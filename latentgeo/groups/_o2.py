"""The orthogonal group O(2) of the plane with its real irreps A1, A2, E1, E2, ..."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._cyclic import rotation_matrices
from ._matrix import MatrixGroup, parse_degree
from ._protocol import as_generator
from ._registry import GROUPS

__all__ = ["O2", "planar_angle"]

_FLIP = np.diag([1.0, -1.0])


def planar_angle(g: np.ndarray) -> np.ndarray:
    """``θ`` of ``g = R(θ)`` or ``g = R(θ) S`` (``S = diag(1, −1)``): ``atan2(g₁₀, g₀₀)``."""
    return np.arctan2(g[..., 1, 0], g[..., 0, 0])


@GROUPS.register
class O2(MatrixGroup):
    """The orthogonal group O(2), elements given as 2x2 orthogonal matrices (float64).

    Every element is a rotation ``R(θ)`` or a reflection ``R(θ) S`` with
    ``S = diag(1, −1)`` (the mirror ``y ↦ −y``).  Real irreps (the infinite dihedral
    group's): ``"A1"`` (trivial), ``"A2"`` (the determinant), and for ``k >= 1`` the 2-d
    ``"E{k}"``: ``R(θ) ↦ R(kθ)``, ``R(θ) S ↦ R(kθ) S``; ``"E1"`` is the defining
    representation.  Degrees: 0 for ``A1``/``A2``, ``k`` for ``E{k}``.

    Examples
    --------
    >>> [r.name for r in O2().irreps(2)]
    ['A1', 'A2', 'E1', 'E2']
    """

    __slots__ = ()
    n = 2
    reflections = True

    spec_prefix = "O2"

    @classmethod
    def _from_spec_number(cls, n: int | None) -> O2:
        if n is not None:
            raise ValueError(f"unexpected digits after 'O2': {n!r}")
        return cls()

    @property
    def spec(self) -> str:
        """``"O2"``."""
        return "O2"

    @property
    def dim(self) -> int:
        """Dimension of the Lie group (1)."""
        return 1

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` Haar-random elements, float64 (n, 2, 2): a uniform angle, then a
        reflection with probability 1/2."""
        n = check_int(n, "number of elements n", minimum=0)
        rng = as_generator(generator)
        theta = rng.uniform(0.0, 2 * np.pi, size=n)
        flip = rng.random(n) < 0.5
        g = rotation_matrices(theta)
        g[flip] = g[flip] @ _FLIP
        return g

    def grid(self, n: int) -> np.ndarray:
        """``2n`` elements: the rotations by ``2πk/n`` then the same rotations times ``S``
        (the dihedral subgroup ``D_n``, exact quadrature up to frequency ``n - 1``)."""
        n = check_int(n, "number of grid angles n", minimum=1)
        rot = rotation_matrices(2 * np.pi * np.arange(n) / n)
        return np.concatenate([rot, rot @ _FLIP])

    def _names_of_degree(self, degree: int) -> tuple[str, ...]:
        return ("A1", "A2") if degree == 0 else (f"E{degree}",)

    def _irrep_shape(self, name: str) -> tuple[int, int]:
        if name in ("A1", "A2"):
            return 1, 0
        parsed = parse_degree(name, "E", ("",), 1)
        if parsed is None:
            raise ValueError(f"O2 has no irrep {name!r}; irreps are 'A1', 'A2', 'E1', 'E2', ...")
        return 2, parsed[0]

    def _irrep_matrices(self, name: str, g: np.ndarray) -> np.ndarray:
        det = np.where(np.linalg.det(g) < 0, -1.0, 1.0)
        if name == "A1":
            return np.ones((*g.shape[:-2], 1, 1))
        if name == "A2":
            return det[..., None, None].copy()
        k = int(name[1:])
        out = rotation_matrices(k * planar_angle(g))
        out[..., :, 1] *= det[..., None]  # R(kθ) S: the second column flips
        return out

    def _irrep_character(self, name: str, g: np.ndarray) -> np.ndarray:
        det = np.where(np.linalg.det(g) < 0, -1.0, 1.0)
        if name == "A1":
            return np.ones(g.shape[:-2])
        if name == "A2":
            return det
        k = int(name[1:])
        return np.where(det > 0, 2 * np.cos(k * planar_angle(g)), 0.0)
