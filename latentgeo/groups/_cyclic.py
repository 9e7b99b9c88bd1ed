"""The cyclic group C_n with closed-form real irreps."""

from __future__ import annotations

import numpy as np

from latentgeo._validate import check_int

from ._finite import FiniteGroup
from ._irreps import Irrep
from ._registry import GROUPS

__all__ = ["Cyclic", "rotation_matrices"]


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[[cos, -sin], [sin, cos]]``, shape ``angles.shape + (2, 2)``."""
    c, s = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


@GROUPS.register
class Cyclic(FiniteGroup):
    """The cyclic group ``C_n`` of rotations by multiples of ``2π/n``.

    Element ``k`` is ``r^k`` (rotation by ``2πk/n``), named ``"e", "r", "r2", ...,
    "r{n-1}"``; ``r^a ∘ r^b = r^(a+b mod n)``.

    Real irreps (closed forms, in this order):

    - ``"A"``: trivial, ``r^k -> 1``;
    - ``"B"`` (``n`` even only): sign, ``r^k -> (-1)^k``;
    - ``"E1"``, ..., ``"Em"`` with ``m = ceil(n/2) - 1``: ``Ej`` maps ``r^k`` to the 2x2
      rotation by ``2πjk/n``; of complex type (the realification of the character
      ``exp(2πijk/n)``).

    Parameters
    ----------
    n : int
        Order, ``n >= 1``.

    Attributes
    ----------
    n : int
        The order.

    Examples
    --------
    >>> G = Cyclic(4)
    >>> G.elements, G.compose("r3", "r2")
    (('e', 'r', 'r2', 'r3'), 1)
    >>> [(r.name, r.dim, r.type) for r in G.irreps()]
    [('A', 1, 'real'), ('B', 1, 'real'), ('E1', 2, 'complex')]
    """

    spec_prefix = "C"
    n: int

    def __init__(self, n: int) -> None:
        n = check_int(n, "Cyclic group order n", minimum=1)
        self.__dict__["n"] = n
        k = np.arange(n)
        names = ("e", "r", *(f"r{i}" for i in range(2, n)))[:n]
        self._setup((k[:, None] + k[None, :]) % n, names)

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Cyclic({self.n})"

    def __reduce__(self) -> tuple:
        return (Cyclic, (self.n,))

    @property
    def spec(self) -> str:
        return f"C{self.n}"

    @property
    def generators(self) -> tuple[int, ...]:
        return (1,) if self.n > 1 else ()

    @property
    def angles(self) -> np.ndarray:
        """Rotation angle ``2πk/n`` of each element, shape (order,)."""
        return 2 * np.pi * np.arange(self.n) / self.n

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n = self.n
        k = np.arange(n)
        irreps = [Irrep("A", 1, np.ones((n, 1, 1)), np.ones(n), "real")]
        if n % 2 == 0:
            sign = (-1.0) ** k
            irreps.append(Irrep("B", 1, sign[:, None, None], sign, "real"))
        for j in range(1, (n + 1) // 2):
            mats = rotation_matrices(2 * np.pi * j * k / n)
            irreps.append(Irrep(f"E{j}", 2, mats, 2 * np.cos(2 * np.pi * j * k / n), "complex"))
        return tuple(irreps)
