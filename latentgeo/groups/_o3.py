"""The orthogonal group O(3) = SO(3) × {±I} with real irreps named as e3nn names them."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._matrix import MatrixGroup, parse_degree
from ._protocol import as_generator
from ._registry import GROUPS
from ._so3 import haar_rotations
from ._wigner import so3_character, wigner_d

__all__ = ["O3"]


@GROUPS.register
class O3(MatrixGroup):
    """The orthogonal group O(3), elements given as 3x3 orthogonal matrices (float64).

    Real irreps follow e3nn's convention: degree ``l`` and parity ``p = ±1``, named
    ``"{l}e"`` (``p = +1``) and ``"{l}o"`` (``p = −1``), with

        D^{l,p}(g) = p^[det g = −1] · D^l(det(g) · g)

    (``D^l`` the real Wigner-D matrices of :class:`SO3`).  So ``"le"`` is unchanged by the
    inversion ``−I`` and ``"lo"`` changes sign: a vector is ``"1o"``, a pseudovector
    ``"1e"``, a pseudoscalar ``"0o"``.  Per degree the order is the natural parity
    ``(−1)^l`` first: ``"0e", "0o", "1o", "1e", "2e", "2o", ...``.

    Examples
    --------
    >>> G = O3()
    >>> np.round(G.irrep("1o")(-np.eye(3)), 12).diagonal().tolist()
    [-1.0, -1.0, -1.0]
    """

    __slots__ = ()
    n = 3
    reflections = True

    spec_prefix = "O3"

    @classmethod
    def _from_spec_number(cls, n: int | None) -> O3:
        if n is not None:
            raise ValueError(f"unexpected digits after 'O3': {n!r}")
        return cls()

    @property
    def spec(self) -> str:
        """``"O3"``."""
        return "O3"

    @property
    def dim(self) -> int:
        """Dimension of the Lie group (3)."""
        return 3

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` Haar-random elements, float64 (n, 3, 3): a Haar rotation times ``±I``,
        each sign with probability 1/2 (so ``det = −1`` half the time)."""
        n = check_int(n, "number of elements n", minimum=0)
        rng = as_generator(generator)
        R = haar_rotations(n, rng)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        return R * sign[:, None, None]

    def _names_of_degree(self, degree: int) -> tuple[str, ...]:
        natural, other = ("e", "o") if degree % 2 == 0 else ("o", "e")
        return f"{degree}{natural}", f"{degree}{other}"

    def _irrep_shape(self, name: str) -> tuple[int, int]:
        parsed = parse_degree(name, "", ("e", "o"), 0)
        if parsed is None:
            raise ValueError(
                f"O3 has no irrep {name!r}; irreps are named as e3nn names them: degree and "
                "parity, '0e', '0o', '1o', '1e', '2e', ..."
            )
        return 2 * parsed[0] + 1, parsed[0]

    def _split(self, name: str, g: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        l, parity = int(name[:-1]), name[-1]
        det = np.where(np.linalg.det(g) < 0, -1.0, 1.0)
        factor = det if parity == "o" else np.ones_like(det)
        return l, det, factor

    def _irrep_matrices(self, name: str, g: np.ndarray) -> np.ndarray:
        l, det, factor = self._split(name, g)
        return factor[..., None, None] * wigner_d(l, det[..., None, None] * g)

    def _irrep_character(self, name: str, g: np.ndarray) -> np.ndarray:
        l, det, factor = self._split(name, g)
        return factor * so3_character(l, det[..., None, None] * g)
