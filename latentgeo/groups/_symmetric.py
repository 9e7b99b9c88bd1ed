"""The symmetric group S_n (n <= 5) with irreps in Young's orthogonal form."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._finite import FiniteGroup, check_int
from ._irreps import Irrep

__all__ = ["Symmetric"]

MAX_DEGREE = 5


def cycle_notation(perm: tuple[int, ...]) -> str:
    """Cycle notation of a permutation ``i -> perm[i]``; ``"e"`` for the identity.

    >>> cycle_notation((1, 2, 0, 4, 3))
    '(0 1 2)(3 4)'
    """
    seen, cycles = set(), []
    for start in range(len(perm)):
        if start in seen or perm[start] == start:
            continue
        cycle, i = [], start
        while i not in seen:
            seen.add(i)
            cycle.append(i)
            i = perm[i]
        cycles.append("(" + " ".join(map(str, cycle)) + ")")
    return "".join(cycles) or "e"


class Symmetric(FiniteGroup):
    """The symmetric group ``S_n`` of permutations of ``{0, ..., n-1}``, ``n <= 5``.

    Elements are the permutations ``p`` (``i -> p[i]``) in lexicographic order of their
    one-line tuples, identity first; :attr:`permutations` holds the tuples and
    :attr:`elements` their cycle-notation names (``"e"``, ``"(0 1)"``, ``"(0 1 2)"``, ...).
    Composition of maps: ``(a∘b)[i] = a[b[i]]``.  :meth:`index` accepts a permutation tuple
    as well as an index or name.

    Real irreps are labelled by partitions of ``n`` (``"[3]"``, ``"[2,1]"``, ``"[1,1,1]"``),
    built in Young's orthogonal form (orthogonal matrices, all of real type), ordered by
    decreasing partition in lexicographic order, so the trivial ``"[n]"`` is first and the
    sign ``"[1,...,1]"`` last.

    Parameters
    ----------
    n : int
        Degree, ``1 <= n <= 5``.

    Attributes
    ----------
    n : int
        The degree.
    permutations : tuple of tuple of int
        One-line notation of every element, in index order.

    Examples
    --------
    >>> G = Symmetric(3)
    >>> G.elements
    ('e', '(1 2)', '(0 1)', '(0 1 2)', '(0 2 1)', '(0 2)')
    >>> [r.name for r in G.irreps]
    ['[3]', '[2,1]', '[1,1,1]']
    """

    n: int
    permutations: tuple[tuple[int, ...], ...]

    def __init__(self, n: int) -> None:
        n = check_int(n, "Symmetric group degree n", minimum=1, maximum=MAX_DEGREE)
        self.__dict__["n"] = n
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        # Encode permutations as base-n integers to look up the index of a composition.
        weights = n ** np.arange(n - 1, -1, -1)
        lookup = {int(c): i for i, c in enumerate(perms @ weights)}
        composed = perms[:, perms]  # [a, b, i] = a[b[i]]
        codes = composed @ weights
        table = np.vectorize(lookup.__getitem__, otypes=[np.int64])(codes)
        self.__dict__["permutations"] = tuple(tuple(int(x) for x in p) for p in perms)
        self._setup(table, tuple(cycle_notation(p) for p in self.permutations))

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Symmetric({self.n})"

    def __reduce__(self) -> tuple:
        return (Symmetric, (self.n,))

    @property
    def spec(self) -> str:
        return f"S{self.n}"

    def index(self, element: Any) -> int:
        if isinstance(element, tuple | list) and not isinstance(element, str):
            key = tuple(element)
            try:
                return self.permutations.index(key)
            except ValueError:
                raise ValueError(f"{key!r} is not a permutation of range({self.n})") from None
        return super().index(element)

    @property
    def generators(self) -> tuple[int, ...]:
        if self.n == 1:
            return ()
        swap = (1, 0, *range(2, self.n))
        if self.n == 2:
            return (self.index(swap),)
        cycle = (*range(1, self.n), 0)
        return (self.index(swap), self.index(cycle))

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n = self.n
        adjacent = [self.index((*range(i), i + 1, i, *range(i + 2, n))) for i in range(n - 1)]
        irreps = []
        for shape in partitions(n):
            gens = young_orthogonal_transpositions(shape)
            d = gens.shape[1] if n > 1 else 1
            mats = np.zeros((self.order, d, d))
            mats[0] = np.eye(d)
            done = np.zeros(self.order, dtype=bool)
            done[0] = True
            frontier = [0]
            # Breadth-first over the Cayley graph: rho((i i+1)∘h) = rho((i i+1)) rho(h).
            while frontier:
                nxt = []
                for h in frontier:
                    for i, s in enumerate(adjacent):
                        g = int(self.cayley_table[s, h])
                        if not done[g]:
                            mats[g] = gens[i] @ mats[h]
                            done[g] = True
                            nxt.append(g)
                frontier = nxt
            name = "[" + ",".join(map(str, shape)) + "]"
            irreps.append(Irrep(name, d, mats, np.trace(mats, axis1=1, axis2=2), "real"))
        return tuple(irreps)


def partitions(n: int) -> list[tuple[int, ...]]:
    """Partitions of ``n`` in decreasing lexicographic order (``(n,)`` first)."""

    def rec(rest: int, largest: int) -> list[tuple[int, ...]]:
        if rest == 0:
            return [()]
        return [
            (first, *tail)
            for first in range(min(rest, largest), 0, -1)
            for tail in rec(rest - first, first)
        ]

    return rec(n, n)


def standard_tableaux(shape: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """Standard Young tableaux of a shape, each as the (row, column) box of 0, 1, ..., n-1.

    Ordered by the row sequence of the entries (the Yamanouchi word), lexicographically.
    """
    n = sum(shape)
    out: list[tuple[tuple[int, int], ...]] = []

    def rec(rows: list[int], boxes: list[tuple[int, int]]) -> None:
        if len(boxes) == n:
            out.append(tuple(boxes))
            return
        for r, length in enumerate(rows):
            # entry len(boxes) may go at the end of row r if the row is not full and the
            # row above is longer (so columns increase downwards)
            if length < shape[r] and (r == 0 or rows[r - 1] > length):
                rows[r] += 1
                rec(rows, [*boxes, (r, length)])
                rows[r] -= 1

    rec([0] * len(shape), [])
    return out


def young_orthogonal_transpositions(shape: tuple[int, ...]) -> np.ndarray:
    """Young's orthogonal form of the adjacent transpositions ``(i i+1)``.

    Returns
    -------
    array of shape (n - 1, d, d)
        Orthogonal symmetric involutions; on standard tableau ``T`` with axial distance
        ``a = content(i+1) - content(i)``, ``(i i+1)`` maps ``e_T`` to
        ``e_T / a + sqrt(1 - 1/a^2) e_{T'}`` where ``T'`` swaps ``i`` and ``i+1``.
    """
    tableaux = standard_tableaux(shape)
    where = {t: k for k, t in enumerate(tableaux)}
    n, d = sum(shape), len(tableaux)
    mats = np.zeros((max(n - 1, 0), d, d))
    for i in range(n - 1):
        for k, t in enumerate(tableaux):
            (r1, c1), (r2, c2) = t[i], t[i + 1]
            axial = (c2 - r2) - (c1 - r1)
            mats[i, k, k] = 1.0 / axial
            if abs(axial) > 1:
                swapped = list(t)
                swapped[i], swapped[i + 1] = t[i + 1], t[i]
                mats[i, where[tuple(swapped)], k] = np.sqrt(1.0 - 1.0 / axial**2)
    return mats
