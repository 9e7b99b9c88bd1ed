"""The dihedral group D_n (order 2n) with closed-form real irreps."""

from __future__ import annotations

import numpy as np

from latentgeo._validate import check_int

from ._cyclic import rotation_matrices
from ._finite import FiniteGroup
from ._irreps import Irrep
from ._registry import GROUPS

__all__ = ["Dihedral"]


@GROUPS.register
class Dihedral(FiniteGroup):
    """The dihedral group ``D_n`` of order ``2n``: symmetries of a regular ``n``-gon.

    Element ``k < n`` is ``r^k``; element ``n + k`` is ``r^k ∘ s`` (reflect first, then
    rotate by ``2πk/n``).  Names ``"e", "r", ..., "r{n-1}", "s", "rs", "r2s", ...``.
    Relations: ``r^n = s^2 = e`` and ``s ∘ r ∘ s = r^-1``.

    Real irreps (closed forms, all of real type, in this order):

    - ``"A1"``: trivial;
    - ``"A2"``: ``r -> 1, s -> -1`` (the determinant);
    - ``"B1"``, ``"B2"`` (``n`` even only): ``r -> -1`` and ``s -> +1`` / ``s -> -1``;
    - ``"E1"``, ..., ``"Em"`` with ``m = ceil(n/2) - 1``: ``Ej`` maps ``r^k`` to the
      rotation by ``2πjk/n`` and ``s`` to ``diag(1, -1)``.

    Parameters
    ----------
    n : int
        Number of rotations, ``n >= 1`` (``D_1`` has order 2, ``D_2`` is the Klein group).

    Attributes
    ----------
    n : int
        Number of rotations (the order is ``2n``).

    Examples
    --------
    >>> G = Dihedral(4)
    >>> G.order, G.elements[G.compose("s", "r")]
    (8, 'r3s')
    >>> [r.name for r in G.irreps()]
    ['A1', 'A2', 'B1', 'B2', 'E1']
    """

    spec_prefix = "D"
    n: int

    def __init__(self, n: int) -> None:
        n = check_int(n, "Dihedral group parameter n", minimum=1)
        self.__dict__["n"] = n
        rot = ("e", "r", *(f"r{i}" for i in range(2, n)))[:n]
        refl = ("s", "rs", *(f"r{i}s" for i in range(2, n)))[:n]
        a = np.arange(2 * n)
        ka, sa = (a % n)[:, None], (a >= n)[:, None]
        kb, sb = (a % n)[None, :], (a >= n)[None, :]
        # r^a s^x ∘ r^b s^y = r^(a + (-1)^x b) s^(x + y)
        k = (ka + np.where(sa, -kb, kb)) % n
        self._setup(k + n * (sa ^ sb), rot + refl)

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Dihedral({self.n})"

    def __reduce__(self) -> tuple:
        return (Dihedral, (self.n,))

    @property
    def spec(self) -> str:
        return f"D{self.n}"

    @property
    def generators(self) -> tuple[int, ...]:
        return (1, self.n) if self.n > 1 else (self.n,)

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n = self.n
        k = np.arange(2 * n) % n
        refl = np.arange(2 * n) >= n
        det = np.where(refl, -1.0, 1.0)
        one = np.ones(2 * n)
        irreps = [
            Irrep("A1", 1, one[:, None, None], one, "real"),
            Irrep("A2", 1, det[:, None, None], det, "real"),
        ]
        if n % 2 == 0:
            alt = (-1.0) ** k
            irreps.append(Irrep("B1", 1, alt[:, None, None], alt, "real"))
            irreps.append(Irrep("B2", 1, (alt * det)[:, None, None], alt * det, "real"))
        flip = np.diag([1.0, -1.0])
        for j in range(1, (n + 1) // 2):
            theta = 2 * np.pi * j * k / n
            mats = rotation_matrices(theta)
            mats[refl] = mats[refl] @ flip
            chi = np.where(refl, 0.0, 2 * np.cos(theta))
            irreps.append(Irrep(f"E{j}", 2, mats, chi, "real"))
        return tuple(irreps)
