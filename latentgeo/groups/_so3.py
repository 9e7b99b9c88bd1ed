"""The rotation group SO(3) with its real Wigner-D irreps."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._matrix import MatrixGroup, parse_degree
from ._protocol import as_generator
from ._registry import GROUPS
from ._wigner import so3_character, wigner_d

__all__ = ["SO3", "haar_rotations"]


def haar_rotations(n: int, generator: Any = None) -> np.ndarray:
    """``n`` Haar-random 3-D rotation matrices, float64 of shape (n, 3, 3).

    Uniform unit quaternions (a normalised standard Gaussian in R⁴ is uniform on S³, which
    double-covers SO(3) with Haar measure; Shoemake, "Uniform random rotations", Graphics
    Gems III, 1992) mapped to matrices.
    """
    n = check_int(n, "number of elements n", minimum=0)
    q = as_generator(generator).standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.empty((n, 3, 3))
    R[:, 0, 0] = 1 - 2 * (y * y + z * z)
    R[:, 0, 1] = 2 * (x * y - w * z)
    R[:, 0, 2] = 2 * (x * z + w * y)
    R[:, 1, 0] = 2 * (x * y + w * z)
    R[:, 1, 1] = 1 - 2 * (x * x + z * z)
    R[:, 1, 2] = 2 * (y * z - w * x)
    R[:, 2, 0] = 2 * (x * z - w * y)
    R[:, 2, 1] = 2 * (y * z + w * x)
    R[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return R


@GROUPS.register
class SO3(MatrixGroup):
    """The rotation group SO(3), elements given as 3x3 rotation matrices (float64).

    Composition is the matrix product (``a∘b = a @ b``: ``b`` first).  The real irreps are
    the real Wigner-D representations of degree ``l`` (dimension ``2l + 1``), named
    ``"0"``, ``"1"``, ``"2"``, ...; ``"1"`` is the rotation itself in the basis ``(y, z, x)``.
    The matrices come from how orthonormal real spherical harmonics transform
    (:mod:`latentgeo.groups._wigner`); they agree with e3nn's ``Irreps.D_from_matrix`` up to
    a fixed orthogonal change of basis per degree.

    Examples
    --------
    >>> G = SO3()
    >>> R = G.sample(4, 0)
    >>> G.irrep("2")(R).shape
    (4, 5, 5)
    >>> [r.name for r in G.irreps(2)]
    ['0', '1', '2']
    """

    __slots__ = ()
    n = 3
    reflections = False

    spec_prefix = "SO3"

    @classmethod
    def _from_spec_number(cls, n: int | None) -> SO3:
        if n is not None:
            raise ValueError(f"unexpected digits after 'SO3': {n!r}")
        return cls()

    @property
    def spec(self) -> str:
        """``"SO3"``."""
        return "SO3"

    @property
    def dim(self) -> int:
        """Dimension of the Lie group (3)."""
        return 3

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` Haar-random rotations, float64 (n, 3, 3) (:func:`haar_rotations`)."""
        return haar_rotations(n, generator)

    def _names_of_degree(self, degree: int) -> tuple[str, ...]:
        return (str(degree),)

    def _irrep_shape(self, name: str) -> tuple[int, int]:
        parsed = parse_degree(name, "", ("",), 0)
        if parsed is None:
            raise ValueError(
                f"SO3 has no irrep {name!r}; irreps are named by degree: '0', '1', '2', ..."
            )
        return 2 * parsed[0] + 1, parsed[0]

    def _irrep_matrices(self, name: str, g: np.ndarray) -> np.ndarray:
        return wigner_d(int(name), g)

    def _irrep_character(self, name: str, g: np.ndarray) -> np.ndarray:
        return so3_character(int(name), g)
